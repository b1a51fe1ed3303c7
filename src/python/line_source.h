/* Where lines.c's line boundaries come from: the interpreter's own line events, which
 * differ by CPython version. Exactly one source is built into each injected library
 * (src/python/CMakeLists.txt):
 *   lines_settrace.c    3.11: a C trace function written into thread states
 *   lines_monitoring.c  3.12 and later: sys.monitoring (PEP 669)
 * Each source delivers events to mw_lines_event (lines.h); these are its duties. */
#ifndef MW_LINE_SOURCE_H
#define MW_LINE_SOURCE_H

#include <Python.h>

/* Once, with the GIL, before any other call: 0, or -1 with a Python exception. A source
 * that cannot work (another tool holds what it needs) returns 0 and arms nothing; line
 * checks then come from the eval breaker and the poller. */
int mw_line_source_start(void);

/* Async-signal-safe, in a thread that just trapped: the calling thread will have an event
 * at its next line (or when its current frame returns). 0 when that cannot be promised
 * (no Python code running, or events are not available there); the caller then asks for
 * a check another way. */
int mw_line_source_arm_here(void);

/* The same from inside this thread's own event (its check trapped): next is the code
 * that runs after the event (NULL: C). The event stays on while lines.c has a check
 * pending. Async-signal-safe. */
int mw_line_source_arm_in_event(PyCodeObject *next);

/* With the GIL: every line of every thread has an event (on), or only what arm_here and
 * watched_from_here asked for (off). */
void mw_line_source_all_lines(int on);

/* With the GIL, at every check: what the fault handler asked for that needs the GIL. */
void mw_line_source_at_check(void);

/* With the GIL, when the calling Python code has just watched an object: it is likely to
 * write it next. */
void mw_line_source_watched_from_here(void);

/* With the GIL, after an event: this thread needs no more events for now. */
void mw_line_source_done_here(void);

void mw_line_source_after_fork(void);

#endif
