/* The engine's rooms and what they share (internal: only src/core includes this; the
 * public face is watcher.h).
 *
 *   engine.c      the public face and the lock: setup, the backend, the writer hook, stop
 *                 and fork
 *   watch.c       watchers and regions: create/destroy, watch, unwatch, stats
 *   page_refs.c   which regions touch a page, and the span of watched bytes on it
 *   check.c       the check: collect dirty pages, re-protect, compare, merge, deliver
 *   kwrite.c      kernel writes into watched memory (read() into a watched buffer), and
 *                 memwatch's own beside watched bytes (mw_engine_write)
 *   shadow.c      pages left open because their neighbours are busy, compared instead
 *   own_memory.c  memory memwatch itself uses, which can never be watched
 *   scratch.c     growable scratch vectors in memory of the engine's own
 * Beside the engine, not part of it: arena.c, pages of small watched objects (arena.h).
 *
 * DESIGN
 * - One process-wide engine under one mutex (engine.lock): registration, unwatch, check
 *   and stats serialize on it. The fault handler never takes it. Functions named
 *   *_locked expect it held (engine_assert_locked checks it in debug builds).
 * - Regions: an engine-wide array sorted by id (ids only grow). Each page entry lists the
 *   regions that touch it (one inline pointer, or a vector when several share the page).
 * - Accounting: each page's index share is charged to one watcher (the page's account,
 *   moved to another watcher when that one leaves the page); region metadata and
 *   baselines to the region's watcher; each old copy to the page's account at fault time
 *   (the slot remembers which), released by the check. */
#ifndef MW_ENGINE_H
#define MW_ENGINE_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "acct.h"
#include "detector.h"
#include "page_pool.h"
#include "region_index.h"
#include "watcher.h"

struct mw_region {
    uint64_t id;
    uintptr_t addr;
    size_t size;
    void *user;
    struct mw_watcher *w;
    size_t charge;                 /* metadata bytes charged to w at watch time */
};

/* A region's presence on a page. baseline: a copy of the region's bytes on a page that
 * was already DIRTY when the region joined it, compared instead of the page's old copy
 * (which predates the region), so nothing written before the watch is reported. */
struct mw_ref {
    struct mw_region *r;
    unsigned char *baseline;
};

struct mw_watcher {
    uint32_t acct;
    size_t limit;
    size_t tracked_objects;
    size_t tracked_bytes;
    uint64_t checks_base;
    uint64_t pages_compared_base;
    uint64_t changes;
    uint64_t old_unavailable;
    uint64_t changes_compared;
};

/* Growable scratch in anonymous memory of our own: the checker may not allocate from the
 * heap while pages are CHECKING (check.c). */
struct svec {
    unsigned char *p;
    size_t len, cap;
};

#define ENGINE_SCRATCH 8

extern struct engine {
    pthread_mutex_t lock;
    pthread_t lock_owner;          /* valid while locked; for engine_assert_locked */
    int locked;
    int initialized;
    int detached;                  /* in a forked child: inert */
    int stopped;                   /* mw_engine_unprotect_all ran */
    int shadows_barred;            /* mw_engine_allow_shadows(0): no page is left open */
    size_t page_size;
    size_t page_cost;              /* index share of one page */
    size_t copy_cost;              /* one old copy */
    struct mw_region_index *index;
    struct mw_page_pool *pool;
    struct mw_acct *accts;
    size_t accts_bytes;
    uint32_t naccts;
    const struct mw_detector_ops *det;
    enum mw_backend want;          /* requested by mw_engine_set_backend; AUTO by default */
    mw_writer_hook hook;
    void *hook_ctx;
    void (*hot_hook)(void);        /* mw_engine_set_hot_hook: given to the fault path */
    size_t coalesce_gap;           /* mw_engine_set_coalesce_gap */
    uint64_t next_id;
    struct mw_region **regions;    /* sorted by id */
    size_t nregions, regions_cap;
    /* region_ids[i] is regions[i]'s id, kept when the region leaves (regions[i] = NULL, a
     * hole) so that lookups stay a binary search and a removal is O(1); holes are
     * compacted away when they are half the array (amortized O(1) per removal). */
    uint64_t *region_ids;
    size_t nholes;
    size_t limits_sum;
    uint64_t checks;
    uint64_t pages_compared;
    struct svec shadows;           /* struct shadow: the SHADOWED pages (shadow.c) */
    /* Every page ever watched lies in [watched_lo, watched_hi): a quick "no" for calls
     * that ask about ranges (munmap, mremap) without a lock. Only ever widens. */
    _Atomic uintptr_t watched_lo, watched_hi;
    void (*unmap_hook)(const void *addr, size_t len);
    size_t shadows_peak;
    union {
        struct {
            struct svec pages, recs, old, new_, writers, merged, ranges, frees;
        } s;
        struct svec all[ENGINE_SCRATCH];
    } scratch;
} engine;

/* engine.c */
void engine_lock(void);
void engine_unlock(void);
#define engine_assert_locked() \
    assert(engine.locked && pthread_equal(engine.lock_owner, pthread_self()))
/* Is the engine usable (initialized, not detached in a forked child)? Engine lock. */
int engine_live_locked(void);

/* scratch.c */
int svec_reserve(struct svec *v, size_t add);
void *svec_push(struct svec *v, const void *item, size_t n);
void svec_trim(struct svec *v);          /* empties; unmaps a big one */
int svec_overlaps(const struct svec *v, uintptr_t addr, size_t len);

/* page_refs.c: engine lock held. */
uint32_t page_nrefs(const struct mw_page *e);
/* The page's references; tmp holds an inline one. */
struct mw_ref *page_refs(struct mw_page *e, struct mw_ref *tmp);
int page_refs_add(struct mw_page *e, struct mw_region *r, unsigned char *baseline);
/* Removes r from the page; returns its baseline (the caller frees it). */
unsigned char *page_refs_remove(struct mw_page *e, struct mw_region *r);
/* Forgets every region of the page (an entry that could not be indexed). */
void page_refs_clear(struct mw_page *e);
/* The part of region r on the page at page: [window_lo, window_hi) in addresses. Inline:
 * a check asks for every region of every page it compares. */
static inline uintptr_t region_window_lo(const struct mw_region *r, uintptr_t page)
{
    return r->addr > page ? r->addr : page;
}
static inline uintptr_t region_window_hi(const struct mw_region *r, uintptr_t page)
{
    uintptr_t re = r->addr + r->size, pe = page + engine.page_size;
    return re < pe ? re : pe;
}

/* watch.c: engine lock held. */
void compact_regions_locked(void);
/* Maps pool segments ahead of need: a copy for every watched page (page_pool.h). */
void pool_keep_ahead_locked(void);
struct mw_region **find_region_locked(uint64_t id);
void remove_region_locked(struct mw_region *r);

/* check.c: engine lock held. line_writer: the line that just ran, for what is found on
 * shadowed pages (NULL: unknown). */
int check_locked(mw_change_fn fn, void *ctx, const struct mw_writer *line_writer);
/* Compares CHECKING page e (re-armed unless rearmed == 0) and makes it CLEAN. */
void check_page(struct mw_page *e, int rearmed);
/* Records what changed on SHADOWED page e against its copy (slot), and refreshes the copy.
 * -EFAULT when the page was unmapped (nothing recorded). */
int check_shadowed_page(struct mw_page *e, uint32_t slot);
int cmp_page_addr(const void *a, const void *b);   /* qsort of struct mw_page * by address */
/* Ends CHECKING (state to) and wakes the writers sleeping on the page (fault_path.c). */
void page_leave_checking(struct mw_page *e, uint32_t to);

/* shadow.c: engine lock held. */
struct shadow {
    struct mw_page *e;
    uint64_t since_ns;             /* when it was left open */
};
void shadows_check_locked(const struct mw_writer *line_writer);
/* Leaves open the pages the fault path offered since the last call. */
void shadows_take_hot_locked(void);
/* e leaves the set (its last region is leaving): its copy is released. */
void shadow_forget_locked(struct mw_page *e);
/* Every shadowed page becomes UNTRACKED (the engine stops). */
void shadows_release_all_locked(void);

/* The order between a kernel write's pin and a check of the same page (kwrite.c): each
 * side stores (pin / CHECKING), then passes this point, then reads the other's store; one
 * of them passes it first, and the other then sees its store. A seq_cst read-modify-write
 * of one shared word rather than a fence: ThreadSanitizer models the former. */
static inline void kwrite_order_point(void)
{
    static _Atomic unsigned word;
    atomic_fetch_add_explicit(&word, 0, memory_order_seq_cst);
}

/* kwrite.c: is a kernel write pinning part of [start, start+len)? */
int kwrite_pinned(uintptr_t start, size_t len);

/* own_memory.c: does [addr, addr+len) overlap memory memwatch itself uses? Engine lock. */
int owns_memory_locked(uintptr_t addr, size_t len);

/* The end of the run of pages that starts at pages[i] (sorted by address): consecutive
 * addresses, one original protection, and each accepted by keep (NULL: all). Pages in a
 * run can be protected or lifted with one call. */
size_t page_run_end(struct mw_page *const *pages, size_t i, size_t n,
                    int (*keep)(const struct mw_page *e));

#endif
