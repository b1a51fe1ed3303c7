/* Which regions touch a page (struct mw_page.regions: one region inline, or a vector when
 * several share the page) and the watched bytes on it that the fault path reads (struct
 * mw_page.watched).
 *
 * DESIGN
 * - Engine lock held throughout. The vector lives in malloc'd memory, which may share a
 *   page with watched data: check.c never changes it while pages are CHECKING.
 * - watched is exact: the fault path calls a write outside it a neighbour's, so a page
 *   shared by several small objects with other data between them treats writes to the
 *   gaps as the neighbours' they are. One region's span is stored inline; several are
 *   merged into an immutable struct mw_spans, published with one store and retired through
 *   the index when replaced, so a handler reading the old one never reads freed memory. */
#include <errno.h>
#include <stdlib.h>

#include "engine.h"

struct refvec {
    uint32_t n, cap;
    struct mw_ref refs[];
};

static struct refvec *vector_of(const struct mw_page *e)
{
    return (e->regions & MW_REGIONS_VEC) ? (struct refvec *)(e->regions & ~MW_REGIONS_VEC)
                                         : NULL;
}

uint32_t page_nrefs(const struct mw_page *e)
{
    struct refvec *v = vector_of(e);
    return v ? v->n : e->regions ? 1 : 0;
}

struct mw_ref *page_refs(struct mw_page *e, struct mw_ref *tmp)
{
    struct refvec *v = vector_of(e);
    if (v)
        return v->refs;
    tmp->r = (struct mw_region *)e->regions;
    tmp->baseline = NULL;
    return tmp;
}

static int cmp_span(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The page's watched bytes as one inline span or a merged struct mw_spans; 0 with no
 * region, and the bounding span when memory for the vector cannot be had (conservative:
 * the gaps count as watched). */
static uintptr_t build_watched(struct mw_page *e)
{
    struct mw_ref tmp, *refs = page_refs(e, &tmp);
    uint32_t n = page_nrefs(e);
    if (n == 0)
        return 0;
    struct mw_spans *sp = n > 1 ? malloc(sizeof(*sp) + n * sizeof(uint32_t)) : NULL;
    uintptr_t lo_all = engine.page_size, hi_all = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t lo = region_window_lo(refs[i].r, e->addr) - e->addr;
        uintptr_t hi = region_window_hi(refs[i].r, e->addr) - e->addr;
        lo_all = lo < lo_all ? lo : lo_all;
        hi_all = hi > hi_all ? hi : hi_all;
        if (sp)
            sp->span[i] = MW_SPAN(lo, hi);
    }
    if (!sp)
        return MW_WATCHED_ONE(MW_SPAN(lo_all, hi_all));
    /* Sorted by lo (the upper half), then overlapping or touching spans merged. */
    qsort(sp->span, n, sizeof(uint32_t), cmp_span);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t lo = MW_SPAN_LO(sp->span[i]), hi = MW_SPAN_HI(sp->span[i]);
        if (m > 0 && lo <= MW_SPAN_HI(sp->span[m - 1])) {
            uintptr_t plo = MW_SPAN_LO(sp->span[m - 1]), phi = MW_SPAN_HI(sp->span[m - 1]);
            sp->span[m - 1] = MW_SPAN(plo, hi > phi ? hi : phi);
        } else {
            sp->span[m++] = MW_SPAN(lo, hi);
        }
    }
    if (m == 1) {
        uintptr_t one = MW_WATCHED_ONE(sp->span[0]);
        free(sp);
        return one;
    }
    sp->n = m;
    return (uintptr_t)sp;
}

/* The page's watched bytes with [lo, hi) added: the published spans (sorted, merged)
 * merged with one more in a single pass, rather than rebuilt from every region (a page
 * shared by many small objects gains them one watch at a time). 0 when memory for the
 * vector cannot be had. */
static uintptr_t with_span(uintptr_t w, uintptr_t lo, uintptr_t hi)
{
    uint32_t one, n;
    const uint32_t *old;
    if (w == 0)
        return MW_WATCHED_ONE(MW_SPAN(lo, hi));
    if (w & 1u) {
        one = (uint32_t)(w >> 1);
        old = &one;
        n = 1;
    } else {
        old = ((const struct mw_spans *)w)->span;
        n = ((const struct mw_spans *)w)->n;
    }
    struct mw_spans *sp = malloc(sizeof(*sp) + (n + 1) * sizeof(uint32_t));
    if (!sp)
        return 0;
    uint32_t i = 0, m = 0;
    int placed = 0;
    while (i < n || !placed) {
        uintptr_t a, b;
        if (!placed && (i == n || lo < MW_SPAN_LO(old[i]))) {
            a = lo, b = hi, placed = 1;
        } else {
            a = MW_SPAN_LO(old[i]), b = MW_SPAN_HI(old[i]);
            i++;
        }
        if (m > 0 && a <= MW_SPAN_HI(sp->span[m - 1])) {
            uintptr_t plo = MW_SPAN_LO(sp->span[m - 1]), phi = MW_SPAN_HI(sp->span[m - 1]);
            sp->span[m - 1] = MW_SPAN(plo, b > phi ? b : phi);
        } else {
            sp->span[m++] = MW_SPAN(a, b);
        }
    }
    if (m == 1) {
        uintptr_t merged = MW_WATCHED_ONE(sp->span[0]);
        free(sp);
        return merged;
    }
    sp->n = m;
    return (uintptr_t)sp;
}

/* Publishes now as the page's watched bytes for the fault handler; the old vector, if
 * any, is retired (a handler may still be reading it). */
static void publish_watched(struct mw_page *e, uintptr_t now)
{
    uintptr_t old = atomic_load_explicit(&e->watched, memory_order_relaxed);
    atomic_store_explicit(&e->watched, now, memory_order_release);
    /* If it cannot be parked, it leaks: safer than freeing what a handler may read. */
    if (old && !(old & 1u))
        (void)mw_region_index_retire(engine.index, (void *)old);
}

static void update_watched(struct mw_page *e)
{
    publish_watched(e, build_watched(e));
}

static int to_vector(struct mw_page *e)
{
    uint32_t n = page_nrefs(e);
    struct refvec *v = malloc(sizeof(*v) + 4 * sizeof(struct mw_ref));
    if (!v)
        return -ENOMEM;
    v->cap = 4;
    v->n = n;
    if (n == 1) {
        v->refs[0].r = (struct mw_region *)e->regions;
        v->refs[0].baseline = NULL;
    }
    e->regions = (uintptr_t)v | MW_REGIONS_VEC;
    return 0;
}

static int add_raw(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    if (!e->regions && !baseline) {
        e->regions = (uintptr_t)r;
        return 0;
    }
    if (!vector_of(e) && to_vector(e) != 0)
        return -ENOMEM;
    struct refvec *v = vector_of(e);
    if (v->n == v->cap) {
        struct refvec *nv = realloc(v, sizeof(*v) + 2 * (size_t)v->cap * sizeof(struct mw_ref));
        if (!nv)
            return -ENOMEM;
        nv->cap *= 2;
        e->regions = (uintptr_t)(v = nv) | MW_REGIONS_VEC;
    }
    v->refs[v->n].r = r;
    v->refs[v->n].baseline = baseline;
    v->n++;
    return 0;
}

static unsigned char *remove_raw(struct mw_page *e, struct mw_region *r)
{
    struct refvec *v = vector_of(e);
    if (!v) {
        if (e->regions == (uintptr_t)r)
            e->regions = 0;
        return NULL;
    }
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->refs[i].r != r)
            continue;
        unsigned char *b = v->refs[i].baseline;
        v->refs[i] = v->refs[--v->n];
        if (v->n == 0) {
            free(v);
            e->regions = 0;
        }
        return b;
    }
    return NULL;
}

int page_refs_add(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    engine_assert_locked();
    int rc = add_raw(e, r, baseline);
    uintptr_t now = rc == 0 ? with_span(atomic_load_explicit(&e->watched, memory_order_relaxed),
                                        region_window_lo(r, e->addr) - e->addr,
                                        region_window_hi(r, e->addr) - e->addr)
                            : 0;
    publish_watched(e, now ? now : build_watched(e));
    return rc;
}

unsigned char *page_refs_remove(struct mw_page *e, struct mw_region *r)
{
    engine_assert_locked();
    unsigned char *b = remove_raw(e, r);
    update_watched(e);
    return b;
}

void page_refs_clear(struct mw_page *e)
{
    engine_assert_locked();
    struct refvec *v = vector_of(e);
    free(v);
    e->regions = 0;
    update_watched(e);
}
