/* The injected `memwatch` module: shared declarations between its files. */
#ifndef MW_MODULE_H
#define MW_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "buffers.h"
#include "watcher.h"

extern PyTypeObject mw_WatcherType;

int mw_watcher_type_ready(PyObject *module);
/* The end of the run: a final check, then every watch of every watcher is dropped and
 * its memory unprotected. Needs the GIL. */
void mw_finish_all(void);

/* autocheck.c */
int mw_autocheck_start(PyObject *module);
void mw_autocheck_stop(void);
/* After a check made elsewhere (watcher_object.c): when --on-nan has a message waiting,
 * asks the main thread to tell the script at its next safe point, as after autocheck's
 * own checks. Needs the GIL. */
void mw_autocheck_after_check(void);
/* In a forked child: the poller thread does not exist there. */
void mw_autocheck_after_fork(void);

#endif
