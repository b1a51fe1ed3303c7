/* The few public-API spellings that differ between the CPython versions memwatch builds
 * for (3.11 to 3.13). Frame and thread-state internals are not here: location.c and the
 * line sources (line_source.h) hold those. */
#ifndef MW_PYCOMPAT_H
#define MW_PYCOMPAT_H

#include <Python.h>

/* Has interpreter shutdown begun? Public from 3.13 on, private before. */
#if PY_VERSION_HEX >= 0x030D0000
#define mw_py_is_finalizing() Py_IsFinalizing()
#else
#define mw_py_is_finalizing() _Py_IsFinalizing()
#endif

#endif
