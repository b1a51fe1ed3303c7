/* Checks: find what changed in watched memory and route each change to the trace and to its
 * watcher's queue of changes for the callback. Needs the GIL. */
#ifndef MW_CHECK_H
#define MW_CHECK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "watcher.h"

/* One check of every watched page, waiting for a check another thread is running. Returns
 * the number of changes found, or -1 with an exception. */
Py_ssize_t mw_check_all(void);
/* In a fork child, from the pthread_atfork handler: no check is under way (the thread that
 * had one at the fork is not in the child). Async-signal-safe. */
void mw_check_after_fork(void);
/* How often memory ran out in checks: changes recorded with less than usual (their old
 * value unavailable, or their ranges only) or checks that left pages for the next one, and
 * changes lost (check.c, DESIGN). For the trace's statistics. */
void mw_check_shortfall(uint64_t *short_of_memory, uint64_t *lost);
/* The same; an automatic check (automatic != 0) is skipped (returns 0) while another
 * thread's check runs: that check finds the changes. */
Py_ssize_t mw_check_all_ex(int automatic);
/* A check at a line boundary: what is found on pages left open (the engine's shadowed
 * pages) is attributed to line_writer, the line and thread that just ran. */
Py_ssize_t mw_check_line(const struct mw_writer *line_writer);
/* The check an unwatch of region_id makes in the same engine step that forgets the region,
 * so that no write made before the unwatch is lost. Routes every region's changes like any
 * check; *unwatch_status gets the engine's status for the unwatch itself (MW_ENOENT when
 * the region was already gone). Returns like mw_check_all. */
Py_ssize_t mw_check_unwatch(mw_watcher *core, uint64_t region_id, int *unwatch_status);

#endif
