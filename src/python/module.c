/* The built-in `memwatch` module: puts together MemoryWatcher (watcher_object.c), Change
 * (change.c) and MemoryLimitError (errors.c), adds shortcuts on a process-wide default
 * watcher (watch, unwatch, check, stats, set_callback), the Python helper that names
 * threads (also after they ended), and the end of the run (_finish, from atexit). Needs the
 * GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "module.h"

#include "autocheck.h"
#include "change.h"
#include "channel.h"
#include "config.h"
#include "errors.h"
#include "fork.h"
#include "watcher_object.h"

/* Names of threads, including threads that have already ended: a write made just before a
 * thread finishes is usually checked after it is gone. threading keeps running threads in
 * threading._active; memwatch wraps that dict so that names are remembered on removal. */
static const char thread_names_source[] =
    "import os as _os\n"
    "import sys as _sys\n"
    "_finished_names = {}\n"
    "def _install_thread_names():\n"
    "    import threading\n"
    "    if type(threading._active).__name__ == '_RememberingActive':\n"
    "        return\n"
    "    class _RememberingActive(dict):\n"
    "        __slots__ = ()\n"
    "        def _remember(self, key):\n"
    "            t = dict.get(self, key)\n"
    "            nid = getattr(t, 'native_id', None)\n"
    "            if nid is not None:\n"
    "                if len(_finished_names) > 4096:\n"
    "                    _finished_names.clear()\n"
    "                _finished_names[nid] = t.name\n"
    "        def __delitem__(self, key):\n"
    "            self._remember(key)\n"
    "            dict.__delitem__(self, key)\n"
    "        def pop(self, key, *default):\n"
    "            self._remember(key)\n"
    "            return dict.pop(self, key, *default)\n"
    "    threading._active = _RememberingActive(threading._active)\n"
    "def _thread_name(tid):\n"
    "    threading = _sys.modules.get('threading')\n"
    "    if threading is not None:\n"
    "        for t in list(threading._active.values()):\n"
    "            if getattr(t, 'native_id', None) == tid:\n"
    "                return t.name\n"
    /* A fork child keeps the forking thread's object with the parent's native_id (3.11):
     * the one thread that survived is this one, the main one when its id is the pid. */
    "        if tid == threading.get_native_id():\n"
    "            return threading.current_thread().name\n"
    "        if tid == _os.getpid():\n"
    "            return threading.main_thread().name\n"
    "    name = _finished_names.get(tid)\n"
    "    if name is not None:\n"
    "        return name\n"
    "    return 'thread-%d' % tid if tid else None\n";

static PyObject *default_watcher;

static PyObject *get_default(void)
{
    if (!default_watcher) {
        default_watcher = mw_watcher_object_new_default();
        if (!default_watcher)
            return NULL;
    }
    return default_watcher;
}

static PyObject *call_default(const char *method, PyObject *args)
{
    PyObject *w = get_default();
    if (!w)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(w, method);
    if (!fn)
        return NULL;
    PyObject *result = args ? PyObject_Call(fn, args, NULL) : PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    return result;
}

/* The shortcuts on the default watcher, one row each: the module function, the watcher
 * method it calls with its own arguments (NULL for METH_NOARGS, so each checks and fails
 * exactly as its method does), its flags and its doc. */
#define SHORTCUTS(X)                                                                        \
    X(watch, "watch_object", METH_VARARGS,                                                 \
      "watch(obj, tag)\n--\n\nWatch obj under tag with the default watcher.")               \
    X(watch_buffer, "watch_buffer", METH_VARARGS,                                          \
      "watch_buffer(address, size, tag)\n--\n\nWatch raw memory with the default watcher.") \
    X(unwatch, "unwatch", METH_VARARGS, "unwatch(tag)\n--\n\nStop watching tag.")           \
    X(check, "check_changes", METH_NOARGS,                                                 \
      "check()\n--\n\nLook for changes now; returns how many were found since the last "    \
      "call.")                                                                              \
    X(stats, "get_stats", METH_NOARGS, "stats()\n--\n\nThe default watcher's statistics.")  \
    X(set_callback, "set_callback", METH_VARARGS,                                          \
      "set_callback(fn)\n--\n\nThe default watcher's callback.")

#define SHORTCUT_FUNCTION(name, method, flags, doc)                   \
    static PyObject *mod_##name(PyObject *module, PyObject *args)     \
    {                                                                 \
        (void)module;                                                 \
        return call_default(method, args);                            \
    }
SHORTCUTS(SHORTCUT_FUNCTION)

/* In a fork child, from os.register_at_fork: the parent's watches on shared memory stay,
 * the others go (fork.c); the check thread again when traced. */
static PyObject *after_fork_in_child(void)
{
    mw_watcher_objects_after_fork();
    if (mw_autocheck_restart_in_child() < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The end of the run, from atexit: after the script's own atexit functions (registered
 * later, so run earlier), before the interpreter finalizes anything. Also what
 * os.register_at_fork calls in a fork child, before anything else of memwatch runs there
 * (mw_fork_pending): one function object for both, because each object the module makes
 * moves the script's own objects on the heap, and with them which pages they share
 * (README "Neighbours"; tests/cli/layouts.bats). */
static PyObject *mod_finish(PyObject *self, PyObject *Py_UNUSED(args))
{
    (void)self;
    if (mw_fork_pending())
        return after_fork_in_child();
    mw_autocheck_stop();
    mw_finish_all();
    Py_CLEAR(default_watcher);
    mw_engine_unprotect_all();
    mw_channel_drain();
    Py_RETURN_NONE;
}

/* os.register_at_fork's before and after_in_parent: called twice per os.fork(), first
 * before it, then in the parent after it, even when the fork fails (mw_autocheck_fork_hook),
 * both in the forking thread; another thread's os.fork() may come between them while the
 * check thread is being stopped (the GIL is let go then). */
static PyObject *mod_fork(PyObject *self, PyObject *Py_UNUSED(args))
{
    (void)self;
    if (mw_autocheck_fork_hook() < 0)
        return NULL;
    Py_RETURN_NONE;
}

#define SHORTCUT_METHOD(name, method, flags, doc) {#name, mod_##name, flags, doc},
static PyMethodDef module_methods[] = {
    SHORTCUTS(SHORTCUT_METHOD)
    {"_finish", mod_finish, METH_NOARGS, NULL},
    {"_fork", mod_fork, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "memwatch",
    .m_doc = "Watch memory of Python objects and record every change to it.\n\n"
             "Available inside scripts run by `memwatch trace`.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int run_helpers(PyObject *module)
{
    PyObject *globals = PyModule_GetDict(module);
    PyObject *r = PyRun_String(thread_names_source, Py_file_input, globals, globals);
    if (!r)
        return -1;
    Py_DECREF(r);
    PyObject *install = PyDict_GetItemString(globals, "_install_thread_names");
    r = install ? PyObject_CallNoArgs(install) : NULL;
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int register_finish(PyObject *module)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    if (!atexit)
        return -1;
    PyObject *finish = PyObject_GetAttrString(module, "_finish");
    PyObject *r = finish ? PyObject_CallMethod(atexit, "register", "O", finish) : NULL;
    Py_XDECREF(finish);
    Py_DECREF(atexit);
    if (!r)
        return -1;
    Py_DECREF(r);
    /* Fork children (fork.c): after CPython's own after-fork work, with the GIL; and the
     * parent's check thread paused around the fork (mod_fork). */
    PyObject *os = PyImport_ImportModule("os");
    PyObject *hook = os ? PyObject_GetAttrString(module, "_finish") : NULL;
    PyObject *fork_hook = hook ? PyObject_GetAttrString(module, "_fork") : NULL;
    PyObject *reg = os ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
    PyObject *kw = fork_hook ? Py_BuildValue("{s:O,s:O,s:O}", "after_in_child", hook, "before",
                                             fork_hook, "after_in_parent", fork_hook)
                             : NULL;
    PyObject *empty = PyTuple_New(0);
    r = reg && kw && empty ? PyObject_Call(reg, empty, kw) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(kw);
    Py_XDECREF(reg);
    Py_XDECREF(fork_hook);
    Py_XDECREF(hook);
    Py_XDECREF(os);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

PyObject *mw_module_init(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    if (PyModule_AddStringConstant(m, "__version__", MEMWATCH_VERSION) < 0)
        goto fail;
    if (mw_change_add_type(m) < 0 || mw_errors_add_types(m) < 0 ||
        mw_watcher_object_add_type(m) < 0)
        goto fail;
    /* Untraced (a Python child of the script under --no-follow), watchers watch nothing
     * (watcher_object.c): no thread names, no end of run, no automatic checks to set up. */
    if (!mw_run.traced)
        return m;
    if (run_helpers(m) < 0 || register_finish(m) < 0)
        goto fail;
    if (mw_autocheck_start(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
