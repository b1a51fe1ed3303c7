/* The check: find what changed on the pages written since the last check.
 *
 * DESIGN
 * - check_locked takes every dirty page from the fault path, sorts them by address, and
 *   for each run of contiguous pages: marks them CHECKING, re-arms (re-protects) the run
 *   FIRST, then compares each page against its old copy and marks it CLEAN. A writer
 *   faulting on a CHECKING page waits for CLEAN, so the bytes compared cannot change
 *   underneath and every write lands in this check or the next.
 * - While pages are CHECKING the checker writes only to memory of its own (scratch, the
 *   pool, the index's slabs): a write of ours to a watched page in that window would wait
 *   for ourselves. Changed bytes (old and new) are copied into scratch, so the callback
 *   sees a consistent snapshot after the pages are writable again. Memory to free (a
 *   baseline, and the pointer to it in a region list that lives in malloc'd memory) is
 *   released only once every page is CLEAN (struct deferred_free).
 * - Cost follows the dirty pages, not the number of watched regions.
 * - deliver merges each region's ranges (across page boundaries too) into one change per
 *   region, attributed to the earliest write seen. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "diff.h"
#include "engine.h"
#include "xproc_page.h"
#include "fault_path.h"

/* One changed range found by a check, before merging. */
struct rec {
    struct mw_region *r;
    size_t off, len;               /* in the region */
    size_t old_off;                /* in scratch.old, SIZE_MAX: unavailable */
    size_t new_off;                /* in scratch.new_ */
    uint32_t wi;                   /* in scratch.writers, UINT32_MAX: unknown */
};

struct wrec {
    struct mw_writer w;
    uint64_t ns;
    int compared;                  /* found by comparing a shadowed page (shadow.c) */
};

/* See DESIGN. clear (when set) is the pointer to reset. */
struct deferred_free {
    void *p;
    size_t bytes;
    uint32_t acct;
    unsigned char **clear;
};

#define WRITER_NOT_YET (UINT32_MAX - 1)
/* Coalesced records' alignment (emit_range): element sizes 1, 2, 4, 8 and 16 divide it. */
#define MW_COALESCE_ALIGN 16

static const struct mw_writer unknown_writer;
/* Set while shadowed pages are compared: their writer records say so. */
static int comparing_shadows;

int cmp_page_addr(const void *a, const void *b)
{
    uintptr_t x = (*(struct mw_page *const *)a)->addr, y = (*(struct mw_page *const *)b)->addr;
    return x < y ? -1 : x > y;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->r->id != y->r->id)
        return x->r->id < y->r->id ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* ---- comparing one page ---------------------------------------------------------------- */

struct page_ctx {
    struct mw_region *r;
    size_t region_off;             /* offset in the region of the window's start */
    const unsigned char *old, *cur;
    uint32_t *wi;                  /* the page's writer record, created on first change */
    uint32_t slot;
    size_t pend_off, pend_len;     /* the run emit_range is growing; pend_len 0: none */
    size_t window;                 /* bytes of the region on this page */
};

static uint32_t writer_record(uint32_t slot)
{
    if (slot == MW_SLOT_NONE)
        return UINT32_MAX;
    struct mw_slot_meta *m = mw_page_pool_meta(engine.pool, slot);
    struct wrec wr;
    memcpy(&wr.w, &m->writer, sizeof(wr.w));
    wr.ns = m->fault_ns;
    wr.compared = comparing_shadows;
    if (!svec_push(&engine.scratch.s.writers, &wr, sizeof(wr)))
        return UINT32_MAX;
    return (uint32_t)(engine.scratch.s.writers.len / sizeof(wr) - 1);
}

static int add_rec(struct page_ctx *c, size_t off, size_t len, int with_old)
{
    struct rec rc = { .r = c->r, .off = c->region_off + off, .len = len,
                      .old_off = SIZE_MAX, .new_off = engine.scratch.s.new_.len };
    if (*c->wi == WRITER_NOT_YET)
        *c->wi = writer_record(c->slot);
    rc.wi = *c->wi;
    if (with_old) {
        rc.old_off = engine.scratch.s.old.len;
        if (!svec_push(&engine.scratch.s.old, c->old + off, len))
            return -ENOMEM;
    }
    if (!svec_push(&engine.scratch.s.new_, c->cur + off, len) ||
        !svec_push(&engine.scratch.s.recs, &rc, sizeof(rc)))
        return -ENOMEM;
    return 0;
}

/* Changed runs of one page at most mw_engine_set_coalesce_gap() bytes apart become one
 * record, with the unchanged bytes between them: a dense change (every float of an array
 * updated, a few bytes of each unchanged) is then a record per page instead of one per
 * changed run. Such records also start and end at multiples of MW_COALESCE_ALIGN bytes
 * from the region's start (within the page), so that they hold whole elements of any
 * size dividing it: the bytes come from this comparison, while the page cannot change,
 * not from memory read later. The run being grown waits in the page's context. */
static int emit_range(size_t off, size_t len, void *ctx)
{
    struct page_ctx *c = ctx;
    if (engine.coalesce_gap) {
        size_t at = c->region_off + off, end = at + len;
        size_t lo = at / MW_COALESCE_ALIGN * MW_COALESCE_ALIGN;
        size_t hi = (end + MW_COALESCE_ALIGN - 1) / MW_COALESCE_ALIGN * MW_COALESCE_ALIGN;
        lo = lo < c->region_off ? c->region_off : lo;
        hi = hi > c->region_off + c->window ? c->region_off + c->window : hi;
        off = lo - c->region_off;
        len = hi - lo;
    }
    if (c->pend_len && off <= c->pend_off + c->pend_len + engine.coalesce_gap) {
        c->pend_len = off + len - c->pend_off;
        return 0;
    }
    int rc = c->pend_len ? add_rec(c, c->pend_off, c->pend_len, 1) : 0;
    c->pend_off = off;
    c->pend_len = len;
    return rc;
}

/* Compares the window [0, len) of a page context and records what changed. */
static void diff_window(struct page_ctx *c, size_t len)
{
    c->pend_len = 0;
    c->window = len;
    if (engine.coalesce_gap >= 16)
        mw_diff_ranges_joined(c->old, c->cur, len, engine.coalesce_gap, emit_range, c);
    else
        mw_diff_ranges(c->old, c->cur, len, emit_range, c);
    if (c->pend_len)
        add_rec(c, c->pend_off, c->pend_len, 1);
}

void page_leave_checking(struct mw_page *e, uint32_t to)
{
    if (to == MW_PAGE_CLEAN)
        mw_xproc_release(e);   /* compared and protected: another process may open it */
    uint32_t was = atomic_exchange_explicit(&e->state, to, memory_order_acq_rel);
    assert(MW_PAGE_STATE(was) == MW_PAGE_CHECKING);
    if (was & MW_PAGE_WAITERS)
        syscall(SYS_futex, &e->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* True when the page is no longer mapped (the program unmapped watched memory). */
static int page_unmapped(uintptr_t page)
{
    unsigned char vec;
    return mincore((void *)page, engine.page_size, &vec) != 0 && errno == ENOMEM;
}

/* Returns the page's old copy (if any) to the pool and its cost to the watcher's account. */
static void release_copy(struct mw_page *e)
{
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_acquire);
    if (slot == MW_SLOT_NONE)
        return;
    atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
    mw_page_pool_release_copy(engine.pool, slot);
}

/* Frees a region's baseline of page e, and resets the pointer, once the check has made
 * every page CLEAN (see struct deferred_free). */
static void defer_baseline_free(struct mw_page *e, struct mw_ref *ref)
{
    struct mw_region *r = ref->r;
    struct deferred_free f = { ref->baseline,
                               region_window_hi(r, e->addr) - region_window_lo(r, e->addr),
                               r->w->acct, &ref->baseline };
    svec_push(&engine.scratch.s.frees, &f, sizeof(f));
}

static void run_deferred_frees(void)
{
    struct svec *fv = &engine.scratch.s.frees;
    struct deferred_free *f = (struct deferred_free *)fv->p;
    size_t nf = fv->len / sizeof(*f);
    for (size_t i = 0; i < nf; i++) {
        if (f[i].clear)
            *f[i].clear = NULL;
        free(f[i].p);
        mw_acct_uncharge(&engine.accts[f[i].acct], f[i].bytes);
    }
    fv->len = 0;
}

/* A CHECKING page whose memory was unmapped: nothing is left to compare, and reading it
 * would fault. Its pending changes are gone with it; it stays in the index, unprotected,
 * until its regions are unwatched. */
static void forget_unmapped_page(struct mw_page *e)
{
    struct mw_ref tmp, *refs = page_refs(e, &tmp);
    for (uint32_t i = 0; i < page_nrefs(e); i++)
        if (refs[i].baseline)
            defer_baseline_free(e, &refs[i]);
    release_copy(e);
    page_leave_checking(e, MW_PAGE_UNTRACKED);
}

/* Records what changed in each region of CHECKING page e against its old copy (or a
 * region's baseline). */
static void compare_page(struct mw_page *e, uint32_t slot)
{
    const unsigned char *old = slot != MW_SLOT_NONE ? mw_page_pool_data(engine.pool, slot)
                                                    : NULL;
    int same = old && memcmp(old, (const void *)e->addr, engine.page_size) == 0;
    uint32_t wi = WRITER_NOT_YET;
    struct mw_ref tmp, *refs = page_refs(e, &tmp);
    uint32_t n = page_nrefs(e);
    for (uint32_t i = 0; i < n; i++) {
        struct mw_region *r = refs[i].r;
        uintptr_t lo = region_window_lo(r, e->addr), hi = region_window_hi(r, e->addr);
        struct page_ctx c = { .r = r, .region_off = lo - r->addr, .cur = (const void *)lo,
                              .wi = &wi, .slot = slot };
        if (refs[i].baseline) {
            c.old = refs[i].baseline;
            diff_window(&c, hi - lo);
            defer_baseline_free(e, &refs[i]);
        } else if (old) {
            if (same)
                continue;
            c.old = old + (lo - e->addr);
            diff_window(&c, hi - lo);
        } else {
            add_rec(&c, 0, hi - lo, 0);     /* old value unavailable */
        }
    }
}

/* The page could not be re-protected: it stays writable and dirty, with its current
 * contents as the new old copy, and is compared again at the next check. */
static void keep_page_open(struct mw_page *e, uint32_t slot)
{
    if (slot == MW_SLOT_NONE) {
        uint32_t ap = atomic_load(&e->acct_prot);
        slot = mw_page_pool_take_copy(engine.pool, MW_ACCT_OF(ap), (const void *)e->addr);
        if (slot != MW_SLOT_NONE)
            atomic_store(&e->slot, slot);
    } else {
        memcpy(mw_page_pool_data(engine.pool, slot), (const void *)e->addr, engine.page_size);
    }
    page_leave_checking(e, MW_PAGE_DIRTY);
    mw_fault_path_requeue(e);
}

/* Compares one CHECKING page (already re-armed unless rearmed == 0) and makes it CLEAN.
 * Writes only to scratch, the pool and the entry (see DESIGN). */
void check_page(struct mw_page *e, int rearmed)
{
    if (!rearmed && page_unmapped(e->addr)) {
        forget_unmapped_page(e);
        return;
    }
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_acquire);
    compare_page(e, slot);
    if (rearmed) {
        release_copy(e);
        page_leave_checking(e, MW_PAGE_CLEAN);
    } else {
        keep_page_open(e, slot);
    }
}

struct shadow_compare {
    struct mw_page *e;
    uint32_t slot;
};

static void compare_shadowed(void *ctx)
{
    const struct shadow_compare *c = ctx;
    compare_page(c->e, c->slot);
}

int check_shadowed_page(struct mw_page *e, uint32_t slot)
{
    struct svec *rv = &engine.scratch.s.recs;
    size_t first = rv->len / sizeof(struct rec);
    size_t olen = engine.scratch.s.old.len, nlen = engine.scratch.s.new_.len;
    size_t wlen = engine.scratch.s.writers.len;
    struct shadow_compare c = { e, slot };
    comparing_shadows = 1;
    int rc = mw_fault_path_probe(compare_shadowed, &c);
    comparing_shadows = 0;
    if (rc != 0) {
        /* Unmapped while open: what it held is gone, as for a dirty page (check_page). */
        rv->len = first * sizeof(struct rec);
        engine.scratch.s.old.len = olen;
        engine.scratch.s.new_.len = nlen;
        engine.scratch.s.writers.len = wlen;
        return rc;
    }
    /* The copy takes the bytes this comparison saw (see shadow.c). */
    unsigned char *copy = mw_page_pool_data(engine.pool, slot);
    const struct rec *recs = (const struct rec *)rv->p;
    for (size_t i = first; i < rv->len / sizeof(struct rec); i++)
        memcpy(copy + (recs[i].r->addr + recs[i].off - e->addr),
               engine.scratch.s.new_.p + recs[i].new_off, recs[i].len);
    engine.pages_compared++;
    return 0;
}

/* ---- merging and delivering ----------------------------------------------------------- */

/* Copies the pieces at offsets a and b (of lengths la and lb) next to each other at the
 * end of v; returns the offset of the joined piece, or a when out of memory (then the
 * caller keeps the first piece's offset and the join is lost: see merge_region). */
static size_t join_pieces(struct svec *v, size_t a, size_t la, size_t b, size_t lb)
{
    size_t at = v->len;
    if (svec_reserve(v, la + lb) != 0)
        return a;
    memmove(v->p + at, v->p + a, la);
    memmove(v->p + at + la, v->p + b, lb);
    v->len += la + lb;
    return at;
}

/* Merges the sorted records of one region into scratch.merged, coalescing ranges that
 * touch (across page boundaries too). Returns the number of merged ranges. */
static size_t merge_region(struct rec *recs, size_t n)
{
    struct svec *m = &engine.scratch.s.merged;
    const struct wrec *wr = (const struct wrec *)engine.scratch.s.writers.p;
    size_t start = m->len / sizeof(struct rec);
    for (size_t i = 0; i < n; i++) {
        struct rec *cur = &recs[i];
        size_t cnt = m->len / sizeof(struct rec) - start;
        struct rec *prev = cnt ? &((struct rec *)m->p)[start + cnt - 1] : NULL;
        int prev_old = prev && prev->old_off != SIZE_MAX, cur_old = cur->old_off != SIZE_MAX;
        if (!prev || prev->off + prev->len != cur->off || prev_old != cur_old) {
            svec_push(m, cur, sizeof(*cur));
            continue;
        }
        if (prev->new_off + prev->len != cur->new_off ||
            (cur_old && prev->old_off + prev->len != cur->old_off)) {
            prev->new_off = join_pieces(&engine.scratch.s.new_, prev->new_off, prev->len,
                                        cur->new_off, cur->len);
            if (cur_old)
                prev->old_off = join_pieces(&engine.scratch.s.old, prev->old_off, prev->len,
                                            cur->old_off, cur->len);
        }
        prev->len += cur->len;
        /* The earliest write of the region wins. */
        if (cur->wi != UINT32_MAX && (prev->wi == UINT32_MAX || wr[cur->wi].ns < wr[prev->wi].ns))
            prev->wi = cur->wi;
    }
    return m->len / sizeof(struct rec) - start;
}

/* Hands fn the change of one region: its cnt merged ranges starting at mr. */
static int deliver_region(struct rec *mr, size_t cnt, mw_change_fn fn, void *ctx)
{
    struct svec *rv = &engine.scratch.s.ranges;
    rv->len = 0;
    if (svec_reserve(rv, cnt * sizeof(struct mw_range)) != 0)
        return -ENOMEM;
    struct mw_range *ranges = (struct mw_range *)rv->p;
    const struct wrec *wr = NULL;
    int unavailable = 0;
    for (size_t k = 0; k < cnt; k++) {
        ranges[k].offset = mr[k].off;
        ranges[k].length = mr[k].len;
        ranges[k].old = mr[k].old_off == SIZE_MAX ? NULL : engine.scratch.s.old.p + mr[k].old_off;
        ranges[k].new_ = engine.scratch.s.new_.p + mr[k].new_off;
        if (!ranges[k].old)
            unavailable = 1;
        if (mr[k].wi != UINT32_MAX) {
            const struct wrec *c = (const struct wrec *)engine.scratch.s.writers.p + mr[k].wi;
            if (!wr || c->ns < wr->ns)
                wr = c;
        }
    }
    struct mw_region *r = mr[0].r;
    struct mw_change ch = {
        .region_id = r->id, .region_user = r->user, .region_addr = (const void *)r->addr,
        .region_size = r->size, .nranges = cnt, .ranges = ranges,
        .writer = wr ? &wr->w : &unknown_writer, .first_fault_ns = wr ? wr->ns : 0,
        .compared = wr ? wr->compared : 0,
    };
    r->w->changes++;
    if (unavailable)
        r->w->old_unavailable++;
    if (ch.compared)
        r->w->changes_compared++;
    if (fn)
        fn(&ch, ctx);
    return 0;
}

static int deliver(mw_change_fn fn, void *ctx)
{
    struct rec *recs = (struct rec *)engine.scratch.s.recs.p;
    size_t n = engine.scratch.s.recs.len / sizeof(struct rec);
    if (n == 0)
        return 0;
    /* Pages are compared in address order, so records mostly come sorted already (objects
     * watched in the order of their memory): a pass costs less than qsort's copy. */
    size_t unsorted = 1;
    while (unsorted < n && cmp_rec(&recs[unsorted - 1], &recs[unsorted]) <= 0)
        unsorted++;
    if (unsorted < n)
        qsort(recs, n, sizeof(*recs), cmp_rec);

    /* Pass 1: merge per region (scratch may move; keep offsets). */
    struct svec *groups = &engine.scratch.s.pages;   /* reused: (first, count) pairs */
    groups->len = 0;
    engine.scratch.s.merged.len = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && recs[j].r == recs[i].r; j++)
            ;
        size_t pair[2] = { engine.scratch.s.merged.len / sizeof(struct rec), 0 };
        pair[1] = merge_region(&recs[i], j - i);
        svec_push(groups, pair, sizeof(pair));
    }

    /* Pass 2: one change per region, in region order. */
    size_t ng = groups->len / (2 * sizeof(size_t));
    for (size_t g = 0; g < ng; g++) {
        const size_t *pair = (const size_t *)groups->p + 2 * g;
        struct rec *mr = (struct rec *)engine.scratch.s.merged.p + pair[0];
        int rc = deliver_region(mr, pair[1], fn, ctx);
        if (rc < 0)
            return rc;
    }
    return (int)ng;
}

/* ---- the check ------------------------------------------------------------------------ */

/* Drops an orphan page (DIRTY, no regions) after releasing its copy. */
static void drop_orphan(struct mw_page *e)
{
    release_copy(e);
    if (atomic_load(&e->state) != MW_PAGE_UNTRACKED || page_nrefs(e) == 0)
        mw_region_index_remove(engine.index, e);
}

/* The dirty list as a vector of pages sorted by address. What does not fit in scratch
 * goes back for the next check (*oom set). */
static size_t take_dirty_pages(struct mw_page *list, int *oom)
{
    struct svec *pv = &engine.scratch.s.pages;
    pv->len = 0;
    while (list) {
        struct mw_page *next = atomic_load_explicit(&list->next, memory_order_relaxed);
        if (!svec_push(pv, &list, sizeof(list))) {
            for (; list; list = next) {
                next = atomic_load_explicit(&list->next, memory_order_relaxed);
                mw_fault_path_requeue(list);
            }
            *oom = 1;
            break;
        }
        list = next;
    }
    size_t np = pv->len / sizeof(struct mw_page *);
    qsort(pv->p, np, sizeof(struct mw_page *), cmp_page_addr);
    return np;
}

static int checkable(const struct mw_page *e)
{
    return atomic_load(&e->state) == MW_PAGE_DIRTY && page_nrefs(e) > 0;
}

/* Re-arms pages[i..j) (one run) and compares each. */
static void check_run(struct mw_page **pages, size_t i, size_t j)
{
    size_t ps = engine.page_size;
    struct mw_page *e = pages[i];
    int prot = MW_PROT_OF(atomic_load(&e->acct_prot));
    for (size_t k = i; k < j; k++)
        mw_page_set_state(pages[k], MW_PAGE_DIRTY, MW_PAGE_CHECKING);
    /* Pairs with mw_engine_kwrite_begin's order point: either it sees CHECKING and its
     * pre-touch waits for this check, or we see its pin (kwrite.c). */
    kwrite_order_point();
    int pinned = kwrite_pinned(e->addr, (j - i) * ps);
    /* Re-protect FIRST, then compare. */
    int rearmed = !pinned && engine.det->rearm(e->addr, (j - i) * ps, prot) == 0;
    for (size_t k = i; k < j; k++) {
        int ok = rearmed;
        if (!rearmed)   /* try page by page before giving up on a page */
            ok = !kwrite_pinned(pages[k]->addr, ps) &&
                 engine.det->rearm(pages[k]->addr, ps, prot) == 0;
        check_page(pages[k], ok);
    }
    engine.pages_compared += j - i;
}

int check_locked(mw_change_fn fn, void *ctx, const struct mw_writer *line_writer)
{
    engine_assert_locked();
    engine.checks++;
    struct mw_page *list = mw_fault_path_collect();
    if (!list && engine.shadows.len == 0) {
        shadows_take_hot_locked();
        mw_region_index_reclaim(engine.index);
        return 0;
    }
    struct svec *s = &engine.scratch.s.recs;
    s->len = engine.scratch.s.old.len = engine.scratch.s.new_.len = 0;
    engine.scratch.s.writers.len = engine.scratch.s.frees.len = 0;
    int oom = 0;
    size_t np = list ? take_dirty_pages(list, &oom) : 0;
    struct mw_page **pages = (struct mw_page **)engine.scratch.s.pages.p;
    for (size_t i = 0, j; i < np; i = j) {
        if (!checkable(pages[i])) {
            /* Orphan, or the engine was stopped while it was dirty. */
            drop_orphan(pages[i]);
            j = i + 1;
            continue;
        }
        j = page_run_end(pages, i, np, checkable);
        check_run(pages, i, j);
    }
    shadows_check_locked(line_writer);

    /* Every page is CLEAN (or requeued) again: the heap is safe to touch, and busy pages
     * can be left open now that their changes are in (shadow.c). */
    shadows_take_hot_locked();
    int n = deliver(fn, ctx);
    run_deferred_frees();
    mw_region_index_reclaim(engine.index);
    pool_keep_ahead_locked();
    for (size_t i = 0; i < ENGINE_SCRATCH; i++)
        if (&engine.scratch.all[i] != &engine.scratch.s.frees)
            svec_trim(&engine.scratch.all[i]);
    if (n >= 0 && oom)
        return -ENOMEM;
    return n;
}
