/* Pages left open because their neighbours are busy (state SHADOWED).
 *
 * DESIGN
 * - A page whose neighbours write it often (fault_path.c counts them) costs a single-step
 *   trap per neighbour write: in numpy code, where temporaries are allocated and filled next
 *   to small watched arrays all the time, that made watched runs 40 times slower. Once the
 *   fault path offers such a page (mw_fault_path_take_hot), and the caller can look at every
 *   line boundary (mw_engine_set_hot_hook), mw_engine_shadow_hot lifts its protection for
 *   good: neighbours then run at full speed, and the page's watched bytes are compared with
 *   its copy instead, at every check. The caller runs a check at each line boundary while
 *   pages are shadowed (mw_engine_shadows_changed tells it cheaply whether one is needed),
 *   naming the line that just ran as the writer: a write to a shadowed page is attributed
 *   to the line and thread at whose boundary it is first seen ("found by comparison",
 *   struct mw_change.compared).
 * - The copy is refreshed from the very bytes each comparison captured, never by reading
 *   the page again: a write landing between the comparison and the refresh shows at the
 *   next comparison, so nothing is lost.
 * - A shadowed page is protected again after SHADOW_NS: if its neighbours are still busy
 *   it is offered again within an epoch (a few dozen single-steps), if not it stays
 *   protected and exact at no cost.
 * - A write to an open page is seen at some thread's line boundary (or at a check that
 *   thread makes between two of its lines: src/python/check.c), and named after that
 *   thread's line: right while one thread runs the program, a guess once several do. The
 *   caller then bars shadows (mw_engine_allow_shadows): every open page is protected again
 *   at the next check, and busy pages trap (single-stepped neighbours, exact writers).
 * Engine lock held throughout. */
#include <string.h>
#include <time.h>

#include "engine.h"
#include "fault_path.h"
#include "mw_error.h"

#define SHADOW_NS ((uint64_t)1000000000)
#define HOT_BATCH 64

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct shadow *shadows(size_t *n)
{
    *n = engine.shadows.len / sizeof(struct shadow);
    return (struct shadow *)engine.shadows.p;
}

/* CLEAN page e -> SHADOWED: copied, unprotected, compared from now on. */
static int shadow_page_locked(struct mw_page *e)
{
    uint32_t s = MW_PAGE_CLEAN;
    if (page_nrefs(e) == 0 ||
        !atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_CHECKING))
        return 0;   /* written meanwhile, or leaving: it stays trapped */
    uint32_t ap = atomic_load(&e->acct_prot);
    uint32_t slot = mw_page_pool_take_copy(engine.pool, MW_ACCT_OF(ap), (const void *)e->addr);
    struct shadow sh = { e, monotonic_ns() };
    if (slot == MW_SLOT_NONE || svec_reserve(&engine.shadows, sizeof sh) != 0 ||
        engine.det->unprotect(e->addr, engine.page_size, MW_PROT_OF(ap)) != 0) {
        if (slot != MW_SLOT_NONE)
            mw_page_pool_release_copy(engine.pool, slot);
        page_leave_checking(e, MW_PAGE_CLEAN);
        return 0;
    }
    atomic_store(&e->slot, slot);
    svec_push(&engine.shadows, &sh, sizeof sh);
    size_t n = engine.shadows.len / sizeof sh;
    if (n > engine.shadows_peak)
        engine.shadows_peak = n;
    page_leave_checking(e, MW_PAGE_SHADOWED);
    return 1;
}

void shadows_take_hot_locked(void)
{
    if (engine.stopped)
        return;
    struct mw_page *hot[HOT_BATCH];
    size_t k;
    /* Barred: the offers are taken and declined; those pages stay trapped. */
    while ((k = mw_fault_path_take_hot(hot, HOT_BATCH)) > 0)
        for (size_t i = 0; i < k && !engine.shadows_barred; i++)
            shadow_page_locked(hot[i]);
}

void mw_engine_allow_shadows(int allowed)
{
    engine_lock();
    engine.shadows_barred = !allowed;
    engine_unlock();
}

int mw_engine_shadow_hot(void)
{
    engine_lock();
    size_t n = 0;
    if (engine_live_locked()) {
        shadows_take_hot_locked();
        shadows(&n);
    }
    engine_unlock();
    return (int)n;
}

void mw_engine_set_hot_hook(void (*hook)(void))
{
    engine_lock();
    engine.hot_hook = hook;
    if (engine_live_locked())
        mw_fault_path_set_hot_hook(hook);
    engine_unlock();
}

struct differs_ctx {
    const unsigned char *copy, *page;
};

static int span_differs(uintptr_t lo, uintptr_t hi, void *vctx)
{
    const struct differs_ctx *c = vctx;
    return memcmp(c->copy + lo, c->page + lo, hi - lo) != 0;
}

struct any_changed {
    size_t n;
    const struct shadow *sh;
    int changed;
};

static void compare_all(void *vctx)
{
    struct any_changed *a = vctx;
    for (size_t i = 0; i < a->n && !a->changed; i++) {
        struct mw_page *e = a->sh[i].e;
        struct differs_ctx c = { mw_page_pool_data(engine.pool, atomic_load(&e->slot)),
                                 (const unsigned char *)e->addr };
        a->changed = mw_page_each_span(e, span_differs, &c);
    }
}

int mw_engine_shadows_changed(void)
{
    engine_lock();
    struct any_changed a = { 0, NULL, 0 };
    if (engine_live_locked())
        a.sh = shadows(&a.n);
    /* A page unmapped meanwhile counts as a change: the check that follows finds out. */
    if (a.n && mw_fault_path_probe(compare_all, &a) != 0)
        a.changed = 1;
    engine_unlock();
    return a.changed;
}

/* Drops entry i of the shadow set (order does not matter). */
static void drop_shadow(size_t i)
{
    size_t n;
    struct shadow *sh = shadows(&n);
    sh[i] = sh[n - 1];
    engine.shadows.len -= sizeof(struct shadow);
}

/* Shadowed page i was unmapped by the program: it stays in the index, unprotected and
 * never compared, until its regions are unwatched (as check.c does for a dirty page). */
static void forget_unmapped(size_t i)
{
    size_t n;
    struct mw_page *e = shadows(&n)[i].e;
    uint32_t slot = atomic_exchange(&e->slot, MW_SLOT_NONE);
    if (slot != MW_SLOT_NONE)
        mw_page_pool_release_copy(engine.pool, slot);
    atomic_store(&e->state, MW_PAGE_UNTRACKED);
    drop_shadow(i);
}

void shadows_check_locked(const struct mw_writer *line_writer)
{
    size_t n;
    struct shadow *sh = shadows(&n);
    if (n == 0)
        return;
    uint64_t now = monotonic_ns();
    for (size_t i = n; i-- > 0;) {
        struct mw_page *e = sh[i].e;
        uint32_t slot = atomic_load(&e->slot);
        struct mw_slot_meta *m = mw_page_pool_meta(engine.pool, slot);
        if (line_writer)
            m->writer = *line_writer;
        else
            memset(&m->writer, 0, sizeof m->writer);
        m->fault_ns = now;
        if (now - sh[i].since_ns < SHADOW_NS && !engine.shadows_barred) {
            if (check_shadowed_page(e, slot) != 0)
                forget_unmapped(i);
            sh = shadows(&n);
            continue;
        }
        /* Long enough: protect it again, then a last comparison as for a dirty page. */
        uint32_t s = MW_PAGE_SHADOWED;
        atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_CHECKING);
        kwrite_order_point();   /* as check.c: a kernel write's pin keeps it open */
        int rearmed = !kwrite_pinned(e->addr, engine.page_size) &&
                      engine.det->rearm(e->addr, engine.page_size,
                                        MW_PROT_OF(atomic_load(&e->acct_prot))) == 0;
        if (!rearmed) {
            page_leave_checking(e, MW_PAGE_SHADOWED);
            sh[i].since_ns = now;
            if (check_shadowed_page(e, slot) != 0)
                forget_unmapped(i);
            sh = shadows(&n);
            continue;
        }
        atomic_store(&e->traps, 0);   /* a new epoch's budget: busy again, offered again */
        check_page(e, 1);
        drop_shadow(i);
        sh = shadows(&n);
    }
}

void shadow_forget_locked(struct mw_page *e)
{
    size_t n;
    struct shadow *sh = shadows(&n);
    for (size_t i = 0; i < n; i++)
        if (sh[i].e == e) {
            uint32_t slot = atomic_exchange(&e->slot, MW_SLOT_NONE);
            if (slot != MW_SLOT_NONE)
                mw_page_pool_release_copy(engine.pool, slot);
            drop_shadow(i);
            return;
        }
}

void shadows_release_all_locked(void)
{
    size_t n;
    struct shadow *sh = shadows(&n);
    for (size_t i = 0; i < n; i++) {
        struct mw_page *e = sh[i].e;
        uint32_t slot = atomic_exchange(&e->slot, MW_SLOT_NONE);
        if (slot != MW_SLOT_NONE)
            mw_page_pool_release_copy(engine.pool, slot);
        atomic_store(&e->state, MW_PAGE_UNTRACKED);
    }
    engine.shadows.len = 0;
}

size_t mw_engine_shadowed(void)
{
    engine_lock();
    size_t n = 0;
    if (engine_live_locked())
        shadows(&n);
    engine_unlock();
    return n;
}
