/* The report's second read (see report_scan.h). */
#include "report_scan.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mw_grow.h"
#include "report_heat.h"
#include "report_plan.h"
#include "value_read.h"

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

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Where a change was written from. */
struct loc_key {
    const char *file;
    int line;
    const char *function, *native;
};

static int loc_is(const struct location *l, const struct loc_key *k)
{
    return l->line == k->line && str_eq(l->file, k->file) && str_eq(l->function, k->function) &&
           str_eq(l->native, k->native);
}

static uint64_t loc_key_hash(const struct loc_key *k)
{
    return mw_report_hash_str(
               mw_report_hash_str(mw_report_hash_str(14695981039346656037u, k->file), k->function),
               k->native) ^
           (uint64_t)(uint32_t)k->line;
}

static uint64_t loc_hash(const void *locs, size_t i)
{
    const struct location *l = &((const struct location *)locs)[i];
    struct loc_key k = {l->file, l->line, l->function, l->native};
    return loc_key_hash(&k);
}

static int loc_index_is(const void *locs, size_t i, const void *key)
{
    return loc_is(&((const struct location *)locs)[i], key);
}

static const struct mw_report_index_ops loc_ops = {loc_hash, loc_index_is};

/* The index of the location k, added when new; negative on error. */
static int64_t loc_intern(struct report *r, const struct loc_key *k)
{
    if (mw_report_index_reserve(&r->loc_index, r->nlocs, 1024, &loc_ops, r->locs) < 0)
        return mw_report_nomem(r), -1;
    size_t j = mw_report_index_probe(&r->loc_index, loc_key_hash(k), &loc_ops, r->locs, k);
    if (r->loc_index.slot[j])
        return r->loc_index.slot[j] - 1;
    if (MW_GROW(r->locs, r->locs_cap, r->nlocs + 1) != 0)
        return mw_report_nomem(r), -1;
    struct location *l = &r->locs[r->nlocs];
    memset(l, 0, sizeof(*l));
    l->line = k->line;
    l->out_index = -1;
    if ((k->file && !(l->file = strdup(k->file))) ||
        (k->function && !(l->function = strdup(k->function))) ||
        (k->native && !(l->native = strdup(k->native)))) {
        free(l->file);
        free(l->function);
        return mw_report_nomem(r), -1;
    }
    r->loc_index.slot[j] = (uint32_t)r->nlocs + 1;
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

/* ---- second read: every range --------------------------------------------------------- */

/* The change being read: rows of one seq come together. */
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
    /* its bytes decoded from chunks (1), none there (-1), not yet (0) */
    int decoded;
    struct mw_value_change change;
};

/* Columns of the scan's rows (see scan_sql). */
enum { COL_SEQ, COL_TIME, COL_OBJECT, COL_FILE, COL_LINE, COL_FUNCTION, COL_NATIVE, COL_OFFSET,
       COL_LENGTH, COL_NEW, COL_OLD, COL_ST_SEQ, COL_ST_ELEMENTS, COL_ST_NAN, COL_ST_INF,
       COL_ST_GONE, COL_ST_UNKNOWN, COL_KEPT, COL_PID };

/* Lists a NaN/Inf event of the change (element UINT64_MAX: unknown), while there is room. */
static void add_event(struct report *r, const struct mark *m, uint64_t element, int kind)
{
    if (r->nnf >= NONFINITE_LISTED)
        return;
    struct nf_event *ev = &r->nf[r->nnf++];
    ev->seq = m->seq;
    ev->t = m->t;
    ev->element = element;
    ev->tag = m->tag;
    ev->loc = m->loc;
    ev->kind = (uint8_t)kind;
}

/* When the writer decoded every element its counts are exact; when it could not (an old or
 * new value unknown: a range that was not whole items), the bytes may still tell, and the
 * larger count wins. */
static void apply_stats(struct report *r, struct current *c)
{
    if (!c->has_stats || (c->st_unknown != 0 && c->st_nan + c->st_inf <= c->nf_bytes))
        return;
    /* The byte scan still names the elements, but only where the writer saw some. */
    r->stats_used = 1;
    uint64_t n = c->st_nan + c->st_inf;
    if (n == 0) {
        r->nnf = c->nf_first;
        c->m.nonfinite = NF_NONE;
    } else if (r->nnf == c->nf_first) {
        add_event(r, &c->m, UINT64_MAX, c->st_nan ? NF_NAN : NF_INF);   /* not in the bytes */
    }
    if (n && (!c->m.nonfinite || c->m.nonfinite == NF_POSSIBLE))
        c->m.nonfinite = c->st_nan ? NF_NAN : NF_INF;
    c->nf_bytes = n;
    c->nf_possible = 0;
    c->gone = c->st_gone > 0;
}

static int finish_change(struct report *r, struct current *c)
{
    if (!c->active)
        return 0;
    c->active = 0;
    struct tag *t = c->tag;
    if (c->m.nranges == 0)
        r->changes_without_ranges++;
    apply_stats(r, c);
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
    if (!keep)
        return 0;
    if (t)
        t->marks++;
    if (MW_GROW(r->marks, r->marks_cap, r->nmarks + 1) != 0)
        return mw_report_nomem(r);
    r->marks[r->nmarks++] = c->m;
    return 0;
}

/* Where the change was written from, interned. Consecutive changes usually come from the
 * same line: compare with the last one before hashing. */
static int change_location(struct report *r, struct current *c, sqlite3_stmt *s,
                           int64_t *last_loc)
{
    struct loc_key k = {(const char *)sqlite3_column_text(s, COL_FILE),
                        sqlite3_column_int(s, COL_LINE),
                        (const char *)sqlite3_column_text(s, COL_FUNCTION),
                        (const char *)sqlite3_column_text(s, COL_NATIVE)};
    int64_t li = *last_loc;
    if (li < 0 || !loc_is(&r->locs[li], &k))
        li = loc_intern(r, &k);
    if (li < 0)
        return -1;
    *last_loc = li;
    c->m.loc = (uint32_t)li;
    struct location *l = &r->locs[li];
    l->changes++;
    if (c->obj)
        loc_add_tag(l, c->m.tag);
    return 0;
}

/* The change's tag: its first and last change, whether this one is sampled as a mark, and
 * its lane's density bin. */
static void change_tag(struct report *r, struct current *c)
{
    struct tag *t = c->tag;
    uint64_t seq = c->m.seq;
    uint64_t bin = c->m.t >= r->tmax ? TIME_BINS - 1 : c->m.t * TIME_BINS / r->tmax;
    if (t->rank == 0 || seq < t->first_seq) {
        t->first_seq = seq;
        t->first_t = c->m.t;
    }
    if (seq >= t->last_seq) {
        t->last_seq = seq;
        t->last_t = c->m.t;
    }
    /* Evenly spaced: the rank-th change is kept when the running quota steps. */
    if (t->changes && t->rank < t->changes)
        c->keep = (t->rank * t->quota) / t->changes != ((t->rank + 1) * t->quota) / t->changes;
    t->rank++;
    size_t lane = t->lane >= 0 ? (size_t)t->lane : r->nlanes;
    if (t->lane >= 0 || r->other_lane)
        r->density[lane * TIME_BINS + bin]++;
}

/* The first row of a change: everything but its ranges. */
static int begin_change(struct report *r, struct current *c, sqlite3_stmt *s,
                        int64_t *last_loc)
{
    memset(c, 0, sizeof(*c));
    c->active = 1;
    int64_t tns = sqlite3_column_int64(s, COL_TIME);
    c->m.seq = (uint64_t)sqlite3_column_int64(s, COL_SEQ);
    c->m.pid = sqlite3_column_int64(s, COL_PID);   /* 0: unknown */
    c->m.t = tns > 0 ? (uint64_t)tns : 0;
    c->obj = mw_report_find_object(r, sqlite3_column_int64(s, COL_OBJECT));
    c->tag = c->obj ? &r->tags[c->obj->tag] : NULL;
    c->m.tag = c->obj ? (uint32_t)c->obj->tag : UINT32_MAX;
    c->nf_first = r->nnf;
    c->st_elements = -1;
    if (sqlite3_column_type(s, COL_ST_SEQ) != SQLITE_NULL) {
        c->has_stats = 1;
        c->st_elements = sqlite3_column_int64(s, COL_ST_ELEMENTS);
        c->st_nan = (uint64_t)sqlite3_column_int64(s, COL_ST_NAN);
        c->st_inf = (uint64_t)sqlite3_column_int64(s, COL_ST_INF);
        c->st_gone = (uint64_t)sqlite3_column_int64(s, COL_ST_GONE);
        c->st_unknown = (uint64_t)sqlite3_column_int64(s, COL_ST_UNKNOWN);
    }
    c->m.elements = c->st_elements;
    if (change_location(r, c, s, last_loc) < 0)
        return -1;
    if (c->tag)
        change_tag(r, c);
    return 0;
}

/* The floats of a float object that the range [off, off + len) touches. */
static void range_floats(struct report *r, struct current *c, uint64_t off, uint64_t len,
                         const unsigned char *nb, const unsigned char *ob)
{
    uint64_t fs = (uint64_t)c->obj->float_size;
    for (uint64_t e = off / fs * fs; e < off + len; e += fs) {
        int gone = 0;
        int kind = float_event(c->obj, e, off, len, nb, ob, &gone);
        if (gone)
            c->gone = 1;
        if (!kind)
            continue;
        if (kind == NF_POSSIBLE)
            c->nf_possible++;
        else
            c->nf_bytes++;
        if (!c->m.nonfinite || (c->m.nonfinite == NF_POSSIBLE && kind != NF_POSSIBLE))
            c->m.nonfinite = (uint8_t)kind;
        add_event(r, &c->m, e / fs, kind);
    }
}

/* The bytes of range [off, off + len) of the current change, when they are in chunks
 * (version 2): decoded, once per change, through the value reader. 0 and *nb (NULL: not
 * known), *ob (NULL: unknown); negative on error. */
static int chunk_bytes(struct report *r, struct current *c, uint64_t off,
                       const unsigned char **nb, const unsigned char **ob)
{
    *nb = *ob = NULL;
    if (!r->values) {
        int rc = mw_value_reader_create(r->db, 2, &r->values);
        if (rc)
            return mw_report_fail(r, rc, "cannot read the trace's values");
    }
    if (!c->decoded) {
        int rc = mw_value_reader_change(r->values, c->m.seq, &c->change);
        if (rc < 0)
            return mw_report_fail(r, rc, "%s", mw_value_reader_errmsg(r->values));
        c->decoded = rc == 1 ? 1 : -1;
    }
    for (size_t i = 0; c->decoded == 1 && i < c->change.n; i++)
        if (c->change.ranges[i].offset == off) {
            *nb = c->change.ranges[i].new_;
            *ob = c->change.ranges[i].old;
        }
    return 0;
}

/* One changed range of the current change (the row's range columns). */
static void add_range(struct report *r, struct current *c, sqlite3_stmt *s)
{
    int64_t off_s = sqlite3_column_int64(s, COL_OFFSET), len_s = sqlite3_column_int64(s, COL_LENGTH);
    uint64_t off = off_s > 0 ? (uint64_t)off_s : 0, len = len_s > 0 ? (uint64_t)len_s : 0;
    if (c->m.nranges == 0) {
        c->m.off = off;
        c->m.len = len;
    }
    c->m.nranges++;
    c->m.bytes += len;
    if (!c->tag)
        return;
    if (c->tag->lane >= 0)
        mw_report_heat_add(&c->tag->heat, off, len);

    int kept = r->values_v2 && sqlite3_column_type(s, COL_KEPT) != SQLITE_NULL
                   ? sqlite3_column_int(s, COL_KEPT) : MW_KEPT_ROWS;
    if (kept == MW_KEPT_NONE || kept == MW_KEPT_DROPPED) {
        c->m.not_kept = kept == MW_KEPT_NONE ? 1 : 2;   /* change_stats tells the rest */
        return;
    }
    int need_preview = c->m.nranges == 1;
    /* With the writer's counts (change_stats), chunks need not be decoded for NaN/Inf. */
    int need_float = c->obj->float_size != 0 && !(kept == MW_KEPT_CHUNKS && c->has_stats);
    if (!need_preview && !need_float)
        return;
    /* Blobs are only fetched when something looks at them. */
    const unsigned char *nb = sqlite3_column_blob(s, COL_NEW);
    uint64_t nlen = (uint64_t)sqlite3_column_bytes(s, COL_NEW);
    const unsigned char *ob = sqlite3_column_blob(s, COL_OLD);
    uint64_t olen = (uint64_t)sqlite3_column_bytes(s, COL_OLD);
    if (kept == MW_KEPT_CHUNKS) {
        if (chunk_bytes(r, c, off, &nb, &ob) < 0)
            return;
        nlen = olen = len;
        if (!nb) {
            c->m.not_kept = 2;   /* its chunks are gone: dropped while the run went on */
            return;
        }
    }
    if (!nb || nlen < len)
        return;   /* damaged row: nothing to read safely */
    if (!ob || olen < len)
        ob = NULL;
    if (need_preview) {
        size_t n = len < PREVIEW ? (size_t)len : PREVIEW;
        memcpy(c->m.new_, nb, n);
        if (ob)
            memcpy(c->m.old, ob, n);
        c->m.preview_len = (uint8_t)n;
        c->m.has_old = ob != NULL;
    }
    if (need_float && len > 0)
        range_floats(r, c, off, len, nb, ob);
}

/* Every range with its change, and the change's counts from change_stats, which came with
 * typed elements: traces from before have no such table. Version 2 keeps a change's only
 * range in its own row, and says where its bytes are (kept). */
static const char *scan_sql(const struct report *r)
{
    /* Changes name their process in traces since processes came (changes.pid). */
    if (r->values_v2)
        return r->has_pid
               ? "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
                 "c.native_symbol, coalesce(r.offset, c.offset), coalesce(r.length, c.length), "
                 "CASE WHEN r.seq IS NULL THEN c.new ELSE r.new END, "
                 "CASE WHEN r.seq IS NULL THEN c.old ELSE r.old END, "
                 "st.seq, st.elements, st.nan_appeared, st.inf_appeared, "
                 "st.nan_gone + st.inf_gone, st.unknown, c.kept, c.pid "
                 "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
                 "LEFT JOIN change_stats AS st ON st.seq = c.seq "
                 "ORDER BY c.seq, r.offset"
               : "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
                 "c.native_symbol, coalesce(r.offset, c.offset), coalesce(r.length, c.length), "
                 "CASE WHEN r.seq IS NULL THEN c.new ELSE r.new END, "
                 "CASE WHEN r.seq IS NULL THEN c.old ELSE r.old END, "
                 "st.seq, st.elements, st.nan_appeared, st.inf_appeared, "
                 "st.nan_gone + st.inf_gone, st.unknown, c.kept, NULL "
                 "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
                 "LEFT JOIN change_stats AS st ON st.seq = c.seq "
                 "ORDER BY c.seq, r.offset";
    return r->change_stats
               ? "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
                 "c.native_symbol, r.offset, r.length, r.new, r.old, "
                 "st.seq, st.elements, st.nan_appeared, st.inf_appeared, "
                 "st.nan_gone + st.inf_gone, st.unknown, NULL, NULL "
                 "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
                 "LEFT JOIN change_stats AS st ON st.seq = c.seq "
                 "ORDER BY c.seq, r.offset"
               : "SELECT c.seq, c.time_ns, c.object_id, c.file, c.line, c.function, "
                 "c.native_symbol, r.offset, r.length, r.new, r.old, NULL, NULL, NULL, NULL, "
                 "NULL, NULL, NULL, NULL "
                 "FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq "
                 "ORDER BY c.seq, r.offset";
}

int mw_report_scan(struct report *r)
{
    sqlite3_stmt *s = mw_report_prepare(r, scan_sql(r), "read the changes");
    if (!s)
        return r->status;
    struct current c = {0};
    int64_t last_loc = -1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, COL_SEQ);
        if ((!c.active || seq != c.m.seq) &&
            (finish_change(r, &c) < 0 || begin_change(r, &c, s, &last_loc) < 0))
            break;
        if (sqlite3_column_type(s, COL_OFFSET) != SQLITE_NULL)   /* NULL: no ranges (LEFT JOIN) */
            add_range(r, &c, s);
    }
    if (!r->status && rc != SQLITE_DONE)
        mw_report_db_fail(r, "read the changes");
    sqlite3_finalize(s);
    return r->status ? r->status : finish_change(r, &c);
}
