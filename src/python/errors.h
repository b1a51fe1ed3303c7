/* Engine statuses as Python exceptions, and memwatch.MemoryLimitError. Needs the GIL. */
#ifndef MW_ERRORS_H
#define MW_ERRORS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* memwatch.MemoryLimitError (a MemoryError); NULL until mw_errors_add_types() ran. */
extern PyObject *mw_MemoryLimitError;

/* Creates MemoryLimitError (once per process) and adds it to module. 0, or -1 with an
 * exception. */
int mw_errors_add_types(PyObject *module);
/* Sets the Python exception for a negative engine status: "<what>: <mw_strerror>", typed by
 * what the caller can do about it (ValueError for a bad range, KeyError for a missing
 * watch, MemoryLimitError, ...). Returns NULL, for `return mw_raise_status(...)`. */
PyObject *mw_raise_status(int status, const char *what);

#endif
