/* Automatic checks (`memwatch trace --check`), the writer hook of every fault, and the end
 * of the run on SIGTERM. */
#ifndef MW_AUTOCHECK_H
#define MW_AUTOCHECK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Installs the writer hook and, in a traced run, the check signal's handler (module's
 * _autocheck), the SIGTERM handler and the poller thread. 0, or -1 with an exception.
 * Needs the GIL. */
int mw_autocheck_start(PyObject *module);
/* Stops the poller and the check signal (the end of the run). Needs the GIL. */
void mw_autocheck_stop(void);
/* After a check made elsewhere (watcher_object.c): when --on-nan has a message waiting,
 * asks the main thread to tell the script at its next safe point, as after autocheck's
 * own checks. Needs the GIL. */
void mw_autocheck_after_check(void);
/* After watch_object or watch_buffer, with the GIL: in line mode, the calling code is
 * prepared to check at its next line after a write (lines.h). */
void mw_autocheck_after_watch(void);
/* In a forked child: the poller thread does not exist there. */
void mw_autocheck_after_fork(void);
/* Around os.fork() (os.register_at_fork's before, then after_in_parent, both in the forking
 * thread): the check thread stops for the fork and starts again after it, so that Python
 * 3.12+ finds the process single-threaded as under python3 and does not warn that a fork
 * of a multi-threaded process may deadlock. 0, or -1 with an exception. */
int mw_autocheck_fork_hook(void);
/* In a traced fork child, with the GIL: the check thread again (interval and line modes).
 * 0, or -1 with an exception. */
int mw_autocheck_restart_in_child(void);

#endif
