/* The line events memwatch can use, each doing nothing, for bench/line_events.sh: a C trace
 * function (PyEval_SetTrace: 3.11's source, lines_settrace.c) and a C callback for
 * sys.monitoring events (3.12 and later: lines_monitoring.c). Built by the benchmark
 * against the interpreter it measures; not part of memwatch. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int noop_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    (void)frame;
    (void)what;
    (void)arg;
    return 0;
}

static PyObject *noop_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    Py_RETURN_NONE;
}

static PyMethodDef callback_def = {"callback", (PyCFunction)(void (*)(void))noop_callback,
                                   METH_FASTCALL, NULL};

static PyObject *settrace(PyObject *self, PyObject *on)
{
    (void)self;
    PyEval_SetTrace(PyObject_IsTrue(on) ? noop_trace : NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *callback(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyCFunction_New(&callback_def, NULL);
}

static PyMethodDef methods[] = {
    {"settrace", settrace, METH_O, "settrace(on): a C trace function that does nothing"},
    {"callback", callback, METH_NOARGS, "callback(): a C function for sys.monitoring"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "line_events_probe", NULL, -1, methods};

PyMODINIT_FUNC PyInit_line_events_probe(void)
{
    return PyModule_Create(&module);
}
