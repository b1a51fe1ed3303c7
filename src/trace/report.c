/* The HTML report of a trace: aggregation in SQL and C, then template + JSON data.
 *
 * DESIGN
 * - Two reads of the trace. The first is small: meta, the run row, the objects, and per
 *   object its number of changes (a covering scan of changes_by_object). From those come the
 *   lanes (the MW_REPORT_MAX_LANES tags with the most changes), each tag's heatmap geometry
 *   and its share of the max_marks individual marks (water-filling, so that a tag with few
 *   changes shows all of them). The second read streams every changed range in (seq, offset)
 *   order, once, and feeds all the aggregates: per-tag totals, time density bins, heatmap
 *   cells, writer totals, NaN/Inf detection, and the sampled marks. Its cost is linear in the
 *   trace and its memory is bounded by the number of objects, locations and marks, never by
 *   the number of changes.
 * - Heatmaps count, per cell, the changed ranges that touch it, with O(1) work per range and
 *   per binned row (difference arrays, prefix-summed at the end): a range that rewrites a
 *   400 MB array costs as little as a one-byte change. For C- or Fortran-contiguous arrays of
 *   two or more dimensions the cells are element rows and columns (leading dimensions folded
 *   into rows); otherwise elements (typed, contiguous) or bytes in one dimension.
 * - NaN/Inf: when the writer counted them (the change_stats table, typed elements), its
 *   counts are exact and win. The elements are named from the changed bytes: ranges of
 *   typed objects are widened to whole items, so elements.c decodes each float. In traces from before
 *   that, a float's bytes outside the changed range are unknown (they did not change); a
 *   value can only become NaN or Inf by changing its exponent to all ones, so the exponent
 *   bits in the range say "appeared" for certain when they all are there, and "possibly"
 *   when only some are (the unknown bits are the same in the old and new value).
 * - The page data is one JSON document inside <script type="application/json">: every
 *   string is escaped so that no "<" appears in it, hence no "</script>" can end it early. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "elements.h"
#include "json_out.h"
#include "mw_error.h"
#include "reader.h"
#include "report_template.h"

enum {
    TIME_BINS = 1000,          /* density bins per lane */
    HEAT_1D_BINS = 4096,       /* cells of a one-dimensional heatmap */
    HEAT_ROWS = 128,           /* at most, for two-dimensional ones */
    HEAT_COLS = 256,
    TOP_WRITERS = 100,         /* by changes, and again by bytes */
    WRITER_TAGS = 4,           /* tags named per writer */
    NONFINITE_LISTED = 1000,   /* NaN/Inf events listed on the page */
    NONFINITE_MARKS = 5000,    /* NaN/Inf events drawn as marks beyond max_marks */
    PREVIEW = 16,              /* bytes of a mark's first range kept for the page */
    MAX_DIMS = 32,
};

/* Kinds of a NaN/Inf event, as the page names them. */
enum { NF_NONE, NF_NAN, NF_INF, NF_NAN_OR_INF, NF_POSSIBLE };

struct heat {
    uint64_t unit;             /* bytes per unit (1 for bytes, itemsize for elements) */
    uint64_t units;            /* in the object */
    uint64_t minor_n;          /* units per major row (units for one dimension) */
    uint64_t major_n;
    uint64_t major_bw, minor_bw;   /* units per bin */
    uint32_t major_bins, minor_bins;
    int transpose;             /* Fortran order: display rows are the minor axis */
    int dims;                  /* 1 or 2 as displayed */
    const char *kind;          /* "bytes" or "elements" */
    int64_t *diff;             /* major_bins * (minor_bins + 1) */
};

struct tag {
    char *name;
    size_t first_object;       /* index into objects */
    uint64_t objects, changes, ranges, bytes;
    uint64_t first_seq, last_seq, first_t, last_t;
    uint64_t nonfinite, nonfinite_possible, nonfinite_gone;
    uint64_t quota, rank, marks;
    int lane;                  /* -1: the "other tags" lane (when there is one) */
    int uniform;               /* every object of the tag has the same geometry */
    int float_checked;         /* NaN/Inf detection applies */
    struct heat heat;          /* lanes only */
};

struct object {
    int64_t id;
    size_t tag;
    uint64_t size;
    uint64_t changes;          /* from the first read */
    char *format, *shape_text, *type_name;
    int itemsize;
    int ndim;
    uint64_t shape[MAX_DIMS];
    char order;                /* 'C', 'F', 'V' (a view with gaps: offsets count bytes of
                                  its value in C order), or 0 (unknown) */
    uint64_t items;            /* product of the shape, when known */
    int float_size;            /* 2, 4, 8 when NaN/Inf can be detected, else 0 */
    int big_endian;            /* of the float: which of its bytes hold the exponent */
    struct mw_elem_scalar fscalar;   /* the float, as elements.c decodes it */
};

struct location {
    char *file, *function, *native;
    int line;
    uint64_t changes, bytes;
    uint32_t tags[WRITER_TAGS];
    int ntags, more_tags;
    int64_t out_index;         /* in the page's location table, -1 when not referenced */
};

struct mark {
    uint64_t seq, t;
    uint32_t tag;
    uint32_t loc;
    uint32_t nranges;
    uint64_t bytes;
    uint64_t off, len;         /* the first range */
    unsigned char new_[PREVIEW], old[PREVIEW];
    uint8_t preview_len, has_old;
    uint8_t nonfinite;         /* NF_* of the change, 0 none */
    int64_t elements;          /* elements changed (change_stats), -1 unknown */
};

struct nf_event {
    uint64_t seq, t, element;
    uint32_t tag, loc;
    uint8_t kind;
};

struct report {
    sqlite3 *db;
    FILE *out;
    char *err;
    size_t errlen;
    int status;

    struct object *objects;
    size_t nobjects;
    struct tag *tags;
    size_t ntags;
    uint32_t *lane_tags;        /* lane -> tag index */
    uint32_t nlanes;
    int other_lane;             /* 1 when tags beyond the lanes exist */
    uint32_t *density;          /* (nlanes + other_lane) * TIME_BINS */

    uint64_t total_changes, tmax;
    uint32_t max_marks;

    struct location *locs;
    size_t nlocs, locs_cap;
    uint32_t *loc_hash;         /* open addressing, values loc index + 1 */
    size_t loc_hash_cap;

    struct mark *marks;
    size_t nmarks, marks_cap;
    size_t nonfinite_marks;
    struct nf_event *nf;
    size_t nnf;
    uint64_t nf_total, nf_possible, nf_gone;
    uint64_t changes_without_ranges;
    int elements_table;
    int change_stats;           /* the trace has the change_stats table */
    int stats_used;             /* some change's NaN/Inf counts came from there */
};

static int fail(struct report *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct report *r, int status, const char *fmt, ...)
{
    if (r->status)
        return r->status;   /* the first message is the one that explains */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

static int db_fail(struct report *r, const char *what)
{
    return fail(r, MW_ETRACE, "cannot %s: %s", what, sqlite3_errmsg(r->db));
}

static int nomem(struct report *r)
{
    return fail(r, -ENOMEM, "out of memory");
}

static char *dup_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

/* ---- JSON output ---------------------------------------------------------------------- */

/* Every string of the page data is HTML-safe (see DESIGN). */
static void jstr_n(FILE *f, const char *s, size_t n)
{
    mw_json_string(f, s, n, MW_JSON_HTML_SAFE);
}

static void jstr(FILE *f, const char *s)
{
    jstr_n(f, s, s ? strlen(s) : 0);
}

static void jkey(FILE *f, int *first, const char *key)
{
    if (!*first)
        putc(',', f);
    *first = 0;
    jstr(f, key);
    putc(':', f);
}

/* One SQLite value as JSON: numbers as numbers, text as strings, blobs as hex strings. */
static void jvalue(FILE *f, sqlite3_stmt *s, int col)
{
    switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER:
        fprintf(f, "%lld", (long long)sqlite3_column_int64(s, col));
        break;
    case SQLITE_FLOAT:
        fprintf(f, "%.17g", sqlite3_column_double(s, col));
        break;
    case SQLITE_TEXT:
        jstr_n(f, (const char *)sqlite3_column_text(s, col), (size_t)sqlite3_column_bytes(s, col));
        break;
    case SQLITE_BLOB:
        mw_json_hex(f, sqlite3_column_blob(s, col), (size_t)sqlite3_column_bytes(s, col));
        break;
    default:
        fputs("null", f);
    }
}

/* ---- object geometry ------------------------------------------------------------------ */

/* The objects table's shape or strides text (reader.c reads it): -1 unless every entry is
 * a length or stride this report can lay out, which excludes negative ones. */
static int parse_dims(const char *text, int64_t *v)
{
    int n = mw_trace_reader_parse_dims(text, v, MAX_DIMS);
    for (int i = 0; i < n; i++)
        if (v[i] < 0)
            return -1;
    return n;
}

static void object_geometry(struct object *o, const char *strides_text)
{
    int64_t shape[MAX_DIMS], strides[MAX_DIMS];
    int nd = parse_dims(o->shape_text, shape);
    int ns = parse_dims(strides_text, strides);
    o->ndim = nd > 0 ? nd : 0;
    o->order = 0;
    for (int i = 0; i < o->ndim; i++)
        o->shape[i] = (uint64_t)shape[i];
    if (o->itemsize <= 0 || nd <= 0)
        return;
    uint64_t count = 1;
    for (int i = 0; i < nd; i++)
        count *= o->shape[i];
    o->items = count;
    /* Not laid out without gaps: the trace's offsets count bytes of the view's value in C
     * order (schemas/trace.sql, ELEMENTS), so item k is at k * itemsize all the same. */
    o->order = 'V';
    if (count * (uint64_t)o->itemsize != o->size)
        return;
    if (ns < 0 && strides_text)
        return;
    if (ns != nd) {
        o->order = 'C';   /* no strides recorded: a plain buffer is C-contiguous */
        return;
    }
    char order = mw_elem_contiguous_order(nd, shape, strides, (size_t)o->itemsize);
    o->order = order ? order : 'V';
}

/* NaN/Inf are looked for in objects whose items are one float of 2, 4 or 8 bytes, as
 * elements.c reads their format. */
static void object_float(struct object *o)
{
    if (!o->format || !o->order || o->itemsize <= 0)
        return;
    struct mw_elem_desc d = {.format = o->format, .itemsize = o->itemsize, .ndim = -1,
                             .size = (uint64_t)o->itemsize, .contiguous = 1};
    mw_elem_layout *l;
    if (mw_elem_layout_create(&d, &l) != 0)
        return;
    size_t n;
    const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
    if (n == 1 && s->kind == MW_ELEM_FLOAT && !s->path[0] && s->offset == 0 &&
        (s->size == 2 || s->size == 4 || s->size == 8) && s->size == (uint32_t)o->itemsize) {
        o->fscalar = *s;
        o->fscalar.path = "";   /* the layout's own names go with it */
        o->float_size = (int)s->size;
        /* Stored in this machine's order unless swapped. */
        o->big_endian = (s->swap != 0) != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
    }
    mw_elem_layout_destroy(l);
}

/* Same geometry: the heatmap of one object fits all. */
static int same_geometry(const struct object *a, const struct object *b)
{
    if (a->size != b->size || a->itemsize != b->itemsize || a->order != b->order ||
        a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static int heat_init(struct report *r, struct tag *t, uint64_t max_size)
{
    struct heat *h = &t->heat;
    const struct object *o = &r->objects[t->first_object];
    memset(h, 0, sizeof(*h));
    if (t->uniform && o->order && o->itemsize > 0 && o->ndim >= 1) {
        h->unit = (uint64_t)o->itemsize;
        h->units = o->items;
        h->kind = "elements";
        if (o->ndim >= 2) {
            /* C order: the last dimension is the row; F order: the first is the column. */
            h->dims = 2;
            if (o->order != 'F') {
                h->minor_n = o->shape[o->ndim - 1];
            } else {
                h->minor_n = o->shape[0];
                h->transpose = 1;
            }
            if (h->minor_n == 0)
                h->minor_n = 1;
            h->major_n = h->units / h->minor_n;
        }
    } else {
        h->unit = 1;
        h->units = max_size;
        h->kind = "bytes";
    }
    if (h->units == 0)
        h->units = 1;
    if (!h->dims || h->major_n <= 1) {
        h->dims = 1;
        h->minor_n = h->units;
        h->major_n = 1;
        h->transpose = 0;
    }
    uint64_t max_major = h->dims == 2 ? (h->transpose ? HEAT_COLS : HEAT_ROWS) : 1;
    uint64_t max_minor = h->dims == 2 ? (h->transpose ? HEAT_ROWS : HEAT_COLS) : HEAT_1D_BINS;
    h->major_bw = (h->major_n + max_major - 1) / max_major;
    h->minor_bw = (h->minor_n + max_minor - 1) / max_minor;
    h->major_bins = (uint32_t)((h->major_n + h->major_bw - 1) / h->major_bw);
    h->minor_bins = (uint32_t)((h->minor_n + h->minor_bw - 1) / h->minor_bw);
    h->diff = calloc((size_t)h->major_bins * (h->minor_bins + 1), sizeof(*h->diff));
    return h->diff ? 0 : nomem(r);
}

/* One changed range [off, off + len) of an object of the tag. */
static void heat_add(struct heat *h, uint64_t off, uint64_t len)
{
    if (!h->diff || len == 0)
        return;
    uint64_t u0 = off / h->unit, u1 = (off + len - 1) / h->unit;
    if (u0 >= h->units)
        return;
    if (u1 >= h->units)
        u1 = h->units - 1;
    uint64_t a0 = u0 / h->minor_n, m0 = u0 % h->minor_n;
    uint64_t a1 = u1 / h->minor_n, m1 = u1 % h->minor_n;
    uint32_t stride = h->minor_bins + 1;
    for (uint64_t b = a0 / h->major_bw; b <= a1 / h->major_bw; b++) {
        uint64_t lo = b * h->major_bw > a0 ? b * h->major_bw : a0;
        uint64_t hi = b * h->major_bw + h->major_bw - 1 < a1 ? b * h->major_bw + h->major_bw - 1
                                                             : a1;
        uint64_t cl = 0, ch = h->minor_n - 1;
        if (lo == hi) {
            if (lo == a0)
                cl = m0;
            if (hi == a1)
                ch = m1;
        }
        /* Several rows of one bin: the hull of what they touch, which is whole rows but for
         * a range that starts and ends in neighbouring rows of the same bin. */
        int64_t *row = h->diff + b * stride;
        row[cl / h->minor_bw]++;
        row[ch / h->minor_bw + 1]--;
    }
}

/* ---- NaN/Inf -------------------------------------------------------------------------- */

/* A float whose bytes are all in the range: elements.c decodes the old and new value. */
static int float_event_whole(const struct object *o, const unsigned char *new_,
                             const unsigned char *old, int *gone)
{
    double nv, ov = 0;
    mw_elem_decode_number(&o->fscalar, new_, &nv, NULL);
    if (old)
        mw_elem_decode_number(&o->fscalar, old, &ov, NULL);
    int new_nf = !isfinite(nv), old_nf = old && !isfinite(ov);
    if (old_nf && !new_nf)
        *gone = 1;
    if (!new_nf || old_nf)
        return NF_NONE;
    return isnan(nv) ? NF_NAN : NF_INF;
}

/* Looks at one element of a float object that a range [off, off + len) touches: elem_off is
 * the element's first byte. Returns an NF_* kind when a NaN or Inf appeared; sets *gone when
 * one certainly disappeared. A float only partly in the range cannot be decoded: what its
 * known exponent and mantissa bits say is worked out here (see DESIGN). */
static int float_event(const struct object *o, uint64_t elem_off, uint64_t off, uint64_t len,
                       const unsigned char *new_, const unsigned char *old, int *gone)
{
    int size = o->float_size;
    if (elem_off >= off && elem_off + (uint64_t)size <= off + len)
        return float_event_whole(o, new_ + (elem_off - off), old ? old + (elem_off - off) : NULL,
                                 gone);
    int mbits = size == 2 ? 10 : size == 4 ? 23 : 52;
    int ebits = size == 2 ? 5 : size == 4 ? 8 : 11;
    uint64_t exp_mask = ((UINT64_C(1) << ebits) - 1) << mbits;
    uint64_t mant_mask = (UINT64_C(1) << mbits) - 1;
    uint64_t known = 0, nv = 0, ov = 0;
    for (int b = 0; b < size; b++) {
        uint64_t at = elem_off + (uint64_t)b;
        if (at < off || at >= off + len)
            continue;
        int sig = o->big_endian ? size - 1 - b : b;   /* byte's significance */
        known |= UINT64_C(0xff) << (8 * sig);
        nv |= (uint64_t)new_[at - off] << (8 * sig);
        if (old)
            ov |= (uint64_t)old[at - off] << (8 * sig);
    }
    uint64_t ek = known & exp_mask;
    if (!ek)
        return NF_NONE;   /* the exponent did not change: finiteness did not either */
    int new_ones = (nv & ek) == ek;
    int old_ones = old && (ov & ek) == ek;
    if (old && !new_ones && old_ones && ek == exp_mask)
        *gone = 1;
    if (!new_ones)
        return NF_NONE;
    /* The unknown exponent bits are the same before and after: if every known one was
     * already set, the value's finiteness did not change. */
    if (old && old_ones)
        return NF_NONE;
    if (ek != exp_mask)
        return NF_POSSIBLE;
    uint64_t mk = known & mant_mask;
    if (nv & mk)
        return NF_NAN;
    return mk == mant_mask ? NF_INF : NF_NAN_OR_INF;
}

/* ---- locations ------------------------------------------------------------------------ */

static uint64_t hash_str(uint64_t h, const char *s)
{
    if (!s)
        return h * 1099511628211u + 1;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h * 1099511628211u;
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int loc_grow_hash(struct report *r)
{
    size_t cap = r->loc_hash_cap ? r->loc_hash_cap * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof(*h));
    if (!h)
        return nomem(r);
    for (size_t i = 0; i < r->nlocs; i++) {
        const struct location *l = &r->locs[i];
        uint64_t k = hash_str(hash_str(hash_str(14695981039346656037u, l->file), l->function),
                              l->native) ^ (uint64_t)(uint32_t)l->line;
        size_t j = (size_t)(k * 0x9e3779b97f4a7c15u) & (cap - 1);
        while (h[j])
            j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(r->loc_hash);
    r->loc_hash = h;
    r->loc_hash_cap = cap;
    return 0;
}

/* The index of (file, line, function, native), added when new; negative on error. */
static int64_t loc_intern(struct report *r, const char *file, int line, const char *function,
                          const char *native)
{
    if ((r->nlocs + 1) * 2 > r->loc_hash_cap && loc_grow_hash(r) < 0)
        return -1;
    uint64_t k = hash_str(hash_str(hash_str(14695981039346656037u, file), function), native) ^
                 (uint64_t)(uint32_t)line;
    size_t j = (size_t)(k * 0x9e3779b97f4a7c15u) & (r->loc_hash_cap - 1);
    while (r->loc_hash[j]) {
        struct location *l = &r->locs[r->loc_hash[j] - 1];
        if (l->line == line && str_eq(l->file, file) && str_eq(l->function, function) &&
            str_eq(l->native, native))
            return r->loc_hash[j] - 1;
        j = (j + 1) & (r->loc_hash_cap - 1);
    }
    if (r->nlocs == r->locs_cap) {
        size_t cap = r->locs_cap ? r->locs_cap * 2 : 256;
        struct location *n = realloc(r->locs, cap * sizeof(*n));
        if (!n)
            return nomem(r), -1;
        r->locs = n;
        r->locs_cap = cap;
    }
    struct location *l = &r->locs[r->nlocs];
    memset(l, 0, sizeof(*l));
    l->line = line;
    l->out_index = -1;
    if ((file && !(l->file = strdup(file))) || (function && !(l->function = strdup(function))) ||
        (native && !(l->native = strdup(native)))) {
        free(l->file);
        free(l->function);
        return nomem(r), -1;
    }
    r->loc_hash[j] = (uint32_t)r->nlocs + 1;
    return (int64_t)r->nlocs++;
}

static void loc_add_tag(struct location *l, uint32_t tag)
{
    for (int i = 0; i < l->ntags; i++)
        if (l->tags[i] == tag)
            return;
    if (l->ntags < WRITER_TAGS)
        l->tags[l->ntags++] = tag;
    else
        l->more_tags = 1;
}

/* ---- first read: run, objects, tags, quotas ------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const struct object *)a)->id, y = ((const struct object *)b)->id;
    return x < y ? -1 : x > y;
}

static struct object *find_object(struct report *r, int64_t id)
{
    size_t lo = 0, hi = r->nobjects;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->objects[mid].id < id)
            lo = mid + 1;
        else if (r->objects[mid].id > id)
            hi = mid;
        else
            return &r->objects[mid];
    }
    return NULL;
}

static int load_objects(struct report *r)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT id, tag, type_name, size, format, itemsize, shape, strides "
                           "FROM objects ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(r, "read the objects");
    size_t cap = 0;
    int rc;
    /* Tags by name while loading: a sorted copy would do too, but objects come in watch
     * order and most runs have few tags, so a small hash keeps this linear either way. */
    size_t tcap = 0, hcap = 0;
    uint32_t *th = NULL;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (r->nobjects == cap) {
            cap = cap ? cap * 2 : 64;
            struct object *n = realloc(r->objects, cap * sizeof(*n));
            if (!n)
                goto oom;
            r->objects = n;
        }
        struct object *o = &r->objects[r->nobjects];
        memset(o, 0, sizeof(*o));
        o->id = sqlite3_column_int64(s, 0);
        int64_t size = sqlite3_column_int64(s, 3);
        o->size = size > 0 ? (uint64_t)size : 0;
        o->type_name = dup_text(s, 2);
        o->format = dup_text(s, 4);
        o->itemsize = sqlite3_column_type(s, 5) == SQLITE_NULL ? 0 : sqlite3_column_int(s, 5);
        o->shape_text = dup_text(s, 6);
        object_geometry(o, (const char *)sqlite3_column_text(s, 7));
        object_float(o);
        r->nobjects++;

        const char *name = (const char *)sqlite3_column_text(s, 1);
        if (!name)
            name = "";
        if ((r->ntags + 1) * 2 > hcap) {
            size_t ncap = hcap ? hcap * 2 : 64;
            uint32_t *nh = calloc(ncap, sizeof(*nh));
            if (!nh)
                goto oom;
            for (size_t i = 0; i < r->ntags; i++) {
                size_t j = (size_t)hash_str(0, r->tags[i].name) & (ncap - 1);
                while (nh[j])
                    j = (j + 1) & (ncap - 1);
                nh[j] = (uint32_t)i + 1;
            }
            free(th);
            th = nh;
            hcap = ncap;
        }
        size_t j = (size_t)hash_str(0, name) & (hcap - 1);
        while (th[j] && strcmp(r->tags[th[j] - 1].name, name) != 0)
            j = (j + 1) & (hcap - 1);
        if (!th[j]) {
            if (r->ntags == tcap) {
                tcap = tcap ? tcap * 2 : 16;
                struct tag *n = realloc(r->tags, tcap * sizeof(*n));
                if (!n)
                    goto oom;
                r->tags = n;
            }
            struct tag *t = &r->tags[r->ntags];
            memset(t, 0, sizeof(*t));
            if (!(t->name = strdup(name)))
                goto oom;
            t->first_object = r->nobjects - 1;
            t->uniform = 1;
            t->float_checked = 1;
            th[j] = (uint32_t)++r->ntags;
        }
        struct tag *t = &r->tags[th[j] - 1];
        o->tag = th[j] - 1;
        t->objects++;
        if (!same_geometry(&r->objects[t->first_object], o))
            t->uniform = 0;
        if (!o->float_size)
            t->float_checked = 0;
    }
    free(th);
    if (rc != SQLITE_DONE) {
        sqlite3_finalize(s);
        return db_fail(r, "read the objects");
    }
    sqlite3_finalize(s);
    /* Ids come sorted from the query; sorting again costs nothing and makes the lookup's
     * precondition local. */
    if (r->nobjects > 1)   /* objects is NULL in a trace without objects */
        qsort(r->objects, r->nobjects, sizeof(*r->objects), cmp_id);
    /* qsort may have moved objects: first_object indices were taken in id order already,
     * which is the order qsort keeps, so they still hold. */
    return 0;
oom:
    free(th);
    sqlite3_finalize(s);
    return nomem(r);
}

static int load_counts(struct report *r)
{
    sqlite3_stmt *s;
    /* A covering scan of changes_by_object. */
    if (sqlite3_prepare_v2(r->db, "SELECT object_id, count(*) FROM changes GROUP BY object_id",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(r, "count the changes");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(s, 1);
        r->total_changes += n;
        struct object *o = find_object(r, sqlite3_column_int64(s, 0));
        if (o) {
            o->changes = n;
            r->tags[o->tag].changes += n;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return db_fail(r, "count the changes");
    /* The run's end, or the last change when the run never recorded one. */
    if (sqlite3_prepare_v2(r->db,
                           "SELECT max(coalesce((SELECT duration_ns FROM run WHERE id = 1), 0), "
                           "coalesce((SELECT time_ns FROM changes ORDER BY seq DESC LIMIT 1), 0), "
                           "coalesce((SELECT max(coalesce(unwatched_ns, watched_ns)) "
                           "FROM objects), 0))",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(r, "read the run");
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 0);
        r->tmax = v > 0 ? (uint64_t)v : 1;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(r->db,
                           "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'elements'), "
                           "(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'change_stats')",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        r->elements_table = sqlite3_column_int(s, 0) > 0;
        r->change_stats = sqlite3_column_int(s, 1) > 0;
    }
    sqlite3_finalize(s);
    return 0;
}

static const struct tag *sort_tags_base;

/* Most changes first; watch order among equals. */
static int cmp_tag_changes_desc(const void *a, const void *b)
{
    const struct tag *x = &sort_tags_base[*(const uint32_t *)a];
    const struct tag *y = &sort_tags_base[*(const uint32_t *)b];
    if (x->changes != y->changes)
        return x->changes > y->changes ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int plan(struct report *r)
{
    uint32_t *order = malloc((r->ntags ? r->ntags : 1) * sizeof(*order));
    if (!order)
        return nomem(r);
    for (size_t i = 0; i < r->ntags; i++)
        order[i] = (uint32_t)i;
    sort_tags_base = r->tags;
    qsort(order, r->ntags, sizeof(*order), cmp_tag_changes_desc);

    /* Lanes: the busiest tags, shown in watch order. */
    r->nlanes = r->ntags < MW_REPORT_MAX_LANES ? (uint32_t)r->ntags : MW_REPORT_MAX_LANES;
    r->other_lane = r->ntags > r->nlanes;
    r->lane_tags = malloc((r->nlanes ? r->nlanes : 1) * sizeof(*r->lane_tags));
    if (!r->lane_tags) {
        free(order);
        return nomem(r);
    }
    memcpy(r->lane_tags, order, r->nlanes * sizeof(*order));
    qsort(r->lane_tags, r->nlanes, sizeof(*r->lane_tags), cmp_u32);
    for (size_t i = 0; i < r->ntags; i++)
        r->tags[i].lane = -1;
    for (uint32_t l = 0; l < r->nlanes; l++)
        r->tags[r->lane_tags[l]].lane = (int)l;

    /* Marks: water-filling from the quietest tag up, so each tag gets all its changes or an
     * equal share of what is left. */
    uint64_t left = r->max_marks;
    for (size_t i = r->ntags; i-- > 0;) {
        struct tag *t = &r->tags[order[i]];
        uint64_t share = left / (i + 1);
        t->quota = t->changes < share ? t->changes : share;
        left -= t->quota;
    }
    free(order);

    size_t lanes = r->nlanes + (size_t)r->other_lane;
    r->density = calloc((lanes ? lanes : 1) * TIME_BINS, sizeof(*r->density));
    if (!r->density)
        return nomem(r);
    for (uint32_t l = 0; l < r->nlanes; l++) {
        struct tag *t = &r->tags[r->lane_tags[l]];
        uint64_t max_size = 0;
        for (size_t i = 0; i < r->nobjects; i++)
            if (r->objects[i].tag == r->lane_tags[l] && r->objects[i].size > max_size)
                max_size = r->objects[i].size;
        if (heat_init(r, t, max_size) < 0)
            return r->status;
    }
    return 0;
}

/* ---- second read: every range --------------------------------------------------------- */

struct current {
    int active;
    struct object *obj;
    struct tag *tag;
    int keep;
    struct mark m;
    /* NaN/Inf of this change as found in its bytes... */
    uint64_t nf_bytes, nf_possible;
    int gone;
    size_t nf_first;            /* its events start here in r->nf */
    /* ...and as the writer counted them (change_stats), which wins when present. */
    int has_stats;
    uint64_t st_nan, st_inf, st_gone, st_unknown;
    int64_t st_elements;
};

static int push_mark(struct report *r, const struct mark *m)
{
    if (r->nmarks == r->marks_cap) {
        size_t cap = r->marks_cap ? r->marks_cap * 2 : 1024;
        struct mark *n = realloc(r->marks, cap * sizeof(*n));
        if (!n)
            return nomem(r);
        r->marks = n;
        r->marks_cap = cap;
    }
    r->marks[r->nmarks++] = *m;
    return 0;
}

static int finish_change(struct report *r, struct current *c)
{
    if (!c->active)
        return 0;
    c->active = 0;
    struct tag *t = c->tag;
    if (c->m.nranges == 0)
        r->changes_without_ranges++;
    /* When the writer decoded every element its counts are exact; when it could not (an
     * old or new value unknown: a range that was not whole items), the bytes may still
     * tell, and the larger count wins. */
    if (c->has_stats && (c->st_unknown == 0 || c->st_nan + c->st_inf > c->nf_bytes)) {
        /* The byte scan still names the elements, but only where the writer saw some. */
        r->stats_used = 1;
        uint64_t n = c->st_nan + c->st_inf;
        if (n == 0) {
            r->nnf = c->nf_first;
            c->m.nonfinite = NF_NONE;
        } else if (r->nnf == c->nf_first && r->nnf < NONFINITE_LISTED) {
            struct nf_event *ev = &r->nf[r->nnf++];
            ev->seq = c->m.seq;
            ev->t = c->m.t;
            ev->element = UINT64_MAX;   /* not found in the bytes: unknown */
            ev->tag = c->m.tag;
            ev->loc = c->m.loc;
            ev->kind = c->st_nan ? NF_NAN : NF_INF;
        }
        if (n && (!c->m.nonfinite || c->m.nonfinite == NF_POSSIBLE))
            c->m.nonfinite = c->st_nan ? NF_NAN : NF_INF;
        c->nf_bytes = n;
        c->nf_possible = 0;
        c->gone = c->st_gone > 0;
    }
    r->nf_total += c->nf_bytes;
    r->nf_possible += c->nf_possible;
    if (t) {
        t->ranges += c->m.nranges;
        t->bytes += c->m.bytes;
        t->nonfinite += c->nf_bytes;
        t->nonfinite_possible += c->nf_possible;
        if (c->gone)
            t->nonfinite_gone++;
    }
    if (c->gone)
        r->nf_gone++;
    struct location *l = &r->locs[c->m.loc];
    l->bytes += c->m.bytes;
    int keep = c->keep;
    if (!keep && c->m.nonfinite && r->nonfinite_marks < NONFINITE_MARKS) {
        keep = 1;
        r->nonfinite_marks++;
    }
    if (keep) {
        if (t)
            t->marks++;
        return push_mark(r, &c->m);
    }
    return 0;
}

static int scan(struct report *r)
{
    sqlite3_stmt *s;
    /* change_stats came with typed elements; traces from before have no such table. */
    const char *sql =
        r->change_stats
            ? "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
              "c.native_symbol, r.offset, r.length, r.new, r.old, "
              "st.seq, st.elements, st.nan_appeared, st.inf_appeared, st.nan_gone + st.inf_gone, "
              "st.unknown "
              "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
              "LEFT JOIN change_stats AS st ON st.seq = c.seq "
              "ORDER BY c.seq, r.offset"
            : "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
              "c.native_symbol, r.offset, r.length, r.new, r.old, NULL, NULL, NULL, NULL, NULL, "
              "NULL "
              "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
              "ORDER BY c.seq, r.offset";
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_fail(r, "read the changes");
    struct current c = {0};
    uint64_t cur_seq = 0;
    int rc;
    /* Consecutive changes usually come from the same line: compare before hashing. */
    int64_t last_loc = -1;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        if (!c.active || seq != cur_seq) {
            if (finish_change(r, &c) < 0)
                break;
            cur_seq = seq;
            memset(&c, 0, sizeof(c));
            c.active = 1;
            int64_t tns = sqlite3_column_int64(s, 1);
            c.m.seq = seq;
            c.m.t = tns > 0 ? (uint64_t)tns : 0;
            c.obj = find_object(r, sqlite3_column_int64(s, 2));
            c.tag = c.obj ? &r->tags[c.obj->tag] : NULL;
            c.m.tag = c.obj ? (uint32_t)c.obj->tag : UINT32_MAX;
            c.nf_first = r->nnf;
            c.st_elements = -1;
            if (sqlite3_column_type(s, 11) != SQLITE_NULL) {
                c.has_stats = 1;
                c.st_elements = sqlite3_column_int64(s, 12);
                c.st_nan = (uint64_t)sqlite3_column_int64(s, 13);
                c.st_inf = (uint64_t)sqlite3_column_int64(s, 14);
                c.st_gone = (uint64_t)sqlite3_column_int64(s, 15);
                c.st_unknown = (uint64_t)sqlite3_column_int64(s, 16);
            }
            c.m.elements = c.st_elements;
            const char *file = (const char *)sqlite3_column_text(s, 3);
            int line = sqlite3_column_int(s, 4);
            const char *function = (const char *)sqlite3_column_text(s, 5);
            const char *native = (const char *)sqlite3_column_text(s, 6);
            int64_t li;
            if (last_loc >= 0 && r->locs[last_loc].line == line &&
                str_eq(r->locs[last_loc].file, file) &&
                str_eq(r->locs[last_loc].function, function) &&
                str_eq(r->locs[last_loc].native, native))
                li = last_loc;
            else if ((li = loc_intern(r, file, line, function, native)) < 0)
                break;
            last_loc = li;
            c.m.loc = (uint32_t)li;
            struct location *l = &r->locs[li];
            l->changes++;
            if (c.obj)
                loc_add_tag(l, c.m.tag);

            uint64_t bin = c.m.t >= r->tmax ? TIME_BINS - 1 : c.m.t * TIME_BINS / r->tmax;
            if (c.tag) {
                struct tag *t = c.tag;
                if (t->rank == 0 || seq < t->first_seq) {
                    t->first_seq = seq;
                    t->first_t = c.m.t;
                }
                if (seq >= t->last_seq) {
                    t->last_seq = seq;
                    t->last_t = c.m.t;
                }
                /* Evenly spaced: the rank-th change is kept when the running quota steps. */
                if (t->changes && t->rank < t->changes)
                    c.keep = (t->rank * t->quota) / t->changes !=
                             ((t->rank + 1) * t->quota) / t->changes;
                t->rank++;
                size_t lane = t->lane >= 0 ? (size_t)t->lane : r->nlanes;
                if (t->lane >= 0 || r->other_lane)
                    r->density[lane * TIME_BINS + bin]++;
            }
        }
        if (sqlite3_column_type(s, 7) == SQLITE_NULL)
            continue;   /* a change without ranges (LEFT JOIN) */
        int64_t off_s = sqlite3_column_int64(s, 7), len_s = sqlite3_column_int64(s, 8);
        uint64_t off = off_s > 0 ? (uint64_t)off_s : 0, len = len_s > 0 ? (uint64_t)len_s : 0;
        if (c.m.nranges == 0) {
            c.m.off = off;
            c.m.len = len;
        }
        c.m.nranges++;
        c.m.bytes += len;
        if (!c.tag)
            continue;
        if (c.tag->lane >= 0)
            heat_add(&c.tag->heat, off, len);

        int need_preview = c.m.nranges == 1;
        int need_float = c.obj->float_size != 0;
        if (!need_preview && !need_float)
            continue;
        /* Blobs are only fetched when something looks at them. */
        const unsigned char *nb = sqlite3_column_blob(s, 9);
        uint64_t nlen = (uint64_t)sqlite3_column_bytes(s, 9);
        const unsigned char *ob = sqlite3_column_blob(s, 10);
        uint64_t olen = (uint64_t)sqlite3_column_bytes(s, 10);
        if (!nb || nlen < len)
            continue;   /* damaged row: nothing to read safely */
        if (olen < len)
            ob = NULL;
        if (need_preview) {
            size_t n = len < PREVIEW ? (size_t)len : PREVIEW;
            memcpy(c.m.new_, nb, n);
            if (ob)
                memcpy(c.m.old, ob, n);
            c.m.preview_len = (uint8_t)n;
            c.m.has_old = ob != NULL;
        }
        if (need_float && len > 0) {
            uint64_t fs = (uint64_t)c.obj->float_size;
            for (uint64_t e = off / fs * fs; e < off + len; e += fs) {
                int gone = 0;
                int kind = float_event(c.obj, e, off, len, nb, ob, &gone);
                if (gone)
                    c.gone = 1;
                if (!kind)
                    continue;
                if (kind == NF_POSSIBLE)
                    c.nf_possible++;
                else
                    c.nf_bytes++;
                if (!c.m.nonfinite || (c.m.nonfinite == NF_POSSIBLE && kind != NF_POSSIBLE))
                    c.m.nonfinite = (uint8_t)kind;
                if (r->nnf < NONFINITE_LISTED) {
                    struct nf_event *ev = &r->nf[r->nnf++];
                    ev->seq = seq;
                    ev->t = c.m.t;
                    ev->element = e / fs;
                    ev->tag = c.m.tag;
                    ev->loc = c.m.loc;
                    ev->kind = (uint8_t)kind;
                }
            }
        }
    }
    if (r->status) {
        sqlite3_finalize(s);
        return r->status;
    }
    if (rc != SQLITE_DONE) {
        db_fail(r, "read the changes");
        sqlite3_finalize(s);
        return r->status;
    }
    sqlite3_finalize(s);
    return finish_change(r, &c);
}

/* ---- output --------------------------------------------------------------------------- */

static void write_kv_table(struct report *r, const char *sql, int object)
{
    FILE *f = r->out;
    sqlite3_stmt *s;
    putc(object ? '{' : '[', f);
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK) {
        putc(object ? '}' : ']', f);
        db_fail(r, "read the trace");
        return;
    }
    int first = 1;
    if (object) {
        /* key/value rows -> one object */
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(s, 0);
            if (!k)
                continue;
            jkey(f, &first, k);
            jvalue(f, s, 1);
        }
    }
    sqlite3_finalize(s);
    putc(object ? '}' : ']', f);
}

/* The run row with every column it has, so that columns added by later schemas show up. */
static void write_run(struct report *r)
{
    FILE *f = r->out;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, "SELECT * FROM run WHERE id = 1", -1, &s, NULL) != SQLITE_OK) {
        fputs("{}", f);
        db_fail(r, "read the run");
        return;
    }
    putc('{', f);
    if (sqlite3_step(s) == SQLITE_ROW) {
        int first = 1;
        for (int i = 0; i < sqlite3_column_count(s); i++) {
            jkey(f, &first, sqlite3_column_name(s, i));
            jvalue(f, s, i);
        }
    }
    putc('}', f);
    sqlite3_finalize(s);
}

static void write_u64s(FILE *f, const char *key, int *first, const struct report *r,
                       size_t field_off)
{
    jkey(f, first, key);
    putc('[', f);
    for (size_t i = 0; i < r->nmarks; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&r->marks[i] + field_off, sizeof(v));
        fprintf(f, i ? ",%" PRIu64 : "%" PRIu64, v);
    }
    putc(']', f);
}

static const struct location *sort_locs_base;

static int cmp_loc_changes(const void *a, const void *b)
{
    const struct location *x = &sort_locs_base[*(const uint32_t *)a];
    const struct location *y = &sort_locs_base[*(const uint32_t *)b];
    if (x->changes != y->changes)
        return x->changes > y->changes ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static int cmp_loc_bytes(const void *a, const void *b)
{
    const struct location *x = &sort_locs_base[*(const uint32_t *)a];
    const struct location *y = &sort_locs_base[*(const uint32_t *)b];
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static const char *nf_name(int kind)
{
    switch (kind) {
    case NF_NAN: return "NaN";
    case NF_INF: return "Inf";
    case NF_NAN_OR_INF: return "NaN or Inf";
    case NF_POSSIBLE: return "possibly NaN or Inf";
    default: return NULL;
    }
}

static int write_data(struct report *r, const struct mw_report_options *opt)
{
    FILE *f = r->out;
    int first = 1;
    putc('{', f);

    jkey(f, &first, "report");
    fprintf(f, "{\"format\":1,\"trace\":");
    jstr(f, opt->trace_name);
    fprintf(f, ",\"max_marks\":%u,\"max_lanes\":%u,\"time_bins\":%d,\"tmax_ns\":%" PRIu64
               ",\"elements_table\":%s}",
            r->max_marks, MW_REPORT_MAX_LANES, TIME_BINS, r->tmax,
            r->elements_table ? "true" : "false");
    jkey(f, &first, "meta");
    write_kv_table(r, "SELECT key, value FROM meta ORDER BY key", 1);
    jkey(f, &first, "run");
    write_run(r);

    /* Tags, in watch order. */
    jkey(f, &first, "tags");
    putc('[', f);
    for (size_t i = 0; i < r->ntags; i++) {
        const struct tag *t = &r->tags[i];
        const struct object *o = &r->objects[t->first_object];
        int k = 1;
        putc(i ? ',' : '{', f);
        if (i)
            putc('{', f);
        jkey(f, &k, "name");
        jstr(f, t->name);
        fprintf(f,
                ",\"objects\":%" PRIu64 ",\"changes\":%" PRIu64 ",\"ranges\":%" PRIu64
                ",\"bytes\":%" PRIu64 ",\"marks\":%" PRIu64 ",\"lane\":%d",
                t->objects, t->changes, t->ranges, t->bytes, t->marks, t->lane);
        if (t->changes)
            fprintf(f,
                    ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"first_t\":%" PRIu64
                    ",\"last_t\":%" PRIu64,
                    t->first_seq, t->last_seq, t->first_t, t->last_t);
        fputs(",\"type\":", f);
        jstr(f, o->type_name);
        fputs(",\"format\":", f);
        jstr(f, o->format);
        fprintf(f, ",\"itemsize\":%d,\"size\":%" PRIu64 ",\"shape\":", o->itemsize, o->size);
        if (o->ndim > 0) {
            putc('[', f);
            for (int d = 0; d < o->ndim; d++)
                fprintf(f, d ? ",%" PRIu64 : "%" PRIu64, o->shape[d]);
            putc(']', f);
        } else {
            fputs("null", f);
        }
        fprintf(f, ",\"order\":%s,\"uniform\":%s,\"float_checked\":%s",
                o->order == 'C' ? "\"C\"" : o->order == 'F' ? "\"F\"" : o->order == 'V' ? "\"V\"" : "null",
                t->uniform ? "true" : "false", t->float_checked ? "true" : "false");
        fprintf(f,
                ",\"nonfinite\":%" PRIu64 ",\"nonfinite_possible\":%" PRIu64
                ",\"nonfinite_gone\":%" PRIu64 "}",
                t->nonfinite, t->nonfinite_possible, t->nonfinite_gone);
    }
    putc(']', f);

    /* Lanes with their density bins. */
    jkey(f, &first, "lanes");
    putc('[', f);
    size_t lanes = r->nlanes + (size_t)r->other_lane;
    for (size_t l = 0; l < lanes; l++) {
        fputs(l ? ",{" : "{", f);
        if (l < r->nlanes) {
            fprintf(f, "\"tag\":%u", r->lane_tags[l]);
        } else {
            uint64_t n = 0, ch = 0;
            for (size_t i = 0; i < r->ntags; i++)
                if (r->tags[i].lane < 0) {
                    n++;
                    ch += r->tags[i].changes;
                }
            fprintf(f, "\"tag\":-1,\"other_tags\":%" PRIu64 ",\"changes\":%" PRIu64, n, ch);
        }
        fputs(",\"density\":[", f);
        for (int b = 0; b < TIME_BINS; b++)
            fprintf(f, b ? ",%u" : "%u", r->density[l * TIME_BINS + (size_t)b]);
        fputs("]}", f);
    }
    putc(']', f);

    /* Which locations the page refers to, numbered in order of first reference. */
    size_t nloc_out = 0;
    uint32_t *by_changes = malloc((r->nlocs ? r->nlocs : 1) * sizeof(uint32_t));
    uint32_t *by_bytes = malloc((r->nlocs ? r->nlocs : 1) * sizeof(uint32_t));
    if (!by_changes || !by_bytes) {
        free(by_changes);
        free(by_bytes);
        return nomem(r);
    }
    for (size_t i = 0; i < r->nlocs; i++)
        by_changes[i] = by_bytes[i] = (uint32_t)i;
    sort_locs_base = r->locs;
    qsort(by_changes, r->nlocs, sizeof(uint32_t), cmp_loc_changes);
    qsort(by_bytes, r->nlocs, sizeof(uint32_t), cmp_loc_bytes);
    size_t top = r->nlocs < TOP_WRITERS ? r->nlocs : TOP_WRITERS;
#define REF(i) (r->locs[i].out_index < 0 ? (r->locs[i].out_index = (int64_t)nloc_out++) : 0)
    for (size_t i = 0; i < top; i++) {
        REF(by_changes[i]);
        REF(by_bytes[i]);
    }
    for (size_t i = 0; i < r->nmarks; i++)
        REF(r->marks[i].loc);
    for (size_t i = 0; i < r->nnf; i++)
        REF(r->nf[i].loc);
#undef REF
    struct location **out_locs = calloc(nloc_out ? nloc_out : 1, sizeof(*out_locs));
    if (!out_locs) {
        free(by_changes);
        free(by_bytes);
        return nomem(r);
    }
    for (size_t i = 0; i < r->nlocs; i++)
        if (r->locs[i].out_index >= 0)
            out_locs[r->locs[i].out_index] = &r->locs[i];
    jkey(f, &first, "locations");
    putc('[', f);
    for (size_t i = 0; i < nloc_out; i++) {
        const struct location *l = out_locs[i];
        fputs(i ? ",[" : "[", f);
        jstr(f, l->file);
        fprintf(f, ",%d,", l->line);
        jstr(f, l->function);
        putc(',', f);
        jstr(f, l->native);
        putc(']', f);
    }
    putc(']', f);
    free(out_locs);

    /* Writers: the union of the top by changes and the top by bytes. */
    jkey(f, &first, "writers");
    putc('[', f);
    int wfirst = 1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < top; i++) {
            uint32_t li = pass ? by_bytes[i] : by_changes[i];
            struct location *l = &r->locs[li];
            if (pass) {
                /* already written in the first pass? */
                int seen = 0;
                for (size_t j = 0; j < top && !seen; j++)
                    seen = by_changes[j] == li;
                if (seen)
                    continue;
            }
            fputs(wfirst ? "{" : ",{", f);
            wfirst = 0;
            fprintf(f, "\"loc\":%" PRId64 ",\"changes\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"tags\":[",
                    l->out_index, l->changes, l->bytes);
            for (int k = 0; k < l->ntags; k++)
                fprintf(f, k ? ",%u" : "%u", l->tags[k]);
            fprintf(f, "],\"more_tags\":%s}", l->more_tags ? "true" : "false");
        }
    }
    putc(']', f);
    fprintf(f, ",\"writers_total\":%zu", r->nlocs);
    free(by_changes);
    free(by_bytes);

    /* Marks, column by column (compact, and quick to read into typed arrays). */
    jkey(f, &first, "marks");
    putc('{', f);
    int mk = 1;
    write_u64s(f, "seq", &mk, r, offsetof(struct mark, seq));
    write_u64s(f, "t", &mk, r, offsetof(struct mark, t));
    write_u64s(f, "bytes", &mk, r, offsetof(struct mark, bytes));
    write_u64s(f, "off", &mk, r, offsetof(struct mark, off));
    write_u64s(f, "len", &mk, r, offsetof(struct mark, len));
    jkey(f, &mk, "tag");
    putc('[', f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%d" : "%d", r->marks[i].tag == UINT32_MAX ? -1 : (int)r->marks[i].tag);
    fputs("],\"loc\":[", f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%" PRId64 : "%" PRId64, r->locs[r->marks[i].loc].out_index);
    fputs("],\"ranges\":[", f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%u" : "%u", r->marks[i].nranges);
    fputs("],\"elements\":[", f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%" PRId64 : "%" PRId64, r->marks[i].elements);
    fputs("],\"nf\":[", f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%u" : "%u", r->marks[i].nonfinite);
    fputs("],\"new\":[", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        if (i)
            putc(',', f);
        mw_json_hex(f, r->marks[i].new_, r->marks[i].preview_len);
    }
    fputs("],\"old\":[", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        if (i)
            putc(',', f);
        if (r->marks[i].has_old)
            mw_json_hex(f, r->marks[i].old, r->marks[i].preview_len);
        else
            fputs("null", f);
    }
    fputs("]}", f);

    /* Heatmaps of the lanes' tags. */
    jkey(f, &first, "heat");
    putc('[', f);
    for (uint32_t l = 0; l < r->nlanes; l++) {
        struct heat *h = &r->tags[r->lane_tags[l]].heat;
        fprintf(f,
                "%s{\"tag\":%u,\"kind\":\"%s\",\"unit\":%" PRIu64 ",\"units\":%" PRIu64
                ",\"dims\":%d,\"transpose\":%s,\"major_n\":%" PRIu64 ",\"minor_n\":%" PRIu64
                ",\"major_bw\":%" PRIu64 ",\"minor_bw\":%" PRIu64
                ",\"major_bins\":%u,\"minor_bins\":%u,\"cells\":[",
                l ? "," : "", r->lane_tags[l], h->kind, h->unit, h->units, h->dims,
                h->transpose ? "true" : "false", h->major_n, h->minor_n, h->major_bw,
                h->minor_bw, h->major_bins, h->minor_bins);
        uint32_t stride = h->minor_bins + 1;
        for (uint32_t b = 0; b < h->major_bins; b++) {
            int64_t acc = 0;
            for (uint32_t c = 0; c < h->minor_bins; c++) {
                acc += h->diff[(size_t)b * stride + c];
                fprintf(f, (b || c) ? ",%" PRId64 : "%" PRId64, acc);
            }
        }
        fputs("]}", f);
    }
    putc(']', f);

    /* NaN/Inf: "source" says whether the counts are the writer's (change_stats) or were
     * found in the bytes only (float_event), and the page says which. */
    jkey(f, &first, "nonfinite");
    fprintf(f,
            "{\"total\":%" PRIu64 ",\"possible\":%" PRIu64 ",\"gone\":%" PRIu64
            ",\"listed\":%zu,\"source\":\"%s\",\"events\":[",
            r->nf_total, r->nf_possible, r->nf_gone, r->nnf,
            r->stats_used ? "change_stats" : "bytes");
    for (size_t i = 0; i < r->nnf; i++) {
        const struct nf_event *e = &r->nf[i];
        fprintf(f,
                "%s{\"seq\":%" PRIu64 ",\"t\":%" PRIu64 ",\"tag\":%u,\"element\":%" PRId64
                ",\"loc\":%" PRId64 ",\"kind\":\"%s\"}",
                i ? "," : "", e->seq, e->t, e->tag,
                e->element == UINT64_MAX ? (int64_t)-1 : (int64_t)e->element,
                r->locs[e->loc].out_index, nf_name(e->kind));
    }
    fputs("]}", f);

    jkey(f, &first, "totals");
    fprintf(f,
            "{\"objects\":%zu,\"tags\":%zu,\"changes\":%" PRIu64 ",\"marks\":%zu"
            ",\"nonfinite_marks\":%zu,\"changes_without_ranges\":%" PRIu64 "}",
            r->nobjects, r->ntags, r->total_changes, r->nmarks, r->nonfinite_marks,
            r->changes_without_ranges);
    putc('}', f);
    return r->status;
}

static void report_free(struct report *r)
{
    for (size_t i = 0; i < r->nobjects; i++) {
        free(r->objects[i].format);
        free(r->objects[i].shape_text);
        free(r->objects[i].type_name);
    }
    free(r->objects);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i].name);
        free(r->tags[i].heat.diff);
    }
    free(r->tags);
    free(r->lane_tags);
    free(r->density);
    for (size_t i = 0; i < r->nlocs; i++) {
        free(r->locs[i].file);
        free(r->locs[i].function);
        free(r->locs[i].native);
    }
    free(r->locs);
    free(r->loc_hash);
    free(r->marks);
    free(r->nf);
}

int mw_report_write(sqlite3 *db, FILE *out, const struct mw_report_options *opt,
                    struct mw_report_summary *summary, char *err, size_t errlen)
{
    struct report r = {0};
    r.db = db;
    r.out = out;
    r.err = err;
    r.errlen = errlen;
    r.max_marks = opt && opt->max_marks ? opt->max_marks : MW_REPORT_DEFAULT_MARKS;
    if (errlen)
        err[0] = '\0';
    static const struct mw_report_options none = {0};
    if (!opt)
        opt = &none;

    /* One read transaction: the two reads see the same trace even if a writer is live. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(&r, "read the trace");
        return r.status;
    }
    if (!(r.nf = malloc(NONFINITE_LISTED * sizeof(*r.nf))))
        nomem(&r);
    if (!r.status && load_objects(&r) == 0 && load_counts(&r) == 0 && plan(&r) == 0 &&
        scan(&r) == 0) {
        /* The template is split at its data marker; the data goes in between. */
        fwrite(mw_report_template, 1, mw_report_template_data_at, out);
        write_data(&r, opt);
        fputs(mw_report_template + mw_report_template_data_at, out);
        if (!r.status && (fflush(out) != 0 || ferror(out)))
            fail(&r, errno ? -errno : -EIO, "cannot write the report: %s",
                 strerror(errno ? errno : EIO));
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (summary) {
        summary->objects = r.nobjects;
        summary->changes = r.total_changes;
        summary->marks = r.nmarks;
        summary->nonfinite = r.nf_total + r.nf_possible;
    }
    report_free(&r);
    return r.status;
}
