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

#endif
