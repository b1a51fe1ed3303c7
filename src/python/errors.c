/* Engine statuses (mw_error.h) become Python exceptions here, so that every path out of the
 * engine raises the same type for the same status with the same message shape. */
#include "errors.h"

#include <errno.h>

#include "mw_error.h"

PyObject *mw_MemoryLimitError;

int mw_errors_add_types(PyObject *module)
{
    /* Created once per process: every module object hands out the same class, so an
     * `except memwatch.MemoryLimitError` matches whatever raised it. */
    if (!mw_MemoryLimitError) {
        mw_MemoryLimitError = PyErr_NewExceptionWithDoc(
            "memwatch.MemoryLimitError",
            "A watch would take memwatch past the watcher's max_memory_mb.",
            PyExc_MemoryError, NULL);
        if (!mw_MemoryLimitError)
            return -1;
    }
    return PyModule_AddObjectRef(module, "MemoryLimitError", mw_MemoryLimitError);
}

PyObject *mw_raise_status(int status, const char *what)
{
    PyObject *type = PyExc_RuntimeError;
    switch (status) {
    case MW_ELIMIT: type = mw_MemoryLimitError; break;
    case MW_EINVAL:
    case MW_EUNMAPPED:
    case MW_EOWN:
    case MW_EEXIST:
    case MW_EBACKEND: type = PyExc_ValueError; break;
    case MW_ENOENT: type = PyExc_KeyError; break;
    case -ENOMEM: type = PyExc_MemoryError; break;
    default: break;
    }
    PyErr_Format(type, "%s: %s", what, mw_strerror(status));
    return NULL;
}
