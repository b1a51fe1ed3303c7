/* Writer attribution: which Python line (file, line, qualified function) the current thread
 * is executing, read the way faulthandler reads it, safely from a signal handler. */
#ifndef MW_LOCATION_H
#define MW_LOCATION_H

#include "watcher.h"

/* Fills file, function and line of *out from the calling thread's innermost Python frame.
 * Async-signal-safe: reads interpreter memory only, no allocation, no locks. Leaves the
 * fields empty when the thread runs no Python code. */
void mw_location_capture(struct mw_writer *out);

/* Fills file, function and line of *out for line of code (NULL: empty). Async-signal-safe
 * like mw_location_capture; the GIL makes code safe to read. */
typedef struct PyCodeObject PyCodeObject;
void mw_location_of_code(struct mw_writer *out, PyCodeObject *code, int line);

#endif
