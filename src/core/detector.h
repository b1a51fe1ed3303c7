/* One interface for the mechanisms that detect writes to watched pages.
 *
 * The engine (watcher.c) owns the page entries (region_index.h), their state machine,
 * the pool of old copies (page_pool.h) and the accounts; a detector makes writes to
 * CLEAN pages observable and hands back the pages written since the last collect.
 *
 * The mprotect mechanism (detect_mprotect.c): protect = mprotect without PROT_WRITE; the
 * first write faults, the SIGSEGV handler copies the old contents lazily, unprotects and
 * pushes the page on a lock-free dirty list; collect takes the list; rearm re-protects.
 *
 * The userfaultfd mechanism (detect_uffd.c): protect = UFFDIO_REGISTER of the whole VMAs
 * (lazily, once) + UFFDIO_WRITEPROTECT; in UFFD_FEATURE_SIGBUS mode the fault path is
 * mprotect's (both share fault_path.c), on SIGBUS, so old copies stay lazy and writers
 * known. (A WP_ASYNC variant would have to copy old contents at protect time and collect
 * with PAGEMAP_SCAN + PM_SCAN_WP_MATCHING; README "Backends" says why it is not used.) */
#ifndef MW_DETECTOR_H
#define MW_DETECTOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "page_pool.h"
#include "region_index.h"
#include "watcher.h"

/* Per-watcher budget, in memory of the engine's own so fault handlers may charge it.
 * Accounts are never freed while the engine lives (a pool slot may outlive its watcher
 * and still names the account it was charged to). */
struct mw_acct {
    _Atomic size_t used;          /* bytes charged: metadata, index share, copies */
    _Atomic size_t limit;
    _Atomic uint64_t faults;      /* first writes to pages charged here */
    _Atomic uint32_t copies;      /* pool slots charged here, not yet released */
    uint32_t live;                /* engine lock: a watcher owns it */
};

/* Async-signal-safe: charge n bytes if they fit under the limit. */
static inline int mw_acct_try_charge(struct mw_acct *a, size_t n)
{
    size_t u = atomic_load_explicit(&a->used, memory_order_relaxed);
    do {
        if (u + n > atomic_load_explicit(&a->limit, memory_order_relaxed))
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&a->used, &u, u + n,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return 1;
}

static inline void mw_acct_uncharge(struct mw_acct *a, size_t n)
{
    atomic_fetch_sub_explicit(&a->used, n, memory_order_relaxed);
}

struct mw_detector_env {
    struct mw_region_index *index;
    struct mw_page_pool *pool;
    struct mw_acct *accts;
    size_t page_size;
    size_t copy_cost;             /* charged per old copy: page + slot metadata */
};

struct mw_detector_ops {
    enum mw_backend backend;
    int (*available)(void);
    int (*init)(const struct mw_detector_env *env);
    /* Start detecting writes to [start, start+len): pages are indexed and CLEAN. prot is
     * the pages' original protection. 0 or -errno. */
    int (*protect)(uintptr_t start, size_t len, int prot);
    /* Stop detecting; restore prot. 0 or -errno. */
    int (*unprotect)(uintptr_t start, size_t len, int prot);
    /* Re-arm collected pages (now CHECKING) before they are compared. 0 or -errno; an error
     * when part of the range is no longer mapped, so that nothing reads it (watcher.c). */
    int (*rearm)(uintptr_t start, size_t len, int prot);
    /* Takes every page written since the last collect (state DIRTY), linked through
     * ->next, NULL-terminated. */
    struct mw_page *(*collect)(void);
    /* Puts a DIRTY page back for the next collect. */
    void (*requeue)(struct mw_page *e);
    /* Async-signal-safe: is anything waiting for collect? */
    int (*has_dirty)(void);
    void (*set_writer_hook)(mw_writer_hook hook, void *ctx);
    /* Does [addr, addr+len) overlap memory the detector allocated? */
    int (*overlaps)(uintptr_t addr, size_t len);
    /* In a forked child: drop the dirty list without touching it further. */
    void (*detach)(void);
};

extern const struct mw_detector_ops mw_detect_mprotect;
extern const struct mw_detector_ops mw_detect_uffd;   /* detect_uffd.c: SIGBUS mode */

/* Neighbour writes single-stepped per page between two checks (see fault_path.c);
 * past it, a neighbour's write leaves the page open until the next check (writer unknown),
 * which bounds the cost of watching small objects in busy allocator pools. */
#define MW_NEIGHBOUR_BUDGET 32

#endif
