/* The built-in `memwatch` module. */
#ifndef MW_MODULE_H
#define MW_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Its init function, registered with PyImport_AppendInittab before the interpreter
 * starts (inject.c). */
PyObject *mw_module_init(void);

#endif
