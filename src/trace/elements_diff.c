/* Changed elements (see elements.h): a change's byte ranges turned into the elements they
 * changed, ranges widened to whole items, and the numeric summary of a change. */
#include "elements.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elements_layout.h"
#include "mw_error.h"

/* ---- diffing ---------------------------------------------------------------------- */

static int is_nan_val(double re, double im)
{
    return isnan(re) || isnan(im);
}

static int is_inf_val(double re, double im)
{
    return isinf(re) || isinf(im);
}

/* NaN and Inf that appeared in, or went from, a float or complex element. */
static unsigned nonfinite_flags(const struct mw_elem_change *c, int old_known, int new_known)
{
    unsigned flags = 0;
    int old_nan = old_known && is_nan_val(c->old_num, c->old_imag);
    int old_inf = old_known && is_inf_val(c->old_num, c->old_imag);
    if (!new_known)
        return 0;
    int new_nan = is_nan_val(c->new_num, c->new_imag);
    int new_inf = is_inf_val(c->new_num, c->new_imag);
    if (new_nan && !old_nan)
        flags |= MW_ELEM_F_NAN_APPEARED;
    if (new_inf && !old_inf)
        flags |= MW_ELEM_F_INF_APPEARED;
    if (old_nan && !new_nan)
        flags |= MW_ELEM_F_NAN_GONE;
    if (old_inf && !new_inf)
        flags |= MW_ELEM_F_INF_GONE;
    return flags;
}

/* Calls fn for scalar s of an item when its bytes changed (or are not both known). */
static int emit(const mw_elem_layout *l, uint64_t item, const int64_t *index,
                const struct mw_elem_scalar *s, uint64_t item_offset, const unsigned char *old,
                const unsigned char *new_, mw_elem_fn fn, void *ctx)
{
    if (old && new_ && memcmp(old, new_, s->size) == 0)
        return 0;   /* rewritten with the same value, or a widened range's bystander */
    struct mw_elem_change c = {
        .item = item,
        .ndim = l->ndim,
        .index = index,
        .scalar = s,
        .offset = item_offset + s->offset,
        .old = old,
        .new_ = new_,
        .old_num = NAN,
        .new_num = NAN,
        .old_imag = 0,
        .new_imag = 0,
    };
    int oldn = old && mw_elem_decode_number(s, old, &c.old_num, &c.old_imag) == 0;
    int newn = new_ && mw_elem_decode_number(s, new_, &c.new_num, &c.new_imag) == 0;
    if (s->kind == MW_ELEM_FLOAT || s->kind == MW_ELEM_COMPLEX)
        c.flags = nonfinite_flags(&c, oldn, newn);
    return fn(&c, ctx);
}

/* One mw_elem_diff: its arguments, the current item's coordinates, and room to piece an
 * item together (old and new bytes, which of them are known, which were touched). */
struct walk {
    const mw_elem_layout *l;
    const struct mw_rec_range *ranges;
    size_t n;
    const unsigned char *old_value, *new_value;
    size_t value_len;
    mw_elem_fn fn;
    void *ctx;
    int64_t index[MW_REC_MAX_NDIM];
    unsigned char *ob, *nb, *ok, *nk, *touched;   /* itemsize bytes each, in one block */
    /* That block for the usual small items: on the checking thread's stack. A heap block
     * can share a page with watched data, and this walk writes it for every item, each
     * write a single-stepped neighbour write there (README, Neighbours). */
    unsigned char small[5 * 64];
    int heap;                                     /* the block was malloc'd */
};

/* An item wholly inside range r: its bytes are right there. */
static int whole_item(struct walk *w, const struct mw_rec_range *r, uint64_t base,
                      uint64_t item)
{
    const mw_elem_layout *l = w->l;
    const unsigned char *o = r->old ? r->old + (base - r->offset) : NULL;
    const unsigned char *nw = r->new_ + (base - r->offset);
    int rc = 0;
    for (size_t k = 0; k < l->nscalars && !rc; k++) {
        const struct mw_elem_scalar *s = &l->scalars[k];
        rc = emit(l, item, w->index, s, base, o ? o + s->offset : NULL, nw + s->offset, w->fn,
                  w->ctx);
    }
    return rc;
}

/* The bytes of the item at base from the whole values (when given) and the ranges from
 * ranges[i] on that touch it. */
static void piece_bytes(struct walk *w, size_t i, uint64_t base)
{
    size_t is = w->l->itemsize;
    int have_values = w->old_value && w->new_value && base + is <= w->value_len;
    if (have_values) {
        memcpy(w->ob, w->old_value + base, is);
        memcpy(w->nb, w->new_value + base, is);
    }
    memset(w->ok, have_values, is);
    memset(w->nk, have_values, is);
    memset(w->touched, 0, is);
    for (size_t j = i; j < w->n && w->ranges[j].offset < base + is; j++) {
        const struct mw_rec_range *g = &w->ranges[j];
        uint64_t a = g->offset > base ? g->offset : base;
        uint64_t b = g->offset + g->length < base + is ? g->offset + g->length : base + is;
        for (uint64_t x = a; x < b; x++) {
            w->nb[x - base] = g->new_[x - g->offset];
            w->nk[x - base] = 1;
            w->touched[x - base] = 1;
            if (g->old) {
                w->ob[x - base] = g->old[x - g->offset];
                w->ok[x - base] = 1;
            } else {
                w->ok[x - base] = 0;
            }
        }
    }
}

/* An item that ranges[i] covers only in part: pieced together, then its touched scalars. */
static int pieced_item(struct walk *w, size_t i, uint64_t base, uint64_t item)
{
    const mw_elem_layout *l = w->l;
    if (!w->ob) {
        if (5 * l->itemsize <= sizeof w->small)
            w->ob = w->small;
        else if ((w->ob = malloc(5 * l->itemsize)) != NULL)
            w->heap = 1;
        else
            return -ENOMEM;
        w->nb = w->ob + l->itemsize;
        w->ok = w->nb + l->itemsize;
        w->nk = w->ok + l->itemsize;
        w->touched = w->nk + l->itemsize;
    }
    piece_bytes(w, i, base);
    int rc = 0;
    for (size_t k = 0; k < l->nscalars && !rc; k++) {
        const struct mw_elem_scalar *s = &l->scalars[k];
        int hit = 0, old_known = 1, new_known = 1;
        for (uint32_t x = s->offset; x < s->offset + s->size; x++) {
            hit |= w->touched[x];
            old_known &= w->ok[x];
            new_known &= w->nk[x];
        }
        if (!hit)
            continue;
        rc = emit(l, item, w->index, s, base, old_known ? w->ob + s->offset : NULL,
                  new_known ? w->nb + s->offset : NULL, w->fn, w->ctx);
    }
    return rc;
}

int mw_elem_diff(const mw_elem_layout *l, const struct mw_rec_range *ranges, size_t n,
                 const unsigned char *old_value, const unsigned char *new_value,
                 size_t value_len, mw_elem_fn fn, void *ctx)
{
    size_t is = l->itemsize;
    uint64_t limit = l->nitems * is;
    uint64_t next_item = 0;
    int rc = 0;
    if (l->ndim > MW_REC_MAX_NDIM)
        return MW_EINVAL;
    struct walk w = {.l = l, .ranges = ranges, .n = n, .old_value = old_value,
                     .new_value = new_value, .value_len = value_len, .fn = fn, .ctx = ctx};
    for (size_t i = 0; i < n && !rc; i++) {
        const struct mw_rec_range *r = &ranges[i];
        if (r->length == 0)
            continue;
        if (r->offset + r->length > limit || r->offset + r->length < r->offset) {
            rc = MW_EINVAL;
            break;
        }
        uint64_t first = r->offset / is, last = (r->offset + r->length - 1) / is;
        for (uint64_t m = first > next_item ? first : next_item; m <= last && !rc; m++) {
            uint64_t base = m * is, item;
            mw_elem_item_coords(l, m, w.index, &item);
            if (r->offset <= base && r->offset + r->length >= base + is)
                rc = whole_item(&w, r, base, item);
            else
                rc = pieced_item(&w, i, base, item);
        }
        if (last + 1 > next_item)
            next_item = last + 1;
    }
    if (w.heap)
        free(w.ob);
    return rc;
}

int mw_elem_align_ranges(size_t itemsize, const struct mw_rec_range *in, size_t n,
                         const unsigned char *old_value, const unsigned char *new_value,
                         size_t value_len, struct mw_rec_range *out, size_t *nout)
{
    size_t k = 0;
    if (itemsize <= 1) {
        memcpy(out, in, n * sizeof *in);
        *nout = n;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].length == 0)
            continue;
        uint64_t a = in[i].offset / itemsize * itemsize;
        uint64_t b = (in[i].offset + in[i].length + itemsize - 1) / itemsize * itemsize;
        if (b > value_len)
            b = value_len;
        if (a >= b || !new_value)
            return MW_EINVAL;
        int old_known = in[i].old != NULL && old_value != NULL;
        if (k > 0 && out[k - 1].offset + out[k - 1].length >= a) {
            struct mw_rec_range *p = &out[k - 1];
            if (b > p->offset + p->length)
                p->length = b - p->offset;
            if (!old_known)
                p->old = NULL;
            continue;
        }
        out[k++] = (struct mw_rec_range){a, b - a, old_known ? old_value + a : NULL,
                                         new_value + a};
    }
    *nout = k;
    return 0;
}

/* ---- statistics ------------------------------------------------------------------- */

void mw_elem_stats_init(struct mw_elem_stats *s)
{
    memset(s, 0, sizeof *s);
    s->delta_min = INFINITY;
    s->delta_max = -INFINITY;
}

void mw_elem_stats_add(struct mw_elem_stats *s, const struct mw_elem_change *c)
{
    s->elements++;
    if (!c->old || !c->new_)
        s->unknown++;
    if (c->flags & MW_ELEM_F_NAN_APPEARED)
        s->nan_appeared++;
    if (c->flags & MW_ELEM_F_INF_APPEARED)
        s->inf_appeared++;
    if (c->flags & MW_ELEM_F_NAN_GONE)
        s->nan_gone++;
    if (c->flags & MW_ELEM_F_INF_GONE)
        s->inf_gone++;
    if (!c->old || !c->new_ || c->scalar->kind == MW_ELEM_COMPLEX)
        return;
    double d = c->new_num - c->old_num;
    if (!isfinite(d))
        return;
    s->deltas++;
    s->delta_sum += d;
    if (d < s->delta_min)
        s->delta_min = d;
    if (d > s->delta_max)
        s->delta_max = d;
}
