/* A traced process's fork child (os.fork, multiprocessing's fork start method): what
 * becomes of the parent's watches. Needs the GIL. */
#ifndef MW_FORK_H
#define MW_FORK_H

#include <stddef.h>

#include "registry.h"

/* Gives o a new engine watcher (the parent's belongs to the engine the fork left behind)
 * and keeps each of its watches on memory still shared with the parent, dropping those on
 * private copy-on-write memory. */
void mw_fork_rewatch(struct mw_owner *o, const struct mw_watcher_config *config);
/* The pthread_atfork child handler (async-signal-safe) says a fork happened; the first
 * call after it says 1 (the watches are to be made again), later ones 0. */
void mw_fork_happened(void);
int mw_fork_pending(void);

#endif
