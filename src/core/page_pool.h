/* Preallocated storage for old page contents.
 *
 * DESIGN
 * The pool is made of segments of MW_POOL_SEGMENT_SLOTS slots, each a mapping of its own
 * (MAP_NORESERVE: no physical memory until a fault handler writes a slot), mapped as they
 * are needed (mw_page_pool_commit, under the caller's lock) and published before the
 * capacity that covers them grows, so a handler never sees a slot without its segment. So
 * the pool takes address space in proportion to the copies it holds (plus a little
 * headroom), never to a limit nobody reaches: a process under `ulimit -v` watches as long
 * as what it writes fits. Physical memory grows with the pages written, not with the
 * bytes watched.
 *
 * Slots are handed out by a lock-free allocator usable from a signal handler: a Treiber
 * free list whose head packs (slot index + 1, tag) in one 64-bit word so that a pop racing
 * with a pop/push of the same slot fails its CAS (no ABA); when the free list is empty, a
 * high-water mark is bumped up to the committed capacity. Freeing is lock-free too.
 * Each slot has a metadata record (who wrote, when, whose budget paid) next to its data.
 *
 * Copies: the fault path and the check keep a page's old contents with
 * mw_page_pool_take_copy (charge the page's account, take a slot, copy the page) and give
 * it back with mw_page_pool_release_copy; both are async-signal-safe, so a copy is taken
 * and released the same way wherever it happens. */
#ifndef MW_PAGE_POOL_H
#define MW_PAGE_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "acct.h"
#include "mw_writer.h"

#define MW_SLOT_NONE UINT32_MAX
/* Slots per segment (16 MiB of 4 KiB pages). */
#define MW_POOL_SEGMENT_SLOTS 4096u

struct mw_slot_meta {
    struct mw_writer writer;     /* filled at fault time */
    uint64_t fault_ns;           /* CLOCK_MONOTONIC of the first write */
    uint32_t acct;               /* account charged for this copy */
    _Atomic uint32_t next;       /* free-list link: slot index + 1, 0 = end */
};

struct mw_page_pool;

/* A pool of at most max_slots copies of page_size bytes (nothing mapped yet); copies are
 * charged to accts[slot's account]. */
int mw_page_pool_create(size_t page_size, size_t max_slots, struct mw_acct *accts,
                        struct mw_page_pool **out);
void mw_page_pool_destroy(struct mw_page_pool *p);
/* Makes the first nslots slots usable (never shrinks), mapping the segments that needs.
 * Not async-signal-safe; callers serialize (engine lock). Returns 0 or -errno (the pool
 * keeps what it could map). */
int mw_page_pool_commit(struct mw_page_pool *p, size_t nslots);
size_t mw_page_pool_committed(const struct mw_page_pool *p);

/* Async-signal-safe and lock-free. MW_SLOT_NONE when every committed slot is taken. */
uint32_t mw_page_pool_alloc(struct mw_page_pool *p);
/* Async-signal-safe and lock-free. */
void mw_page_pool_free(struct mw_page_pool *p, uint32_t slot);
size_t mw_page_pool_in_use(const struct mw_page_pool *p);

/* Async-signal-safe: a copy of the page_size bytes at page, charged to account acct
 * (its copy cost, mw_page_pool_copy_cost), with its metadata cleared but for the account.
 * MW_SLOT_NONE when the account's limit or the pool is exhausted (nothing charged). */
uint32_t mw_page_pool_take_copy(struct mw_page_pool *p, uint32_t acct, const void *page);
/* Async-signal-safe: gives back a slot from mw_page_pool_take_copy and its charge. */
void mw_page_pool_release_copy(struct mw_page_pool *p, uint32_t slot);
/* What one copy costs its account: the page and its metadata record. */
size_t mw_page_pool_copy_cost(const struct mw_page_pool *p);

void *mw_page_pool_data(const struct mw_page_pool *p, uint32_t slot);
struct mw_slot_meta *mw_page_pool_meta(const struct mw_page_pool *p, uint32_t slot);

/* Does [addr, addr+len) overlap memory reserved by the pool? */
int mw_page_pool_overlaps(const struct mw_page_pool *p, uintptr_t addr, size_t len);

#endif
