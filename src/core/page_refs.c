/* Which regions touch a page (struct mw_page's regions: one inline pointer, or a vector
 * when several share the page) and the span of watched bytes on it that the fault path
 * reads (struct mw_page.span). Engine lock held throughout; the vector lives in malloc'd
 * memory, which may share a page with watched data: check.c never changes it while
 * pages are CHECKING. */
#include <errno.h>
#include <stdlib.h>

#include "engine.h"

struct refvec {
    uint32_t cap;
    struct mw_ref refs[];
};

uint32_t page_nrefs(const struct mw_page *e)
{
    return e->nregions & ~MW_REGIONS_VEC;
}

struct mw_ref *page_refs(struct mw_page *e, struct mw_ref *tmp)
{
    if (e->nregions & MW_REGIONS_VEC)
        return ((struct refvec *)e->regions)->refs;
    tmp->r = e->regions;
    tmp->baseline = NULL;
    return tmp;
}

uintptr_t region_window_lo(const struct mw_region *r, uintptr_t page)
{
    return r->addr > page ? r->addr : page;
}

uintptr_t region_window_hi(const struct mw_region *r, uintptr_t page)
{
    uintptr_t re = r->addr + r->size, pe = page + engine.page_size;
    return re < pe ? re : pe;
}

/* Keeps e->span, the bounding box of the page's watched bytes, for the fault handler. */
static void update_span(struct mw_page *e)
{
    struct mw_ref tmp, *refs = page_refs(e, &tmp);
    uint32_t n = page_nrefs(e);
    uintptr_t lo = engine.page_size, hi = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t l = region_window_lo(refs[i].r, e->addr) - e->addr;
        uintptr_t h = region_window_hi(refs[i].r, e->addr) - e->addr;
        if (l < lo)
            lo = l;
        if (h > hi)
            hi = h;
    }
    atomic_store_explicit(&e->span, n ? MW_SPAN(lo, hi) : 0, memory_order_release);
}

static int to_vector(struct mw_page *e)
{
    uint32_t n = page_nrefs(e);
    struct refvec *v = malloc(sizeof(*v) + 4 * sizeof(struct mw_ref));
    if (!v)
        return -ENOMEM;
    v->cap = 4;
    if (n == 1) {
        v->refs[0].r = e->regions;
        v->refs[0].baseline = NULL;
    }
    e->regions = v;
    e->nregions = n | MW_REGIONS_VEC;
    return 0;
}

static int add_raw(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    uint32_t n = page_nrefs(e);
    if (n == 0 && !baseline && !(e->nregions & MW_REGIONS_VEC)) {
        e->regions = r;
        e->nregions = 1;
        return 0;
    }
    if (!(e->nregions & MW_REGIONS_VEC) && to_vector(e) != 0)
        return -ENOMEM;
    struct refvec *v = e->regions;
    if (n == v->cap) {
        struct refvec *nv = realloc(v, sizeof(*v) + 2 * (size_t)v->cap * sizeof(struct mw_ref));
        if (!nv)
            return -ENOMEM;
        nv->cap *= 2;
        e->regions = v = nv;
    }
    v->refs[n].r = r;
    v->refs[n].baseline = baseline;
    e->nregions = (n + 1) | MW_REGIONS_VEC;
    return 0;
}

static unsigned char *remove_raw(struct mw_page *e, struct mw_region *r)
{
    uint32_t n = page_nrefs(e);
    if (!(e->nregions & MW_REGIONS_VEC)) {
        if (n == 1 && e->regions == r) {
            e->regions = NULL;
            e->nregions = 0;
        }
        return NULL;
    }
    struct refvec *v = e->regions;
    for (uint32_t i = 0; i < n; i++) {
        if (v->refs[i].r != r)
            continue;
        unsigned char *b = v->refs[i].baseline;
        v->refs[i] = v->refs[n - 1];
        n--;
        if (n == 0) {
            free(v);
            e->regions = NULL;
            e->nregions = 0;
        } else {
            e->nregions = n | MW_REGIONS_VEC;
        }
        return b;
    }
    return NULL;
}

int page_refs_add(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    engine_assert_locked();
    int rc = add_raw(e, r, baseline);
    update_span(e);
    return rc;
}

unsigned char *page_refs_remove(struct mw_page *e, struct mw_region *r)
{
    engine_assert_locked();
    unsigned char *b = remove_raw(e, r);
    update_span(e);
    return b;
}
