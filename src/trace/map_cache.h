/* Large private mappings, kept for reuse instead of unmapped at once.
 *
 * The traced process sends a large change through a buffer of its own mapping (record.c:
 * heap memory there would share pages with watched objects). A fresh mapping per change
 * costs a page fault and a zeroed page per 4 KiB, and unmapping it a TLB shootdown on
 * every CPU: for a 1 MiB `a += 1` that was a sixth of the traced process's time. The cache
 * keeps a few freed mappings (MW_MAP_CACHE_BYTES in all) and hands them out again; their
 * contents are whatever was last written (callers write before they read). Thread-safe:
 * the checking thread takes, the sender thread gives back. */
#ifndef MW_TRACE_MAP_CACHE_H
#define MW_TRACE_MAP_CACHE_H

#include <stddef.h>

#define MW_MAP_CACHE_BYTES ((size_t)16 << 20)

/* A mapping of at least len bytes (*cap its real size: a cached one may be larger), or
 * NULL. */
void *mw_map_take(size_t len, size_t *cap);
/* Gives a mapping of cap bytes back: cached when it fits, else unmapped. */
void mw_map_give(void *p, size_t cap);
/* Held across fork() by the traced process's channel (channel.c), after it has stopped
 * the sender thread that gives buffers back: a child never inherits the lock taken, and
 * the lock is always taken after the channel's (as the sender takes them), whatever
 * order fork handlers would have run in. */
void mw_map_cache_lock_for_fork(void);
void mw_map_cache_unlock_after_fork(void);

#endif
