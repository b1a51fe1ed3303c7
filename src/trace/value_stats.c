/* Numeric summaries of changes (see value_stats.h). */
#include "value_stats.h"

#include <math.h>
#include <string.h>

#include "elements_layout.h"
#include "mw_error.h"

/* The one scalar of an item that is one plain number of this machine's byte order, or
 * NULL. Half and long double floats, complex numbers, characters and pointers are left to
 * mw_elem_diff. */
static const struct mw_elem_scalar *plain_number(const mw_elem_layout *l)
{
    if (l->nscalars != 1)
        return NULL;
    const struct mw_elem_scalar *s = &l->scalars[0];
    if (s->offset != 0 || s->size != l->itemsize || s->swap)
        return NULL;
    switch (s->kind) {
    case MW_ELEM_FLOAT:
        return s->size == 4 || s->size == 8 ? s : NULL;
    case MW_ELEM_INT:
    case MW_ELEM_UINT:
        return s->size == 1 || s->size == 2 || s->size == 4 || s->size == 8 ? s : NULL;
    case MW_ELEM_BOOL:
        return s->size == 1 ? s : NULL;
    default:
        return NULL;
    }
}

/* The item at p as a double, like mw_elem_decode_number. */
static inline double number_at(const struct mw_elem_scalar *s, const unsigned char *p)
{
    switch (s->kind) {
    case MW_ELEM_FLOAT:
        if (s->size == 4) {
            float f;
            memcpy(&f, p, 4);
            return f;
        } else {
            double d;
            memcpy(&d, p, 8);
            return d;
        }
    case MW_ELEM_BOOL:
        return p[0] != 0;
    case MW_ELEM_INT:
        switch (s->size) {
        case 1: return (int8_t)p[0];
        case 2: { int16_t v; memcpy(&v, p, 2); return v; }
        case 4: { int32_t v; memcpy(&v, p, 4); return v; }
        default: { int64_t v; memcpy(&v, p, 8); return (double)v; }
        }
    default:
        switch (s->size) {
        case 1: return p[0];
        case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
        case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
        default: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
        }
    }
}

/* One item whose bytes changed: what mw_elem_diff + mw_elem_stats_add count for it. */
static inline void add_item(struct mw_elem_stats *st, const struct mw_elem_scalar *s,
                            const unsigned char *old, const unsigned char *new_)
{
    st->elements++;
    double nv = number_at(s, new_);
    int is_float = s->kind == MW_ELEM_FLOAT;
    if (!old) {
        st->unknown++;
        st->nan_appeared += is_float && isnan(nv);
        st->inf_appeared += is_float && isinf(nv);
        return;
    }
    double ov = number_at(s, old);
    if (is_float) {
        int on = isnan(ov), oi = isinf(ov), nn = isnan(nv), ni = isinf(nv);
        st->nan_appeared += nn && !on;
        st->inf_appeared += ni && !oi;
        st->nan_gone += on && !nn;
        st->inf_gone += oi && !ni;
    }
    double d = nv - ov;
    if (!isfinite(d))
        return;
    st->deltas++;
    st->delta_sum += d;
    if (d < st->delta_min)
        st->delta_min = d;
    if (d > st->delta_max)
        st->delta_max = d;
}

/* Are the is bytes at a and b equal? Inline for the usual sizes: a megabyte of float64 is
 * 131,072 items, and a memcmp call each was a sixth of the writer's time. */
static inline int same_item(const unsigned char *a, const unsigned char *b, size_t is)
{
    switch (is) {
    case 8: { uint64_t x, y; memcpy(&x, a, 8); memcpy(&y, b, 8); return x == y; }
    case 4: { uint32_t x, y; memcpy(&x, a, 4); memcpy(&y, b, 4); return x == y; }
    case 2: { uint16_t x, y; memcpy(&x, a, 2); memcpy(&y, b, 2); return x == y; }
    case 1: return *a == *b;
    default: return memcmp(a, b, is) == 0;
    }
}

static int stats_elem(const struct mw_elem_change *c, void *ctx)
{
    mw_elem_stats_add(ctx, c);
    return 0;
}

int mw_value_stats_add(const mw_elem_layout *l, const struct mw_rec_range *ranges, size_t n,
                       struct mw_elem_stats *st)
{
    const struct mw_elem_scalar *s = plain_number(l);
    size_t is = l->itemsize;
    uint64_t limit = l->nitems * is;
    for (size_t i = 0; s && i < n; i++)
        if (ranges[i].offset % is || ranges[i].length % is || ranges[i].offset > limit ||
            ranges[i].length > limit - ranges[i].offset || !ranges[i].new_)
            s = NULL;   /* not whole items of the object: the general way */
    if (!s) {
        struct mw_elem_stats before = *st;
        int rc = mw_elem_diff(l, ranges, n, NULL, NULL, 0, stats_elem, st);
        if (rc)
            *st = before;
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct mw_rec_range *r = &ranges[i];
        for (uint64_t at = 0; at < r->length; at += is) {
            if (r->old && same_item(r->old + at, r->new_ + at, is))
                continue;   /* a bystander of a coalesced range, or rewritten the same */
            add_item(st, s, r->old ? r->old + at : NULL, r->new_ + at);
        }
    }
    return 0;
}
