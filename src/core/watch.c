/* Watchers and their regions: create and destroy a watcher, watch a range (index its
 * pages and protect the new ones), unwatch it (forget its pages), statistics.
 *
 * DESIGN
 * - Watching is two passes: the first validates every page (mapped, readable) and sizes
 *   the charge without changing anything, the second attaches the region to each page,
 *   indexing and protecting new pages in runs. A failure in the second pass rolls back
 *   through the ordinary removal path.
 * - A region joining a page that is already DIRTY gets a baseline (struct mw_ref), so
 *   nothing written before the watch is reported.
 * - Removal: when the last region leaves a CLEAN page, it is marked REMOVED (faults on it
 *   retry), unprotected, then dropped from the index. A DIRTY page left without regions
 *   (an orphan) is already unprotected: the next check drops it after releasing its copy. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"
#include "memory_map.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "signal_chain.h"

#define DEFAULT_LIMIT ((size_t)1 << 30)
#define MAX_ACCTS_USED ((uint32_t)(engine.accts_bytes / sizeof(struct mw_acct)))

static uintptr_t page_of(uintptr_t addr)
{
    return addr & ~(uintptr_t)(engine.page_size - 1);
}

/* ---- watchers ---------------------------------------------------------------------- */

void pool_keep_ahead_locked(void)
{
    engine_assert_locked();
    /* Every watched page can be written between two checks: room for a copy of each, on
     * top of the copies held now, and never beyond what the watchers' limits allow. The
     * pool maps segments only for that (page_pool.h), so address space follows what is
     * watched. */
    size_t want = mw_page_pool_in_use(engine.pool) + mw_region_index_count(engine.index) +
                  MW_POOL_SEGMENT_SLOTS;
    size_t allowed = engine.limits_sum / engine.copy_cost;
    mw_page_pool_commit(engine.pool, want < allowed ? want : allowed);
}

/* A free account (engine lock): one no watcher owns and no old copy still names. */
static int take_account_locked(uint32_t *out)
{
    uint32_t a;
    for (a = 0; a < engine.naccts; a++)
        if (!engine.accts[a].live && atomic_load(&engine.accts[a].copies) == 0)
            break;
    if (a == engine.naccts) {
        if (engine.naccts == MAX_ACCTS_USED)
            return MW_ELIMIT;
        engine.naccts++;
    }
    *out = a;
    return 0;
}

int mw_watcher_create(const struct mw_watcher_config *config, mw_watcher **out)
{
    if (!out)
        return MW_EINVAL;
    *out = NULL;
    if (config && !mw_engine_backend_available(config->backend))
        return MW_EBACKEND;
    int rc = mw_engine_init();
    if (rc)
        return rc;
    if (config && config->backend != MW_BACKEND_AUTO &&
        (rc = mw_engine_set_backend(config->backend)) != 0)
        return rc;
    struct mw_watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    engine_lock();
    uint32_t a;
    if ((rc = take_account_locked(&a)) != 0) {
        engine_unlock();
        free(w);
        return rc;
    }
    size_t limit = config && config->max_memory_bytes ? config->max_memory_bytes
                                                       : DEFAULT_LIMIT;
    struct mw_acct *acct = &engine.accts[a];
    atomic_store(&acct->used, 0);
    atomic_store(&acct->limit, limit);
    atomic_store(&acct->faults, 0);
    acct->live = 1;
    w->acct = a;
    w->limit = limit;
    w->checks_base = engine.checks;
    w->pages_compared_base = engine.pages_compared;
    engine.limits_sum += limit;
    pool_keep_ahead_locked();
    engine_unlock();
    *out = w;
    return 0;
}

void mw_watcher_destroy(mw_watcher *w)
{
    if (!w)
        return;
    engine_lock();
    if (!engine.detached) {
        for (size_t i = engine.nregions; i-- > 0;)
            if (engine.regions[i] && engine.regions[i]->w == w)
                remove_region_locked(engine.regions[i]);
        compact_regions_locked();
        engine.accts[w->acct].live = 0;
        engine.limits_sum -= w->limit;
        mw_region_index_reclaim(engine.index);
    }
    engine_unlock();
    free(w);
}

void mw_watcher_stats(const mw_watcher *w, struct mw_watcher_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!w)
        return;
    engine_lock();
    const struct mw_acct *a = &engine.accts[w->acct];
    out->tracked_objects = w->tracked_objects;
    out->tracked_bytes = w->tracked_bytes;
    out->memory_used_bytes = atomic_load(&a->used);
    out->memory_limit_bytes = w->limit;
    out->faults = atomic_load(&a->faults);
    out->checks = engine.checks - w->checks_base;
    out->pages_compared = engine.pages_compared - w->pages_compared_base;
    out->changes = w->changes;
    out->old_unavailable = w->old_unavailable;
    out->changes_compared = w->changes_compared;
    out->pages_open = engine.shadows.len / sizeof(struct shadow);
    out->pages_open_peak = engine.shadows_peak;
    engine_unlock();
}

/* ---- the region array ---------------------------------------------------------------- */

struct mw_region **find_region_locked(uint64_t id)
{
    size_t lo = 0, hi = engine.nregions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (engine.region_ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < engine.nregions && engine.region_ids[lo] == id && engine.regions[lo]
               ? &engine.regions[lo] : NULL;
}

/* Squeezes the holes out of the region array (not while iterating it). */
void compact_regions_locked(void)
{
    engine_assert_locked();
    if (engine.nholes < 1024 || engine.nholes * 2 < engine.nregions)
        return;
    size_t j = 0;
    for (size_t i = 0; i < engine.nregions; i++) {
        if (!engine.regions[i])
            continue;
        engine.regions[j] = engine.regions[i];
        engine.region_ids[j] = engine.region_ids[i];
        j++;
    }
    engine.nregions = j;
    engine.nholes = 0;
}

/* Appends r with the next id; ids only grow, so the array stays sorted. */
static int append_region_locked(struct mw_region *r)
{
    compact_regions_locked();
    if (engine.nregions == engine.regions_cap) {
        size_t ids_cap = engine.regions_cap, regions_cap = engine.regions_cap;
        if (MW_GROW(engine.region_ids, ids_cap, engine.nregions + 1) != 0 ||
            MW_GROW(engine.regions, regions_cap, engine.nregions + 1) != 0)
            return -ENOMEM;
        engine.regions_cap = ids_cap < regions_cap ? ids_cap : regions_cap;
    }
    r->id = engine.next_id++;
    engine.region_ids[engine.nregions] = r->id;
    engine.regions[engine.nregions++] = r;
    r->w->tracked_objects++;
    r->w->tracked_bytes += r->size;
    return 0;
}

/* ---- removal ------------------------------------------------------------------------ */

static void free_baseline(unsigned char *b, const struct mw_region *r, size_t bytes)
{
    if (!b)
        return;
    free(b);
    mw_acct_uncharge(&engine.accts[r->w->acct], bytes);
}

/* r has left page e, which other regions still touch: if r's watcher paid the page's
 * index share, hand it to a watcher still on the page. */
static void hand_over_page_share(struct mw_page *e, const struct mw_region *r)
{
    uint32_t ap = atomic_load(&e->acct_prot);
    if (MW_ACCT_OF(ap) != r->w->acct)
        return;
    struct mw_ref tmp, *refs = page_refs(e, &tmp);
    uint32_t to = refs[0].r->w->acct;
    for (uint32_t i = 0; i < page_nrefs(e); i++)
        if (refs[i].r->w->acct == r->w->acct)
            return;   /* the same watcher is still on the page */
    mw_acct_uncharge(&engine.accts[r->w->acct], engine.page_cost);
    mw_acct_charge(&engine.accts[to], engine.page_cost);
    atomic_store(&e->acct_prot, MW_ACCT_PROT(to, MW_PROT_OF(ap)));
}

/* Page e lost its last region: a CLEAN page becomes REMOVED and goes on gone, to be
 * unprotected and forgotten; an UNTRACKED one (never protected) is forgotten now; a DIRTY
 * one is an orphan the next check drops. */
static void retire_page_locked(struct mw_page *e, struct svec *gone)
{
    uint32_t ap = atomic_load(&e->acct_prot);
    mw_acct_uncharge(&engine.accts[MW_ACCT_OF(ap)], engine.page_cost);
    for (;;) {
        uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (s == MW_PAGE_FAULTING || s == MW_PAGE_OPEN) {
            sched_yield();
            continue;
        }
        if (s == MW_PAGE_SHADOWED) {
            /* Open already: nothing to unprotect. */
            shadow_forget_locked(e);
            atomic_store(&e->state, MW_PAGE_REMOVED);
            mw_region_index_remove(engine.index, e);
            return;
        }
        if (s != MW_PAGE_CLEAN && s != MW_PAGE_UNTRACKED)
            return;
        if (!atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_REMOVED))
            continue;
        if (s == MW_PAGE_CLEAN)
            svec_push(gone, &e, sizeof(e));
        else
            mw_region_index_remove(engine.index, e);
        return;
    }
}

/* Unprotects the retired pages in runs, then forgets them. A run that cannot be
 * unprotected (VMA limit) stays as CLEAN orphans; a write makes them DIRTY orphans,
 * which a check drops. */
static void forget_retired_locked(struct svec *gone)
{
    struct mw_page **g = (struct mw_page **)gone->p;
    size_t ng = gone->len / sizeof(*g), ps = engine.page_size;
    for (size_t i = 0, j; i < ng; i = j) {
        j = page_run_end(g, i, ng, NULL);
        int prot = MW_PROT_OF(atomic_load(&g[i]->acct_prot));
        int unprotected = engine.det->unprotect(g[i]->addr, (j - i) * ps, prot) == 0;
        for (size_t k = i; k < j; k++) {
            if (unprotected)
                mw_region_index_remove(engine.index, g[k]);
            else
                mw_page_set_state(g[k], MW_PAGE_REMOVED, MW_PAGE_CLEAN);
        }
    }
    gone->len = 0;
}

/* Removes region r from every page it touches, then frees it. */
void remove_region_locked(struct mw_region *r)
{
    engine_assert_locked();
    uintptr_t first = page_of(r->addr), last = page_of(r->addr + r->size - 1);
    struct svec *gone = &engine.scratch.s.frees;
    gone->len = 0;
    for (uintptr_t page = first;; page += engine.page_size) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            unsigned char *b = page_refs_remove(e, r);
            free_baseline(b, r, region_window_hi(r, page) - region_window_lo(r, page));
            if (page_nrefs(e) == 0)
                retire_page_locked(e, gone);
            else
                hand_over_page_share(e, r);
        }
        if (page == last)
            break;
    }
    forget_retired_locked(gone);

    mw_acct_uncharge(&engine.accts[r->w->acct], r->charge);
    r->w->tracked_objects--;
    r->w->tracked_bytes -= r->size;
    struct mw_region **slot = find_region_locked(r->id);
    if (slot) {
        *slot = NULL;
        engine.nholes++;
    }
    free(r);
}

/* ---- watch --------------------------------------------------------------------------- */

/* What pass 1 learned about the pages of [addr, addr+size). */
struct watch_plan {
    uintptr_t first, last;
    size_t new_pages, existing, baseline_bytes;
};

/* Pass 1: every page is mapped and readable; sizes the charge. Changes nothing. */
static int plan_watch_locked(uintptr_t addr, size_t size, struct watch_plan *plan)
{
    struct mw_region probe = { .addr = addr, .size = size };
    uintptr_t vs = 0, ve = 0;
    int vprot = 0;
    for (uintptr_t page = plan->first;; page += engine.page_size) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            uint32_t s = atomic_load(&e->state);
            if (page_nrefs(e) == 0)
                plan->new_pages++;
            else
                plan->existing++;
            if (s == MW_PAGE_DIRTY || s == MW_PAGE_FAULTING)
                plan->baseline_bytes += region_window_hi(&probe, page) - region_window_lo(&probe, page);
        } else {
            if (page < vs || page >= ve) {
                int rc = mw_vma_query(page, &vs, &ve, &vprot);
                if (rc)
                    return rc;
            }
            if (!(vprot & PROT_READ))
                return MW_EUNMAPPED;    /* PROT_NONE: inaccessible, nothing to watch */
            plan->new_pages++;
        }
        if (page == plan->last)
            break;
    }
    return 0;
}

/* A run of contiguous new pages with one protection, protected in one call. */
struct run {
    uintptr_t start, end;
    int prot;
};

static int protect_flush(struct run *run)
{
    int rc = 0;
    if (run->end > run->start)
        rc = engine.det->protect(run->start, run->end - run->start, run->prot);
    run->start = run->end = 0;
    return rc;
}

/* Attaches r to page e, which is indexed already (taking a baseline if it is DIRTY). */
static int attach_existing_locked(struct mw_region *r, struct mw_page *e, uintptr_t page)
{
    uint32_t s;
    while ((s = atomic_load_explicit(&e->state, memory_order_acquire)) == MW_PAGE_FAULTING ||
           s == MW_PAGE_OPEN)
        sched_yield();
    unsigned char *baseline = NULL;
    size_t lo = region_window_lo(r, page), hi = region_window_hi(r, page);
    if (s == MW_PAGE_DIRTY) {
        baseline = malloc(hi - lo);
        if (!baseline)
            return -ENOMEM;
        memcpy(baseline, (const void *)lo, hi - lo);
        mw_acct_charge(&engine.accts[r->w->acct], hi - lo);
    } else if (s == MW_PAGE_SHADOWED) {
        /* The copy predates the region: its bytes start from what they are now. */
        unsigned char *copy = mw_page_pool_data(engine.pool, atomic_load(&e->slot));
        memcpy(copy + (lo - page), (const void *)lo, hi - lo);
    }
    if (page_nrefs(e) == 0) {
        /* An orphan page: this watcher takes its index share. */
        uint32_t ap = atomic_load(&e->acct_prot);
        atomic_store(&e->acct_prot, MW_ACCT_PROT(r->w->acct, MW_PROT_OF(ap)));
    }
    int rc = page_refs_add(e, r, baseline);
    if (rc != 0)
        free_baseline(baseline, r, hi - lo);
    return rc;
}

/* Indexes a new page for r and adds it to the run to protect (when it is writable). */
static int attach_new_locked(struct mw_region *r, uintptr_t page, int vprot, struct run *run)
{
    int tracked = (vprot & PROT_WRITE) && !engine.stopped;
    struct mw_page *e = mw_region_index_page_new(engine.index, page);
    if (!e)
        return -ENOMEM;
    atomic_store(&e->acct_prot, MW_ACCT_PROT(r->w->acct, vprot));
    atomic_store(&e->state, tracked ? MW_PAGE_CLEAN : MW_PAGE_UNTRACKED);
    page_refs_add(e, r, NULL);
    int rc = mw_region_index_insert(engine.index, e);
    if (rc != 0) {
        page_refs_clear(e);
        mw_region_index_remove(engine.index, e);
        return rc;
    }
    if (!tracked)
        return 0;
    if (run->end != page || run->prot != vprot) {
        if ((rc = protect_flush(run)) != 0)
            return rc;
        run->start = page;
        run->prot = vprot;
    }
    run->end = page + engine.page_size;
    return 0;
}

/* Pass 2: attaches r to every page; protects new ones in runs. */
static int attach_region_locked(struct mw_region *r, const struct watch_plan *plan)
{
    struct run run = { 0, 0, 0 };
    uintptr_t vs = 0, ve = 0;
    int vprot = 0, rc = 0;
    for (uintptr_t page = plan->first;; page += engine.page_size) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            rc = attach_existing_locked(r, e, page);
        } else {
            if (page < vs || page >= ve)
                rc = mw_vma_query(page, &vs, &ve, &vprot);
            if (rc == 0)
                rc = attach_new_locked(r, page, vprot, &run);
        }
        if (rc != 0 || page == plan->last)
            break;
    }
    int flushed = protect_flush(&run);
    return rc ? rc : flushed;
}

/* Undoes a failed attach: remove_region_locked uncharges r->charge, the index share of each
 * page the region was alone on, and each baseline it frees; r->charge is set to the part
 * of pass 1's charge that no attached page carries. */
static void roll_back_locked(struct mw_region *r, const struct watch_plan *plan, size_t fixed)
{
    size_t alone = 0;
    for (uintptr_t page = plan->first;; page += engine.page_size) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e && page_nrefs(e) == 1) {
            struct mw_ref tmp, *refs = page_refs(e, &tmp);
            if (refs[0].r == r)
                alone++;
        }
        if (page == plan->last)
            break;
    }
    r->charge = fixed - alone * engine.page_cost;
    remove_region_locked(r);
}

static int watch_locked(mw_watcher *w, uintptr_t addr, size_t size, void *user,
                        uint64_t *id_out)
{
    engine_assert_locked();
    struct watch_plan plan = { .first = page_of(addr), .last = page_of(addr + size - 1) };
    if (owns_memory_locked(plan.first, plan.last + engine.page_size - plan.first))
        return MW_EOWN;
    int rc = plan_watch_locked(addr, size, &plan);
    if (rc)
        return rc;
    struct mw_acct *acct = &engine.accts[w->acct];
    size_t charge = sizeof(struct mw_region) + plan.existing * sizeof(struct mw_ref);
    size_t fixed = charge + plan.new_pages * engine.page_cost;
    /* Baselines are charged one by one as pass 2 takes them (a page may become dirty
     * meanwhile); here they only count towards the limit test. */
    if (!mw_acct_try_charge(acct, fixed + plan.baseline_bytes))
        return MW_ELIMIT;
    mw_acct_uncharge(acct, plan.baseline_bytes);

    struct mw_region *r = malloc(sizeof(*r));
    if (r)
        *r = (struct mw_region){ .addr = addr, .size = size, .user = user, .w = w,
                                 .charge = charge };
    if (!r || append_region_locked(r) != 0) {
        free(r);
        mw_acct_uncharge(acct, fixed);
        return -ENOMEM;
    }
    if ((rc = attach_region_locked(r, &plan)) != 0) {
        roll_back_locked(r, &plan, fixed);
        return rc;
    }
    /* The index share now belongs to the pages; the rest is the region's own. */
    if (id_out)
        *id_out = r->id;
    pool_keep_ahead_locked();
    uintptr_t lo = atomic_load(&engine.watched_lo), hi = plan.last + engine.page_size;
    if (!lo || plan.first < lo)
        atomic_store(&engine.watched_lo, plan.first);
    if (hi > atomic_load(&engine.watched_hi))
        atomic_store(&engine.watched_hi, hi);
    return 0;
}

int mw_watcher_watch(mw_watcher *w, const void *addr, size_t size, void *user,
                     uint64_t *region_id_out)
{
    if (!w || !addr || size == 0 || (uintptr_t)addr + size < (uintptr_t)addr)
        return MW_EINVAL;
    mw_signal_altstack_ensure();
    engine_lock();
    int rc = engine.detached ? MW_EBACKEND
             : !engine.initialized ? MW_EINVAL
             : watch_locked(w, (uintptr_t)addr, size, user, region_id_out);
    engine_unlock();
    return rc;
}

int mw_watcher_unwatch(mw_watcher *w, uint64_t region_id, mw_change_fn fn, void *ctx)
{
    if (!w)
        return MW_EINVAL;
    engine_lock();
    int rc = 0;
    struct mw_region **slot = engine_live_locked() ? find_region_locked(region_id) : NULL;
    if (!slot || (*slot)->w != w) {
        rc = MW_ENOENT;
    } else {
        /* Without fn a check would re-protect every dirty page and drop what it found,
         * other regions' changes included: those stay pending instead. */
        int n = fn ? check_locked(fn, ctx, NULL) : 0;
        slot = find_region_locked(region_id);
        remove_region_locked(*slot);
        compact_regions_locked();
        mw_region_index_reclaim(engine.index);
        if (n < 0)
            rc = n;
    }
    engine_unlock();
    return rc;
}

void mw_engine_share_pages(const void *start, size_t len,
                           struct mw_xproc_word *(*word_of)(uintptr_t page, void *ctx), void *ctx)
{
    if (!len)
        return;
    engine_lock();
    if (engine.index) {
        uintptr_t first = page_of((uintptr_t)start), last = page_of((uintptr_t)start + len - 1);
        for (uintptr_t p = first; p <= last; p += engine.page_size) {
            struct mw_page *e = mw_region_index_lookup(engine.index, p);
            if (e && e->addr == p)
                atomic_store_explicit(&e->xowner, word_of(p, ctx), memory_order_release);
        }
    }
    engine_unlock();
}
