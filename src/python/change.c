/* memwatch.Change: one change of a watched object as the script's callback sees it.
 *
 * DESIGN: a Change is built only for a watcher with a callback, after the change is in the
 * trace (check.c), from the same bytes the trace got; nothing here reads watched memory.
 * Its first eight fields (tag .. thread, MW_CHANGE_IN_SEQUENCE) are its tuple part: len()
 * and unpacking see those; the later ones are attributes only. Needs the GIL. */
#include "change.h"

#include <string.h>

static PyTypeObject *change_type;

static PyStructSequence_Field change_fields[] = {
    [MW_CHANGE_TAG] = {"tag", "the watched object's tag"},
    [MW_CHANGE_OFFSET] = {"offset", "first changed byte, in the object's bytes"},
    [MW_CHANGE_OLD] = {"old", "old bytes from offset to the last changed byte (None when not kept)"},
    [MW_CHANGE_NEW] = {"new", "new bytes over the same span"},
    [MW_CHANGE_FILE] = {"file", "Python file that made the write (None when unknown)"},
    [MW_CHANGE_LINE] = {"line", "line in that file (0 when unknown)"},
    [MW_CHANGE_FUNCTION] = {"function", "qualified name of the function that made the write"},
    [MW_CHANGE_THREAD] = {"thread", "name of the writing thread"},
    [MW_CHANGE_THREAD_ID] = {"thread_id", "kernel id of the writing thread"},
    [MW_CHANGE_SEQ] = {"seq", "sequence number of the change in the trace"},
    [MW_CHANGE_TIME_NS] = {"time_ns", "nanoseconds since the run started"},
    [MW_CHANGE_RANGES] = {"ranges", "list of (offset, old, new) for each changed range"},
    [MW_CHANGE_OLD_VALUE] = {"old_value", "the whole old value (None with capture_full_values=False)"},
    [MW_CHANGE_NEW_VALUE] = {"new_value", "the whole new value (None with capture_full_values=False)"},
    [MW_CHANGE_NATIVE_SYMBOL] = {"native_symbol",
                                 "native function that made the write, when not the interpreter"},
    [MW_CHANGE_NATIVE_LIBRARY] = {"native_library", "library of that function"},
    [MW_CHANGE_ELEMENTS] = {"elements",
                            "for typed objects: list of (index, old, new) of the changed elements"},
    [MW_CHANGE_NFIELDS] = {NULL, NULL},
};

static PyStructSequence_Desc change_desc = {
    "memwatch.Change",
    "One change of a watched object: what changed, from what to what, and who wrote it.",
    change_fields,
    MW_CHANGE_IN_SEQUENCE,
};

int mw_change_add_type(PyObject *module)
{
    if (!change_type) {
        change_type = PyStructSequence_NewType(&change_desc);
        if (!change_type)
            return -1;
    }
    return PyModule_AddObjectRef(module, "Change", (PyObject *)change_type);
}

static PyObject *bytes_or_none(const unsigned char *p, size_t n)
{
    if (!p)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
}

static PyObject *text_or_none(const char *s)
{
    if (!s || !*s)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* ---- Change.elements -------------------------------------------------------------- */

static PyObject *element_value(const struct mw_elem_change *c, const unsigned char *bytes,
                               double num, double imag)
{
    if (!bytes)
        Py_RETURN_NONE;
    switch (c->scalar->kind) {
    case MW_ELEM_BOOL: return PyBool_FromLong(num != 0);
    case MW_ELEM_INT:
    case MW_ELEM_UINT: return PyLong_FromDouble(num);
    case MW_ELEM_FLOAT: return PyFloat_FromDouble(num);
    case MW_ELEM_COMPLEX: return PyComplex_FromDoubles(num, imag);
    default: {
        char text[128];
        mw_elem_format_value(c->scalar, bytes, text, sizeof text);
        return PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    }
    }
}

static int append_element(const struct mw_elem_change *c, void *ctx)
{
    PyObject *list = ctx;
    PyObject *index = PyTuple_New(c->ndim + (c->scalar->path[0] ? 1 : 0));
    if (!index)
        return -1;
    for (int d = 0; d < c->ndim; d++)
        PyTuple_SET_ITEM(index, d, PyLong_FromLongLong(c->index[d]));
    if (c->scalar->path[0])
        PyTuple_SET_ITEM(index, c->ndim, PyUnicode_FromString(c->scalar->path));
    PyObject *item = Py_BuildValue("(NNN)", index,
                                   element_value(c, c->old, c->old_num, c->old_imag),
                                   element_value(c, c->new_, c->new_num, c->new_imag));
    if (!item || PyList_Append(list, item) < 0) {
        Py_XDECREF(item);
        return -1;
    }
    Py_DECREF(item);
    return 0;
}

static PyObject *elements_of(const struct mw_change_info *c)
{
    PyObject *list = PyList_New(0);
    if (!list || !c->layout)
        return list;
    if (mw_elem_diff(c->layout, c->ranges, c->nranges, c->old_value, c->new_value,
                     c->value_size, append_element, list) != 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "memwatch: cannot decode the changed elements");
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* ---- the Change ------------------------------------------------------------------- */

/* [(offset, old, new), ...]; *all_old: every range's old bytes are known. */
static PyObject *range_list(const struct mw_change_info *c, int *all_old)
{
    *all_old = 1;
    PyObject *list = PyList_New((Py_ssize_t)c->nranges);
    for (size_t i = 0; list && i < c->nranges; i++) {
        const struct mw_rec_range *r = &c->ranges[i];
        *all_old &= r->old != NULL;
        PyObject *t = Py_BuildValue("(nNN)", (Py_ssize_t)r->offset,
                                    bytes_or_none(r->old, r->length),
                                    bytes_or_none(r->new_, r->length));
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

/* Stores value (a new reference) as field; -1 when making it failed. A Change dropped half
 * filled is fine: its deallocation skips the fields never set. */
static int put(PyObject *change, enum mw_change_field field, PyObject *value)
{
    if (!value)
        return -1;
    PyStructSequence_SET_ITEM(change, field, value);
    return 0;
}

PyObject *mw_change_new(const struct mw_change_info *c, int capture_full)
{
    PyObject *change = PyStructSequence_New(change_type);
    if (!change)
        return NULL;
    const struct mw_rec_range *end = c->nranges ? &c->ranges[c->nranges - 1] : NULL;
    size_t first = c->nranges ? c->ranges[0].offset : 0;
    size_t last = end ? end->offset + end->length : 0;
    const struct mw_writer *wr = c->writer;
    int all_old;
    if (put(change, MW_CHANGE_RANGES, range_list(c, &all_old)) < 0 ||
        put(change, MW_CHANGE_TAG, Py_NewRef(c->tag)) < 0 ||
        put(change, MW_CHANGE_OFFSET, PyLong_FromSize_t(first)) < 0 ||
        put(change, MW_CHANGE_OLD, all_old ? bytes_or_none(c->old_value + first, last - first)
                                           : Py_NewRef(Py_None)) < 0 ||
        put(change, MW_CHANGE_NEW, bytes_or_none(c->new_value + first, last - first)) < 0 ||
        put(change, MW_CHANGE_FILE, text_or_none(wr->file)) < 0 ||
        put(change, MW_CHANGE_LINE, PyLong_FromLong(wr->line)) < 0 ||
        put(change, MW_CHANGE_FUNCTION, text_or_none(wr->function)) < 0 ||
        put(change, MW_CHANGE_THREAD, Py_NewRef(c->thread_name)) < 0 ||
        put(change, MW_CHANGE_THREAD_ID, PyLong_FromLong((long)wr->tid)) < 0 ||
        put(change, MW_CHANGE_SEQ, PyLong_FromUnsignedLongLong(c->seq)) < 0 ||
        put(change, MW_CHANGE_TIME_NS, PyLong_FromUnsignedLongLong(c->time_ns)) < 0 ||
        put(change, MW_CHANGE_OLD_VALUE, capture_full && c->old_known
                                             ? bytes_or_none(c->old_value, c->value_size)
                                             : Py_NewRef(Py_None)) < 0 ||
        put(change, MW_CHANGE_NEW_VALUE, capture_full ? bytes_or_none(c->new_value, c->value_size)
                                                      : Py_NewRef(Py_None)) < 0 ||
        put(change, MW_CHANGE_NATIVE_SYMBOL, text_or_none(c->native_symbol)) < 0 ||
        put(change, MW_CHANGE_NATIVE_LIBRARY, text_or_none(c->native_library)) < 0 ||
        put(change, MW_CHANGE_ELEMENTS, elements_of(c)) < 0) {
        Py_DECREF(change);
        return NULL;
    }
    return change;
}
