/* Numeric summaries of changes (see value_stats.h). */
#include "value_stats.h"

#include <math.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* Adds each of the items of old/new_ (is bytes each) that changed; without old, every one. */
static inline void add_changed_items(struct mw_elem_stats *st, const struct mw_elem_scalar *s,
                                     const unsigned char *old, const unsigned char *new_,
                                     size_t items, size_t is)
{
    for (size_t k = 0; k < items; k++) {
        if (old && same_item(old + k * is, new_ + k * is, is))
            continue;   /* a bystander of a coalesced range, or rewritten the same */
        add_item(st, s, old ? old + k * is : NULL, new_ + k * is);
    }
}

#if defined(__SSE2__)

/* Floats, two or four items at a time (SSE2 is part of x86-64): the summary of a training
 * step's six million floats was a third of the writer's time item by item. A block where
 * an old or new value is NaN or Inf is left to add_item, which counts what appeared and
 * went; elsewhere nothing can appear or go, and a delta is counted for each changed item
 * whose difference is finite. The sums are kept per vector lane, then added: the same sum
 * up to rounding (delta_mean is a mean, not a checksum). Returns the items done. */
struct float_acc {
    __m128d sum, min, max;
    __m128i changed, deltas;   /* per lane, counted down from 0 (a true mask is -1) */
};

static inline void acc_init(struct float_acc *a)
{
    a->sum = _mm_setzero_pd();
    a->min = _mm_set1_pd(INFINITY);
    a->max = _mm_set1_pd(-INFINITY);
    a->changed = a->deltas = _mm_setzero_si128();
}

/* Two deltas d of two items, changed: a 64-bit mask per item. */
static inline void acc_add(struct float_acc *a, __m128d d, __m128i changed)
{
    __m128d finite = _mm_cmpeq_pd(_mm_sub_pd(d, d), _mm_setzero_pd());
    __m128d use = _mm_and_pd(_mm_castsi128_pd(changed), finite);
    __m128d du = _mm_and_pd(use, d);
    a->sum = _mm_add_pd(a->sum, du);
    a->min = _mm_min_pd(a->min, _mm_or_pd(du, _mm_andnot_pd(use, _mm_set1_pd(INFINITY))));
    a->max = _mm_max_pd(a->max, _mm_or_pd(du, _mm_andnot_pd(use, _mm_set1_pd(-INFINITY))));
    a->changed = _mm_sub_epi64(a->changed, changed);
    a->deltas = _mm_sub_epi64(a->deltas, _mm_castpd_si128(use));
}

static void acc_done(const struct float_acc *a, struct mw_elem_stats *st)
{
    double v[2];
    uint64_t c[2];
    _mm_storeu_pd(v, a->sum);
    st->delta_sum += v[0] + v[1];
    _mm_storeu_pd(v, a->min);
    st->delta_min = fmin(st->delta_min, fmin(v[0], v[1]));
    _mm_storeu_pd(v, a->max);
    st->delta_max = fmax(st->delta_max, fmax(v[0], v[1]));
    _mm_storeu_si128((__m128i *)c, a->changed);
    st->elements += c[0] + c[1];
    _mm_storeu_si128((__m128i *)c, a->deltas);
    st->deltas += c[0] + c[1];
}

static size_t floats_vec(const struct mw_elem_scalar *s, const unsigned char *old,
                         const unsigned char *new_, size_t items, struct mw_elem_stats *st)
{
    struct float_acc a;
    acc_init(&a);
    const __m128i ones = _mm_set1_epi32(-1);
    size_t i = 0;
    if (s->size == 8) {
        for (; i + 2 <= items; i += 2) {
            const unsigned char *o = old + 8 * i, *n = new_ + 8 * i;
            __m128d ov = _mm_loadu_pd((const double *)(const void *)o);
            __m128d nv = _mm_loadu_pd((const double *)(const void *)n);
            __m128d fin = _mm_and_pd(_mm_cmpeq_pd(_mm_sub_pd(ov, ov), _mm_setzero_pd()),
                                     _mm_cmpeq_pd(_mm_sub_pd(nv, nv), _mm_setzero_pd()));
            __m128i eq = _mm_cmpeq_epi32(_mm_castpd_si128(ov), _mm_castpd_si128(nv));
            eq = _mm_and_si128(eq, _mm_shuffle_epi32(eq, _MM_SHUFFLE(2, 3, 0, 1)));
            if (_mm_movemask_pd(fin) != 3) {
                add_changed_items(st, s, o, n, 2, 8);
                continue;
            }
            acc_add(&a, _mm_sub_pd(nv, ov), _mm_xor_si128(eq, ones));
        }
    } else {
        for (; i + 4 <= items; i += 4) {
            const unsigned char *o = old + 4 * i, *n = new_ + 4 * i;
            __m128 ov = _mm_loadu_ps((const float *)(const void *)o);
            __m128 nv = _mm_loadu_ps((const float *)(const void *)n);
            __m128 fin = _mm_and_ps(_mm_cmpeq_ps(_mm_sub_ps(ov, ov), _mm_setzero_ps()),
                                    _mm_cmpeq_ps(_mm_sub_ps(nv, nv), _mm_setzero_ps()));
            if (_mm_movemask_ps(fin) != 15) {
                add_changed_items(st, s, o, n, 4, 4);
                continue;
            }
            __m128i changed = _mm_xor_si128(
                _mm_cmpeq_epi32(_mm_castps_si128(ov), _mm_castps_si128(nv)), ones);
            /* Differences of floats in double, as add_item takes them. */
            __m128d dlo = _mm_sub_pd(_mm_cvtps_pd(nv), _mm_cvtps_pd(ov));
            __m128d dhi = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(nv, nv)),
                                     _mm_cvtps_pd(_mm_movehl_ps(ov, ov)));
            acc_add(&a, dlo, _mm_unpacklo_epi32(changed, changed));
            acc_add(&a, dhi, _mm_unpackhi_epi32(changed, changed));
        }
    }
    acc_done(&a, st);
    return i;
}

#else

static size_t floats_vec(const struct mw_elem_scalar *s, const unsigned char *old,
                         const unsigned char *new_, size_t items, struct mw_elem_stats *st)
{
    (void)s, (void)old, (void)new_, (void)items, (void)st;
    return 0;
}

#endif

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
        uint64_t at = 0;
        if (r->old && s->kind == MW_ELEM_FLOAT)
            at = floats_vec(s, r->old, r->new_, (size_t)(r->length / is), st) * is;
        add_changed_items(st, s, r->old ? r->old + at : NULL, r->new_ + at,
                          (size_t)((r->length - at) / is), is);
    }
    return 0;
}
