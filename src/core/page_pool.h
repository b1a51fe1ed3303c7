/* Preallocated storage for old page contents.
 *
 * DESIGN
 * The pool reserves one large range of virtual memory (PROT_NONE, MAP_NORESERVE) at
 * creation and commits a prefix of it (mprotect to read-write, still no physical memory)
 * as watchers' memory limits grow. Physical memory is only used for slots that a fault
 * handler actually wrote: it grows with the pages written, not with the bytes watched.
 *
 * Slots are handed out by a lock-free allocator usable from a signal handler: a Treiber
 * free list whose head packs (slot index + 1, tag) in one 64-bit word so that a pop racing
 * with a pop/push of the same slot fails its CAS (no ABA); when the free list is empty, a
 * high-water mark is bumped up to the committed capacity. Freeing is lock-free too.
 * Each slot has a metadata record (who wrote, when, whose budget paid) next to its data. */
#ifndef MW_PAGE_POOL_H
#define MW_PAGE_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "watcher.h"

#define MW_SLOT_NONE UINT32_MAX

struct mw_slot_meta {
    struct mw_writer writer;     /* filled at fault time */
    uint64_t fault_ns;           /* CLOCK_MONOTONIC of the first write */
    uint32_t acct;               /* account charged for this copy */
    _Atomic uint32_t next;       /* free-list link: slot index + 1, 0 = end */
};

struct mw_page_pool;

/* Reserves room for at most max_slots copies of page_size bytes. */
int mw_page_pool_create(size_t page_size, size_t max_slots, struct mw_page_pool **out);
void mw_page_pool_destroy(struct mw_page_pool *p);
/* Makes the first nslots slots usable (never shrinks). Not async-signal-safe; callers
 * serialize (engine lock). Returns 0 or -errno. */
int mw_page_pool_commit(struct mw_page_pool *p, size_t nslots);
size_t mw_page_pool_committed(const struct mw_page_pool *p);
size_t mw_page_pool_max_slots(const struct mw_page_pool *p);

/* Async-signal-safe and lock-free. MW_SLOT_NONE when every committed slot is taken. */
uint32_t mw_page_pool_alloc(struct mw_page_pool *p);
/* Async-signal-safe and lock-free. */
void mw_page_pool_free(struct mw_page_pool *p, uint32_t slot);
size_t mw_page_pool_in_use(const struct mw_page_pool *p);

void *mw_page_pool_data(const struct mw_page_pool *p, uint32_t slot);
struct mw_slot_meta *mw_page_pool_meta(const struct mw_page_pool *p, uint32_t slot);

/* Does [addr, addr+len) overlap memory reserved by the pool? */
int mw_page_pool_overlaps(const struct mw_page_pool *p, uintptr_t addr, size_t len);

#endif
