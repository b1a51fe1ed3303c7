/* Watches of shared memory, in every traced process that maps it (issue 16).
 *
 * Page protection is per process: a parent's protection of a SharedMemory block does not
 * stop a worker's writes to the same physical pages. So a watch of memory mapped shared
 * from a backing object (a file, a block under /dev/shm, anonymous shared memory) is
 * published in a table every traced process of the run can read, by the mapping's identity
 * (device, inode, offset: the same bytes whatever the address). Every other traced process
 * that maps those bytes watches them too, under the same object of the trace (adopts it),
 * and its writes are recorded as its own: process, thread, line, exact bytes. See README,
 * "Processes". Needs the GIL, except where said. */
#ifndef MW_SHARED_WATCH_H
#define MW_SHARED_WATCH_H

#include <stddef.h>

struct mw_watched;

/* Finds the run's table in the run's shared memory (before the script runs). 0, or -1
 * when this process has none (untraced); then nothing is published. No GIL needed. */
int mw_shared_watch_init(void);
/* w was just watched in this process: when its bytes are memory mapped shared from a
 * backing object, every traced process that maps them watches them too. */
void mw_shared_watch_publish(struct mw_watched *w);
/* In a fork child, w was watched again (fork.h): its pages of shared memory learn which
 * process has them open, as in the parent. */
void mw_shared_watch_rebind(struct mw_watched *w);
/* w, which this process published, is no longer watched: the others stop. */
void mw_shared_watch_retract(struct mw_watched *w);
/* Watches here what other processes published and this process maps, and lets go of what
 * they retracted. Cheap when nothing changed since the last call (one atomic load). */
void mw_shared_watch_adopt(void);
/* Whether another process published a watch or retracted one since this process last
 * adopted (async-signal-safe: one atomic load). */
int mw_shared_watch_changed(void);

#endif
