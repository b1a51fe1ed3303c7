/* Per-watcher memory budgets, charged from fault handlers too.
 *
 * Accounts live in memory of the engine's own (a mapping no watched page can share) and
 * are never freed while the engine lives: a pool slot may outlive its watcher and still
 * names the account it was charged to. */
#ifndef MW_ACCT_H
#define MW_ACCT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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

/* Async-signal-safe. */
static inline void mw_acct_uncharge(struct mw_acct *a, size_t n)
{
    atomic_fetch_sub_explicit(&a->used, n, memory_order_relaxed);
}

/* Charges n bytes whatever the limit (memory already taken, to be accounted for). */
static inline void mw_acct_charge(struct mw_acct *a, size_t n)
{
    atomic_fetch_add_explicit(&a->used, n, memory_order_relaxed);
}

#endif
