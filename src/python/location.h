/* Writer attribution: which Python line (file, line, qualified function) the current thread
 * is executing, read the way faulthandler reads it, safely from a signal handler. */
#ifndef MW_LOCATION_H
#define MW_LOCATION_H

#include "watcher.h"

typedef struct PyCodeObject PyCodeObject;

/* Fills file, function and line of *out from the calling thread's innermost Python frame.
 * Async-signal-safe: reads interpreter memory only, no allocation, no locks. Leaves the
 * fields empty when the thread runs no Python code. */
void mw_location_capture(struct mw_writer *out);

/* The code object of the calling thread's innermost Python frame (borrowed: alive while
 * that frame runs), or NULL. Async-signal-safe like mw_location_capture. */
PyCodeObject *mw_location_current_code(void);

/* The innermost frame's code (borrowed) and the line it is on; 0 (and NULL, 0) when the
 * thread runs no Python code. Needs the GIL; no allocation. */
int mw_location_current(PyCodeObject **code, int *line);

/* The caller of the innermost frame: its code (borrowed) and the line it is on. 0 (and
 * NULL, 0) when the innermost frame was called from C or there is none. Needs the GIL or
 * the caller's frames not to change meanwhile; no allocation. */
int mw_location_caller(PyCodeObject **code, int *line);

/* Fills file, function and line of *out for line of code (NULL: empty). Async-signal-safe
 * like mw_location_capture; the GIL makes code safe to read. */
void mw_location_of_code(struct mw_writer *out, PyCodeObject *code, int line);

#endif
