/* The trace writer's changes (see change_store.h). */
#include "change_store.h"

#include "held_values.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "change_rows.h"
#include "codec.h"
#include "elements.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "site_store.h"
#include "value_stats.h"

enum { ST_RANGE, ST_STATS, ST_META, ST_COUNT };

static const char *const stmt_sql[ST_COUNT] = {
    [ST_RANGE] = "INSERT INTO ranges (seq, offset, length, old, new, complete)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
    [ST_STATS] = "INSERT OR REPLACE INTO change_stats (seq, elements, unknown, deltas, delta_min,"
                 " delta_max, delta_mean, nan_appeared, nan_gone, inf_appeared, inf_gone)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
};

/* changes.kept (schemas/trace.sql, VALUES). */
enum { KEPT_NONE = 0, KEPT_ROWS = 1, KEPT_CHUNKS = 2, KEPT_DROPPED = 3 };

/* A watched object with an element type: its layout, for the numeric summary of its
 * changes, and its NaN/Inf history for the end-of-run line. Objects of plain bytes have
 * none, so a run that watches a million bytearrays pays nothing here. */
struct typed_object {
    uint64_t id;
    mw_elem_layout *layout;
    char *tag;
    uint64_t nan_appeared, inf_appeared;
    uint64_t first_seq, first_nan, first_inf;
    char *first_file;
    int first_line;
};

/* One range of the change being stored; its bytes, when kept in rows, in ibuf. */
struct prange {
    uint64_t offset, length;
    int complete;
    size_t at;                    /* in ibuf: old (if complete) then new */
};

/* The change being stored, from its first frame to its last. */
struct pending {
    int active;
    struct mw_rec_change meta;    /* ranges unused; strings in owned when it spans frames */
    char *owned;
    struct mw_value_object *obj;
    struct typed_object *typed;
    int kept;
    int not_recorded;             /* no room for its row: its frames are skipped */
    struct prange *r;
    size_t n, cap;
    unsigned char *ibuf;
    size_t ilen, icap;
    int with_old;                 /* its old bytes are stored too (role 1) */
    struct mw_held *held;         /* the writer's copy of the object it reads and moves on */
    int last_in;                  /* its last frame came (else it was cut short) */
    struct mw_value_stream snew, sold;
    struct mw_elem_stats stats;
    uint64_t changed_bytes, decoded;
};

struct mw_change_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    mw_value_store *values;
    mw_site_store *sites;         /* who wrote (site_store.h) */
    mw_change_rows *rows;         /* the rows of change_rows (change_rows.h) */
    mw_held_values *held;         /* objects' values, for changes sent without old bytes */
    struct typed_object *typed;   /* in id order */
    size_t ntyped, captyped;
    struct pending p;
    uint64_t *pairs;              /* ranges as [lo, hi) pairs, for value_store */
    size_t cappairs;
    uint64_t not_recorded;
    char err[512];
};

static int fail(mw_change_store *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(mw_change_store *s, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return status;
}

/* A status from value_store, with its message. */
static int values_fail(mw_change_store *s, int status)
{
    return fail(s, status, "%s", mw_value_store_errmsg(s->values));
}

static int step(mw_change_store *s, int which)
{
    sqlite3_stmt *st = s->stmt[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return fail(s, MW_ETRACE, "cannot write the trace: %s", sqlite3_errmsg(s->db));
    return 0;
}

const char *mw_change_store_errmsg(const mw_change_store *s)
{
    return s && s->err[0] ? s->err : "no error";
}

int mw_change_store_create(sqlite3 *db, const struct mw_values_config *cfg,
                           mw_change_store **out)
{
    *out = NULL;
    mw_change_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->db = db;
    s->p.snew.piece = malloc(MW_CODEC_PIECE);
    s->p.snew.ref = malloc(MW_CODEC_PIECE);
    s->p.sold.piece = malloc(MW_CODEC_PIECE);
    int rc = s->p.snew.piece && s->p.snew.ref && s->p.sold.piece ? 0 : -ENOMEM;
    for (int i = 0; rc == 0 && i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                               NULL) != SQLITE_OK)
            rc = MW_ETRACE;
    if (rc == 0)
        rc = mw_site_store_create(db, &s->sites);
    /* Under a size limit each row is in the file at once, so that the file's size is
     * what the limit is checked against. */
    if (rc == 0)
        rc = mw_change_rows_create(db, cfg->max_size ? 1 : MW_CHANGE_ROWS_PER_INSERT,
                                   &s->rows);
    if (rc == 0)
        rc = mw_value_store_create(db, cfg, &s->values);
    if (rc == 0)
        rc = mw_held_create(&s->held);
    if (rc) {
        mw_change_store_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void pending_reset(struct pending *p)
{
    free(p->owned);
    p->owned = NULL;
    p->active = 0;
    p->n = 0;
    p->ilen = 0;
}

void mw_change_store_release_db(mw_change_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    mw_site_store_release_db(s->sites);
    mw_change_rows_release_db(s->rows);
    mw_value_store_release_db(s->values);
}

void mw_change_store_destroy(mw_change_store *s)
{
    if (!s)
        return;
    mw_change_store_release_db(s);
    mw_value_store_destroy(s->values);
    mw_site_store_destroy(s->sites);
    mw_change_rows_destroy(s->rows);
    mw_held_destroy(s->held);
    for (size_t i = 0; i < s->ntyped; i++) {
        mw_elem_layout_destroy(s->typed[i].layout);
        free(s->typed[i].tag);
        free(s->typed[i].first_file);
    }
    free(s->typed);
    pending_reset(&s->p);
    free(s->p.r);
    free(s->p.ibuf);
    free(s->p.snew.piece);
    free(s->p.snew.ref);
    free(s->p.sold.piece);
    free(s->pairs);
    free(s);
}

/* ---- objects -------------------------------------------------------------------------- */

static int cmp_typed_id(const void *key, const void *elem)
{
    uint64_t a = *(const uint64_t *)key, b = ((const struct typed_object *)elem)->id;
    return a < b ? -1 : a > b;
}

static struct typed_object *find_typed(mw_change_store *s, uint64_t id)
{
    if (s->ntyped && s->typed[s->ntyped - 1].id == id)
        return &s->typed[s->ntyped - 1];
    return bsearch(&id, s->typed, s->ntyped, sizeof *s->typed, cmp_typed_id);
}

/* Keeps l for object o (which has an element type). */
static int add_typed(mw_change_store *s, const struct mw_rec_object *o, mw_elem_layout *l)
{
    if (MW_GROW(s->typed, s->captyped, s->ntyped + 1) != 0)
        return -ENOMEM;
    s->p.typed = NULL;   /* may have moved */
    struct typed_object *t = &s->typed[s->ntyped];
    memset(t, 0, sizeof *t);
    t->id = o->id;
    t->layout = l;
    if (!(t->tag = strdup(o->tag ? o->tag : "")))
        return -ENOMEM;
    /* Ids only grow in one run; keep the array sorted for the lookup anyway. */
    size_t at = s->ntyped;
    while (at > 0 && s->typed[at - 1].id > o->id) {
        struct typed_object tmp = s->typed[at - 1];
        s->typed[at - 1] = s->typed[at];
        s->typed[at] = tmp;
        at--;
    }
    s->ntyped++;
    return 0;
}

/* The lane its values are coded by (codec.h): its scalars' size when they all have it. */
static unsigned layout_lane(const mw_elem_layout *l)
{
    size_t n;
    const struct mw_elem_scalar *sc = mw_elem_layout_scalars(l, &n);
    if (n == 0)
        return 1;
    size_t size = sc[0].kind == MW_ELEM_COMPLEX ? sc[0].unit : sc[0].size;
    for (size_t i = 1; i < n; i++)
        if ((sc[i].kind == MW_ELEM_COMPLEX ? sc[i].unit : sc[i].size) != size)
            return 1;
    return mw_codec_lane(mw_elem_layout_itemsize(l), size);
}

int mw_change_store_object(mw_change_store *s, const struct mw_rec_object *o)
{
    unsigned lane = 1;
    mw_elem_layout *l = NULL;
    if (o->format && o->ndim <= MW_REC_MAX_NDIM) {
        struct mw_elem_desc d = {
            .format = o->format, .type_name = o->type_name, .itemsize = o->itemsize,
            .ndim = o->ndim, .shape = o->shape, .strides = o->strides, .size = o->size,
            .contiguous = -1,
        };
        int rc = mw_elem_layout_create(&d, &l);
        if (rc == -ENOMEM)
            return fail(s, rc, "out of memory");
        if (rc == 0 && !mw_elem_layout_typed(l)) {
            mw_elem_layout_destroy(l);   /* bytes: no summary */
            l = NULL;
        }
        if (rc)
            l = NULL;   /* a format this cannot read: stored without a summary */
    }
    if (l)
        lane = layout_lane(l);
    if (l && add_typed(s, o, l) != 0) {
        if (s->ntyped == 0 || s->typed[s->ntyped - 1].layout != l)
            mw_elem_layout_destroy(l);
        return fail(s, -ENOMEM, "out of memory");
    }
    if (!mw_value_store_object(s->values, o->id, o->size, lane))
        return fail(s, -ENOMEM, "out of memory");
    return 0;
}

int mw_change_store_value(mw_change_store *s, const struct mw_rec_value *v)
{
    if (mw_value_store_config(s->values)->values == MW_VALUES_SUMMARY)
        return 0;
    struct mw_value_object *o = mw_value_store_find(s->values, v->object_id);
    if (!o)
        return fail(s, MW_EFORMAT, "a value of object %" PRIu64 " arrived before the object",
                    v->object_id);
    if (v->size != o->size)
        return fail(s, MW_EFORMAT, "a value of object %" PRIu64 " has %" PRIu64 " bytes, not %"
                    PRIu64, v->object_id, v->size, o->size);
    mw_held_base(s->held, v->pid, v);
    int rc = mw_value_store_base(s->values, o, v->seq, v->offset, v->bytes, v->length, v->exact);
    return rc ? values_fail(s, rc) : 0;
}

/* ---- one change, frame by frame --------------------------------------------------------- */

/* How many bytes differ, sixteen (SSE2) or eight at a time: a byte of x = a ^ b is
 * non-zero when its low seven bits carry into the top one, or the top one is set (a
 * megabyte per whole-array change made the byte loop a tenth of the writer's time). */
static uint64_t differing(const unsigned char *a, const unsigned char *b, uint64_t n)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
    uint64_t d = 0, i = 0;
#if defined(__SSE2__)
    /* Sixteen at a time on x86-64: equal bytes counted in byte lanes (255 rounds at most
     * before a lane could wrap), then summed. */
    while (i + 16 <= n) {
        uint64_t rounds = (n - i) / 16 < 255 ? (n - i) / 16 : 255;
        __m128i same = _mm_setzero_si128();
        for (uint64_t k = 0; k < rounds; k++, i += 16)
            same = _mm_sub_epi8(same, _mm_cmpeq_epi8(
                                          _mm_loadu_si128((const __m128i *)(const void *)(a + i)),
                                          _mm_loadu_si128((const __m128i *)(const void *)(b + i))));
        __m128i sums = _mm_sad_epu8(same, _mm_setzero_si128());
        d += 16 * rounds - (uint64_t)_mm_cvtsi128_si32(sums) -
             (uint64_t)_mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        x ^= y;
        uint64_t top = ((((x & low7) + low7) | x) & ~low7) >> 7;   /* 1 per such byte */
        d += (top * 0x0101010101010101ull) >> 56;                   /* their sum */
    }
    for (; i < n; i++)
        d += a[i] != b[i];
    return d;
}

/* The change's strings, copied (it spans frames, whose memory the decoder reuses). */
static int keep_strings(struct pending *p)
{
    const char **f[] = {&p->meta.thread_name, &p->meta.file, &p->meta.function,
                        &p->meta.native_symbol, &p->meta.native_library};
    size_t total = 0;
    for (size_t i = 0; i < 5; i++)
        total += *f[i] ? strlen(*f[i]) + 1 : 0;
    if (!(p->owned = malloc(total ? total : 1)))
        return -ENOMEM;
    char *at = p->owned;
    for (size_t i = 0; i < 5; i++)
        if (*f[i]) {
            size_t n = strlen(*f[i]) + 1;
            memcpy(at, *f[i], n);
            *f[i] = at;
            at += n;
        }
    return 0;
}

/* The ranges as [lo, hi) pairs in s->pairs. */
static int pairs_of(mw_change_store *s, const struct mw_rec_range *r, size_t n)
{
    if (MW_GROW(s->pairs, s->cappairs, 2 * n + 2) != 0)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        s->pairs[2 * i] = r[i].offset;
        s->pairs[2 * i + 1] = r[i].offset + r[i].length;
    }
    return 0;
}

/* Where the change's bytes go (see change_store.h), decided on its first frame. */
static int choose_kept(mw_change_store *s, const struct mw_rec_change *c)
{
    struct pending *p = &s->p;
    const struct mw_values_config *cfg = mw_value_store_config(s->values);
    if (cfg->values == MW_VALUES_SUMMARY) {
        p->kept = KEPT_NONE;
        return 0;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < c->nranges; i++)
        total += c->ranges[i].length;
    if (!c->more && total <= MW_INLINE_MAX && cfg->values == MW_VALUES_FULL && !cfg->max_size) {
        p->kept = KEPT_ROWS;
        return 0;
    }
    p->kept = KEPT_CHUNKS;
    if (pairs_of(s, c->ranges, c->nranges) != 0)
        return -ENOMEM;
    /* A change in several frames is judged by its extent, the rest of its ranges being
     * still on their way. */
    uint64_t extent[2] = {c->extent_lo, c->extent_hi};
    p->with_old = c->more ? mw_value_store_needs_old(s->values, p->obj, c->seq, extent, 1)
                          : mw_value_store_needs_old(s->values, p->obj, c->seq, s->pairs,
                                                     c->nranges);
    mw_value_stream_begin(&p->snew, p->obj, c->seq, MW_ROLE_NEW, 1);
    if (p->with_old)
        mw_value_stream_begin(&p->sold, p->obj, c->seq, MW_ROLE_OLD, 0);
    return 0;
}

/* Appends a range to the change's list, joining it to the previous one it continues. */
static int add_prange(struct pending *p, const struct mw_rec_range *g)
{
    struct prange *last = p->n ? &p->r[p->n - 1] : NULL;
    int complete = g->old != NULL;
    if (last && p->kept != KEPT_ROWS && last->offset + last->length == g->offset &&
        last->complete == complete) {
        last->length += g->length;
        return 0;
    }
    if (MW_GROW(p->r, p->cap, p->n + 1) != 0)
        return -ENOMEM;
    p->r[p->n++] = (struct prange){g->offset, g->length, complete, p->ilen};
    return 0;
}

/* Keeps a small change's bytes for its rows. */
static int keep_inline(struct pending *p, const struct mw_rec_range *g)
{
    size_t need = p->ilen + (size_t)g->length * (g->old ? 2 : 1);
    if (MW_GROW(p->ibuf, p->icap, need) != 0)
        return -ENOMEM;
    if (g->old)
        memcpy(p->ibuf + p->ilen, g->old, g->length);
    memcpy(p->ibuf + p->ilen + (g->old ? g->length : 0), g->new_, g->length);
    p->ilen = need;
    return 0;
}

/* One frame's ranges of the change, as the store takes them. */
static int store_ranges(mw_change_store *s, const struct mw_rec_range *r, uint32_t n)
{
    struct pending *p = &s->p;
    static const unsigned char zeros[4096];
    for (uint32_t i = 0; i < n; i++) {
        const struct mw_rec_range *g = &r[i];
        if (add_prange(p, g) != 0 || (p->kept == KEPT_ROWS && keep_inline(p, g) != 0))
            return fail(s, -ENOMEM, "out of memory");
        p->changed_bytes += g->old ? differing(g->old, g->new_, g->length) : g->length;
        if (p->kept != KEPT_CHUNKS)
            continue;
        int rc = mw_value_stream_add(s->values, &p->snew, g->new_, g->old, (size_t)g->length);
        p->decoded += g->length;
        /* Old bytes unavailable are zeros in the old stream; the range says so. */
        for (uint64_t at = 0; rc == 0 && p->with_old && at < g->length; at += sizeof zeros) {
            size_t m = g->length - at < sizeof zeros ? (size_t)(g->length - at) : sizeof zeros;
            rc = mw_value_stream_add(s->values, &p->sold, g->old ? g->old + at : zeros, NULL, m);
            p->decoded += m;
        }
        if (rc)
            return values_fail(s, rc);
    }
    if (p->typed &&
        mw_value_stats_add(p->typed->layout, r, n, &p->stats) == -ENOMEM)
        return fail(s, -ENOMEM, "out of memory");
    return 0;
}

/* One frame's ranges: old bytes the traced process left to the writer's copy of the object
 * are taken from it (held_values.h), and the copy moves on even when the change is not
 * recorded, since the process's next change counts on it. */
static int add_ranges(mw_change_store *s, const struct mw_rec_range *r, uint32_t n)
{
    struct pending *p = &s->p;
    const struct mw_rec_range *full = r;
    if (mw_held_old_bytes(s->held, p->held, p->meta.old_held, r, n, &full) != 0)
        return fail(s, -ENOMEM, "out of memory");
    int rc = p->not_recorded ? 0 : store_ranges(s, full, n);
    mw_held_apply(s->held, p->held, r, n);
    return rc;
}

/* The change's first frame. */
static int begin_change(mw_change_store *s, const struct mw_rec_change *c)
{
    struct pending *p = &s->p;
    pending_reset(p);
    p->active = 1;
    p->meta = *c;
    p->not_recorded = 0;
    p->with_old = 0;
    p->changed_bytes = p->decoded = 0;
    mw_elem_stats_init(&p->stats);
    if (c->more && keep_strings(p) != 0)
        return fail(s, -ENOMEM, "out of memory");
    p->obj = mw_value_store_find(s->values, c->object_id);
    if (!p->obj)   /* a hand-made stream: an object of unknown size */
        p->obj = mw_value_store_object(s->values, c->object_id, 0, 1);
    if (!p->obj)
        return fail(s, -ENOMEM, "out of memory");
    p->typed = s->ntyped ? find_typed(s, c->object_id) : NULL;
    p->held = mw_held_begin_change(s->held, c->pid, c->object_id, p->obj->size, c->ordinal);
    p->last_in = 0;
    /* Room for its row first: a change that cannot be recorded at all is not. */
    int room = mw_value_store_room_for_row(s->values, 160, p->obj);
    if (room < 0)
        return values_fail(s, room);
    if (room) {
        p->not_recorded = 1;
        s->not_recorded++;
        return add_ranges(s, c->ranges, c->nranges);
    }
    int rc = choose_kept(s, c);
    if (rc)
        return fail(s, rc, "out of memory");
    return add_ranges(s, c->ranges, c->nranges);
}

/* ---- storing a finished change ------------------------------------------------------------- */

static void bind_bytes(sqlite3_stmt *st, int i, const unsigned char *b, uint64_t n)
{
    if (n)
        sqlite3_bind_blob64(st, i, b, n, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(st, i, 0);
}

/* Binds a range's columns (offset, length, old, new, complete) from column `first` on. */
static void bind_range(const struct pending *p, sqlite3_stmt *st, int first, const struct prange *g)
{
    sqlite3_bind_int64(st, first, (int64_t)g->offset);
    sqlite3_bind_int64(st, first + 1, (int64_t)g->length);
    if (p->kept == KEPT_ROWS) {
        if (g->complete)
            bind_bytes(st, first + 2, p->ibuf + g->at, g->length);
        bind_bytes(st, first + 3, p->ibuf + g->at + (g->complete ? g->length : 0), g->length);
    }
    sqlite3_bind_int(st, first + 4, g->complete);
}

/* Under --values=summary: at most MW_SUMMARY_RANGES ranges, neighbours joined. */
static void fewer_ranges(struct pending *p)
{
    if (p->kept != KEPT_NONE || p->n <= MW_SUMMARY_RANGES)
        return;
    size_t per = (p->n + MW_SUMMARY_RANGES - 1) / MW_SUMMARY_RANGES, out = 0;
    for (size_t i = 0; i < p->n; i += per) {
        size_t last = i + per - 1 < p->n ? i + per - 1 : p->n - 1;
        struct prange g = p->r[i];
        g.length = p->r[last].offset + p->r[last].length - g.offset;
        for (size_t k = i; k <= last; k++)
            g.complete &= p->r[k].complete;
        p->r[out++] = g;
    }
    p->n = out;
}

static int insert_change_row(mw_change_store *s)
{
    struct pending *p = &s->p;
    const struct mw_rec_change *c = &p->meta;
    struct mw_change_row row = {
        .seq = c->seq, .time_ns = c->time_ns, .object_id = c->object_id,
        .nranges = p->n, .changed_bytes = p->changed_bytes, .kept = p->kept,
        .has_range = p->n == 1, .bytes = p->kept == KEPT_ROWS,
    };
    int rc = mw_site_store_id(s->sites, c, &row.site);
    if (rc == 0 && row.has_range) {
        const struct prange *g = &p->r[0];
        row.offset = g->offset;
        row.length = g->length;
        row.complete = g->complete;
        row.old = g->complete ? p->ibuf + g->at : NULL;
        row.new_ = p->ibuf + g->at + (g->complete ? g->length : 0);
    }
    if (rc == 0)
        rc = mw_change_rows_add(s->rows, &row);
    if (rc)
        return rc == -ENOMEM ? fail(s, rc, "out of memory")
                             : fail(s, rc, "cannot write the trace: %s", sqlite3_errmsg(s->db));
    sqlite3_stmt *st;
    for (size_t i = 0; rc == 0 && p->n > 1 && i < p->n; i++) {
        st = s->stmt[ST_RANGE];
        sqlite3_bind_int64(st, 1, (int64_t)c->seq);
        bind_range(p, st, 2, &p->r[i]);
        rc = step(s, ST_RANGE);
    }
    return rc;
}

/* The change's numeric summary, and the NaN/Inf history of its object. */
static int store_stats(mw_change_store *s)
{
    struct pending *p = &s->p;
    struct typed_object *t = p->typed;
    const struct mw_elem_stats *st = &p->stats;
    if (!t || st->elements == 0)
        return 0;
    sqlite3_stmt *q = s->stmt[ST_STATS];
    sqlite3_bind_int64(q, 1, (int64_t)p->meta.seq);
    sqlite3_bind_int64(q, 2, (int64_t)st->elements);
    sqlite3_bind_int64(q, 3, (int64_t)st->unknown);
    sqlite3_bind_int64(q, 4, (int64_t)st->deltas);
    if (st->deltas) {
        sqlite3_bind_double(q, 5, st->delta_min);
        sqlite3_bind_double(q, 6, st->delta_max);
        sqlite3_bind_double(q, 7, st->delta_sum / (double)st->deltas);
    }
    sqlite3_bind_int64(q, 8, (int64_t)st->nan_appeared);
    sqlite3_bind_int64(q, 9, (int64_t)st->nan_gone);
    sqlite3_bind_int64(q, 10, (int64_t)st->inf_appeared);
    sqlite3_bind_int64(q, 11, (int64_t)st->inf_gone);
    int rc = step(s, ST_STATS);
    if (rc || !(st->nan_appeared || st->inf_appeared))
        return rc;
    t->nan_appeared += st->nan_appeared;
    t->inf_appeared += st->inf_appeared;
    if (!t->first_seq) {
        if (p->meta.file && !(t->first_file = strdup(p->meta.file)))
            return fail(s, -ENOMEM, "out of memory");
        t->first_seq = p->meta.seq;
        t->first_line = p->meta.line;
        t->first_nan = st->nan_appeared;
        t->first_inf = st->inf_appeared;
    }
    return 0;
}

/* The last frame is in: the change's rows, and what its values leave in their group. */
static int finish_change(mw_change_store *s, struct mw_stored *done)
{
    struct pending *p = &s->p;
    int rc = 0;
    if (!p->active)
        return 0;
    mw_held_end_change(s->held, p->held, p->meta.ordinal, p->last_in);
    p->held = NULL;
    if (p->not_recorded) {
        pending_reset(p);
        return 0;
    }
    if (p->kept == KEPT_CHUNKS) {
        if ((rc = mw_value_stream_end(s->values, &p->snew)) == 0 && p->with_old)
            rc = mw_value_stream_end(s->values, &p->sold);
        if (rc == 0 && (p->snew.failed || (p->with_old && p->sold.failed))) {
            /* No room for its values: the change is recorded without them. */
            rc = mw_value_stream_abandon(s->values, &p->snew);
            if (rc == 0 && p->with_old)
                rc = mw_value_stream_abandon(s->values, &p->sold);
            mw_value_store_note_dropped(s->values, p->decoded);
            p->kept = KEPT_DROPPED;
        }
        if (rc)
            return values_fail(s, rc);
    }
    fewer_ranges(p);
    if ((rc = insert_change_row(s)) == 0)
        rc = store_stats(s);
    if (rc == 0 && p->kept == KEPT_CHUNKS) {
        if (MW_GROW(s->pairs, s->cappairs, 2 * p->n) != 0)
            return fail(s, -ENOMEM, "out of memory");
        for (size_t i = 0; i < p->n; i++) {
            s->pairs[2 * i] = p->r[i].offset;
            s->pairs[2 * i + 1] = p->r[i].offset + p->r[i].length;
        }
        rc = mw_value_store_change_done(s->values, p->obj, p->meta.seq, s->pairs, p->n,
                                        p->decoded);
        if (rc)
            rc = values_fail(s, rc);
    }
    if (rc == 0 && done) {
        done->changes++;
        done->ranges += p->n;
    }
    pending_reset(p);
    return rc;
}

int mw_change_store_change(mw_change_store *s, const struct mw_rec_change *c,
                           struct mw_stored *done)
{
    int rc = mw_change_store_flush(s, done);   /* one whose last frame never came */
    if (rc == 0)
        rc = begin_change(s, c);
    if (rc == 0 && !c->more) {
        s->p.last_in = 1;
        rc = finish_change(s, done);
    }
    return rc;
}

int mw_change_store_ranges(mw_change_store *s, const struct mw_rec_ranges *r,
                           struct mw_stored *done)
{
    if (!s->p.active || r->seq != s->p.meta.seq)
        return fail(s, MW_EFORMAT, "ranges of change %" PRIu64 " arrived after another change",
                    r->seq);
    int rc = add_ranges(s, r->ranges, r->nranges);
    if (rc == 0 && !r->more) {
        s->p.last_in = 1;
        rc = finish_change(s, done);
    }
    return rc;
}

int mw_change_store_flush(mw_change_store *s, struct mw_stored *done)
{
    return s->p.active ? finish_change(s, done) : 0;
}

void mw_change_store_rolled_back(mw_change_store *s)
{
    mw_site_store_forget(s->sites);
    mw_change_rows_forget(s->rows);
    /* Later changes are coded against what the file holds, which lost the batch. */
    mw_held_drop_all(s->held);
}

void mw_change_store_unwatch(mw_change_store *s, uint64_t object_id)
{
    mw_held_drop_object(s->held, object_id);
}

void mw_change_store_process_end(mw_change_store *s, int64_t pid)
{
    mw_held_drop_process(s->held, pid);
}

void mw_change_store_set_committer(mw_change_store *s,
                                   int (*commit)(void *ctx, char *err, size_t size), void *ctx)
{
    mw_value_store_set_committer(s->values, commit, ctx);
}

void mw_change_store_batch_ended(mw_change_store *s)
{
    mw_value_store_batch_ended(s->values);
}

int mw_change_store_flush_rows(mw_change_store *s)
{
    int rc = mw_change_rows_flush(s->rows);
    return rc ? fail(s, rc, "cannot write the trace: %s", sqlite3_errmsg(s->db)) : 0;
}

/* ---- the run's end ------------------------------------------------------------------------ */

int mw_change_store_nonfinite(const mw_change_store *s, size_t i, struct mw_trace_nonfinite *out)
{
    for (size_t k = 0; k < s->ntyped; k++) {
        const struct typed_object *t = &s->typed[k];
        if (!t->first_seq || i-- > 0)
            continue;
        *out = (struct mw_trace_nonfinite){
            .tag = t->tag,
            .object_id = t->id,
            .nan_appeared = t->nan_appeared,
            .inf_appeared = t->inf_appeared,
            .first_seq = t->first_seq,
            .first_nan = t->first_nan,
            .first_inf = t->first_inf,
            .first_file = t->first_file,
            .first_line = t->first_line,
        };
        return 1;
    }
    return 0;
}

void mw_change_store_dropped(const mw_change_store *s, uint64_t *values_changes,
                             uint64_t *values_bytes, uint64_t *not_recorded)
{
    mw_value_store_dropped(s->values, values_changes, values_bytes);
    *not_recorded = s->not_recorded;
}

static int put_meta(mw_change_store *s, const char *key, const char *value)
{
    sqlite3_stmt *st = s->stmt[ST_META];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    return step(s, ST_META);
}

int mw_change_store_finish(mw_change_store *s)
{
    int rc = mw_change_store_flush_rows(s);
    if (rc)
        return rc;
    const struct mw_values_config *cfg = mw_value_store_config(s->values);
    struct mw_run_settings rs;
    mw_run_settings_init(&rs);
    rs.values = cfg->values;
    rs.values_last = cfg->last;
    char text[64];
    uint64_t changes, bytes, not_recorded;
    mw_change_store_dropped(s, &changes, &bytes, &not_recorded);
    mw_format_values(&rs, text, sizeof text);
    rc = put_meta(s, "values", text);
    if (rc == 0 && cfg->max_size) {
        snprintf(text, sizeof text, "%" PRIu64, cfg->max_size);
        rc = put_meta(s, "max_trace_size", text);
    }
    const struct {
        const char *key;
        uint64_t n;
    } counts[] = {{"values_dropped_changes", changes}, {"values_dropped_bytes", bytes},
                  {"changes_not_recorded", not_recorded}};
    for (size_t i = 0; rc == 0 && i < sizeof counts / sizeof *counts; i++) {
        snprintf(text, sizeof text, "%" PRIu64, counts[i].n);
        rc = put_meta(s, counts[i].key, text);
    }
    if (rc == 0 && (rc = mw_value_store_finish(s->values)) != 0)
        rc = values_fail(s, rc);
    return rc;
}
