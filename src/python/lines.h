/* Checks at line boundaries (line mode): after a trap, at the writing thread's next line;
 * while pages are left open, at every line of every Python thread. lines.c states the
 * design; line_source.h where the line events come from. */
#ifndef MW_LINES_H
#define MW_LINES_H

#include <stdint.h>

#include "watcher.h"

typedef struct PyCodeObject PyCodeObject;

/* The check to run at a line boundary; writer is the line the thread has just run. 0, or -1
 * with a Python exception that is raised into that thread's code (--on-nan=raise). */
typedef int (*mw_lines_check_fn)(const struct mw_writer *writer);
/* Once, with the GIL: 0, or -1 with a Python exception. */
int mw_lines_init(mw_lines_check_fn fn);

/* Async-signal-safe, in a thread that just trapped: check at this thread's next line.
 * 0 when this thread runs no Python code or its line events are not available (then the
 * eval breaker and the poller serve). */
int mw_lines_check_here(void);

/* How many threads have a line check pending: while any has, a check elsewhere would cut
 * that line's writes in two (lines.c). */
int mw_lines_pending(void);

/* Has this thread a line check pending (a trap since its last event)? Needs the GIL. */
int mw_lines_pending_here(void);

/* Called after every check, with the GIL: compare mode on (pages are left open) or off. */
void mw_lines_set_compare(int on);
int mw_lines_comparing(void);
/* Nanoseconds since a thread last ran a line in compare mode (UINT64_MAX: never). */
uint64_t mw_lines_quiet_ns(void);

/* With the GIL: the line this thread runs now, as compare mode remembered it at its last
 * event (the writer a check made here names for open pages, as a line boundary would):
 * 1, or 0 (and *w untouched) when compare mode does not know it. */
int mw_lines_running_here(struct mw_writer *w);

/* With the GIL: the calling Python code has just watched an object. */
void mw_lines_watched_here(void);

/* For the line sources, with the GIL: a line boundary of the calling thread. code and line
 * are what the thread runs from now until its next event (code borrowed: it is running).
 * 0, or -1 with a Python exception to raise into the script. */
int mw_lines_event(PyCodeObject *code, int line);

void mw_lines_after_fork(void);

#endif
