/* memwatch diff, streamed (see diff_stream.h). */
#include "diff_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "big_alloc.h"
#include "cli.h"
#include "diff_elements.h"
#include "diff_view.h"
#include "elements.h"
#include "mw_grow.h"
#include "show.h"
#include "value_read.h"

struct span {
    uint64_t lo, hi;
};

/* One block being printed: the change's ranges (or the net view's runs) and where the
 * bytes around them come from. */
struct block {
    const struct mw_value_range *ranges;   /* history: the change's */
    size_t n, hint;
    const unsigned char *state;            /* the object's value after it */
    const uint64_t *known;
    uint64_t size;
    /* net view: the value before, and which of its bytes are known */
    const unsigned char *before;
    const uint64_t *before_known;
    struct span *spans;                    /* the bytes that can differ (written_spans) */
    size_t nspans;
};

static int bit(const uint64_t *k, uint64_t b)
{
    return (int)(k[b / 64] >> (b % 64) & 1);
}

/* A byte of a change: in one of its ranges, its old and new; elsewhere the value's. */
static void describe_change(void *ctx, uint64_t b, struct mw_diff_byte *out)
{
    struct block *x = ctx;
    memset(out, 0, sizeof *out);
    while (x->hint > 0 && x->ranges[x->hint].offset > b)
        x->hint--;
    while (x->hint + 1 < x->n && x->ranges[x->hint].offset + x->ranges[x->hint].length <= b)
        x->hint++;
    const struct mw_value_range *g = x->n ? &x->ranges[x->hint] : NULL;
    if (g && b >= g->offset && b < g->offset + g->length) {
        out->before_known = g->old != NULL;
        out->after_known = g->new_ != NULL;
        out->before = g->old ? g->old[b - g->offset] : 0;
        out->after = g->new_ ? g->new_[b - g->offset] : 0;
        out->changed = !out->before_known || !out->after_known || out->before != out->after;
        return;
    }
    if (b < x->size && bit(x->known, b)) {
        out->before_known = out->after_known = 1;
        out->before = out->after = x->state[b];
    }
}

/* A byte of the net view: the value before and after. */
static void describe_net(void *ctx, uint64_t b, struct mw_diff_byte *out)
{
    struct block *x = ctx;
    memset(out, 0, sizeof *out);
    if (b >= x->size)
        return;
    out->before_known = bit(x->before_known, b);
    out->after_known = bit(x->known, b);
    out->before = x->before[b];
    out->after = x->state[b];
    out->changed = out->before_known && out->after_known && out->before != out->after;
}

/* ---- elements, printed as they are decoded ---------------------------------------------- */

struct elem_pass {
    const char *tag;
    int color, print;
    uint64_t n, nan, inf;
    int failed;
};

static int elem_cb(const struct mw_elem_change *c, void *ctx)
{
    struct elem_pass *p = ctx;
    unsigned flags = c->new_ ? c->flags : 0;
    if (!c->old)
        flags &= MW_ELEM_F_NONFINITE_APPEARED;
    p->n++;
    p->nan += (flags & MW_ELEM_F_NAN_APPEARED) != 0;
    p->inf += (flags & MW_ELEM_F_INF_APPEARED) != 0;
    if (!p->print)
        return 0;
    char *line;
    int cut = 0;
    if (mw_diff_format_element(&line, p->tag, c, c->old, c->new_, flags, p->color, &cut) < 0) {
        p->failed = 1;
        return 1;
    }
    puts(line);
    free(line);
    return 0;
}

/* The elements of ranges (old and new bytes each; elements they cover in part get their
 * other bytes from old_value/new_value): a counting pass for the heading (print_heading,
 * with "N elements" or, net, "N elements differ"), then the lines. 0, -1 (out of memory)
 * or -2 (not the object's elements: shown as bytes instead). */
static int print_elements(const struct mw_elem_layout *l, const struct mw_rec_range *r, size_t n,
                          const unsigned char *old_value, const unsigned char *new_value,
                          uint64_t size, const char *tag, int color, int net,
                          void (*print_heading)(void *ctx, const char *what), void *hctx)
{
    struct elem_pass p = {.tag = tag, .color = color};
    int rc = mw_elem_diff(l, r, n, old_value, new_value, (size_t)size, elem_cb, &p);
    if (rc)
        return rc == -ENOMEM ? -1 : -2;
    char what[96];
    snprintf(what, sizeof what, "%" PRIu64 " element%s%s", p.n, p.n == 1 ? "" : "s",
             !net ? "" : p.n == 1 ? " differs" : " differ");
    print_heading(hctx, what);
    mw_diff_print_nonfinite(p.nan, p.inf, color);
    p.print = 1;
    p.n = p.nan = p.inf = 0;
    rc = mw_elem_diff(l, r, n, old_value, new_value, (size_t)size, elem_cb, &p);
    return p.failed || rc == -ENOMEM ? -1 : 0;
}

/* ---- the history, change by change ---------------------------------------------------------- */

struct heading_ctx {
    struct mw_diff_heading *hd;
    int color;
};

static void history_heading(void *ctx, const char *what)
{
    struct heading_ctx *h = ctx;
    h->hd->what = what;
    mw_diff_print_heading(h->hd, h->color);
}

struct stream {
    mw_trace_reader *r;
    mw_value_reader *v;
    const char *tag;
    char *shown_tag;              /* the tag as a terminal may show it (show.h) */
    const struct mw_diff_options *o;
    char object[48];              /* " (object N)" when the tag had several objects */
    int blocks;
};

/* A change whose bytes the trace did not keep: its heading says so. */
static void print_not_kept(struct stream *s, struct mw_diff_heading *hd, const struct mw_value_change *c)
{
    struct mw_trace_change_summary sum;
    char what[160];
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->n; i++)
        bytes += c->ranges[i].length;
    if (mw_trace_reader_change_summary(s->r, c->seq, &sum) == 0 && sum.has_stats)
        snprintf(what, sizeof what, "%" PRIu64 " element%s, values %s", sum.elements,
                 sum.elements == 1 ? "" : "s",
                 c->kept == MW_KEPT_DROPPED ? "dropped" : "not kept");
    else
        snprintf(what, sizeof what, "%zu range%s, %" PRIu64 " bytes, values %s", c->n,
                 c->n == 1 ? "" : "s", bytes,
                 c->kept == MW_KEPT_DROPPED ? "dropped" : "not kept");
    hd->what = what;
    mw_diff_print_heading(hd, s->o->color);
    if (sum.has_stats && (sum.nan_appeared || sum.inf_appeared))
        mw_diff_print_nonfinite(sum.nan_appeared, sum.inf_appeared, s->o->color);
}

/* One change: its elements, or a hexdump of its rows with context. */
static int print_change(struct stream *s, struct mw_diff_heading *hd,
                        const struct mw_value_change *c)
{
    struct block x = {.ranges = c->ranges, .n = c->n};
    int all;
    if (mw_value_reader_state(s->v, c->object_id, &x.state, &x.known, &x.size, &all) != 1)
        return -1;
    for (size_t i = 0; i < c->n; i++)
        if (!c->ranges[i].new_) {
            print_not_kept(s, hd, c);
            return 0;
        }
    const struct mw_elem_layout *l = NULL;
    int typed = 0;
    if (!s->o->bytes && mw_trace_reader_layout(s->r, c->object_id, &l, &typed) < 0)
        return -1;
    if (typed) {
        struct mw_rec_range *rr = calloc(c->n ? c->n : 1, sizeof *rr);
        if (!rr)
            return -1;
        for (size_t i = 0; i < c->n; i++)
            rr[i] = (struct mw_rec_range){c->ranges[i].offset, c->ranges[i].length,
                                          c->ranges[i].old, c->ranges[i].new_};
        /* Bytes outside the ranges did not change: the value after is also the one before. */
        struct heading_ctx h = {hd, s->o->color};
        int rc = print_elements(l, rr, c->n, x.state, x.state, x.size, s->tag, s->o->color, 0,
                                history_heading, &h);
        free(rr);
        if (rc != -2)
            return rc;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->n; i++)
        bytes += c->ranges[i].length;
    char what[96];
    snprintf(what, sizeof what, "%zu range%s, %" PRIu64 " byte%s", c->n, c->n == 1 ? "" : "s",
             bytes, bytes == 1 ? "" : "s");
    hd->what = what;
    mw_diff_print_heading(hd, s->o->color);
    struct mw_diff_view view = {.size = x.size};
    for (size_t i = 0; i < c->n; i++)
        if (c->ranges[i].length)
            mw_diff_view_add_rows(&view, c->ranges[i].offset / MW_DIFF_ROW,
                                  (c->ranges[i].offset + c->ranges[i].length - 1) / MW_DIFF_ROW,
                                  s->o->ctx);
    mw_diff_print_rows(&view, describe_change, &x, s->o->color);
    free(view.rows);
    return 0;
}

/* The tag's changes in order (up to until), their places and writers. */
static sqlite3_stmt *tag_changes(mw_trace_reader *r, const char *tag, uint64_t until)
{
    sqlite3_stmt *q;
    /* Version 1 traces have no processes. */
    if (sqlite3_prepare_v2(mw_trace_reader_db(r),
                           mw_trace_reader_has_pid(r)
                               ? "SELECT seq, object_id, time_ns, file, line, function, native_symbol,"
                                 " thread_name, thread_id, pid FROM changes"
                                 " WHERE object_id IN (SELECT id FROM objects WHERE tag = ?1)"
                                 " AND seq <= ?2 ORDER BY seq"
                               : "SELECT seq, object_id, time_ns, file, line, function, native_symbol,"
                                 " thread_name, thread_id, NULL FROM changes"
                                 " WHERE object_id IN (SELECT id FROM objects WHERE tag = ?1)"
                                 " AND seq <= ?2 ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(q, 1, tag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, until > INT64_MAX ? INT64_MAX : (int64_t)until);
    return q;
}

static struct mw_diff_heading heading_of(sqlite3_stmt *q, const struct stream *s)
{
    return (struct mw_diff_heading){
        .seq = (uint64_t)sqlite3_column_int64(q, 0),
        .time_ns = (uint64_t)sqlite3_column_int64(q, 2),
        .tag = s->tag,
        .object = s->object,
        .file = (const char *)sqlite3_column_text(q, 3),
        .line = sqlite3_column_int(q, 4),
        .function = (const char *)sqlite3_column_text(q, 5),
        .native_symbol = (const char *)sqlite3_column_text(q, 6),
        .thread_name = (const char *)sqlite3_column_text(q, 7),
        .thread_id = sqlite3_column_int64(q, 8),
        .pid = sqlite3_column_int64(q, 9),
    };
}

/* How many objects of the tag changed: headings name the object when more than one. */
static int64_t changed_objects(mw_trace_reader *r, const char *tag)
{
    sqlite3_stmt *q;
    int64_t n = -1;
    char sql[160];
    sqlite3 *db = mw_trace_reader_db(r);
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT object_id) FROM %s WHERE object_id IN"
             " (SELECT id FROM objects WHERE tag = ?)", mw_trace_change_table(db));
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, tag, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

static int history(struct stream *s)
{
    int64_t nobj = changed_objects(s->r, s->tag);
    sqlite3_stmt *q = tag_changes(s->r, s->tag, UINT64_MAX);
    if (!q || nobj < 0) {
        sqlite3_finalize(q);
        mw_cli_error("cannot read %s: %s", mw_show_name(s->tag), sqlite3_errmsg(mw_trace_reader_db(s->r)));
        return MW_EXIT_FAILURE;
    }
    int rc, status = MW_EXIT_OK, rows = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(q, 0);
        rows++;
        struct mw_value_change c;
        int got = mw_value_reader_change_with_state(s->v, seq, &c);
        if (got < 0) {
            mw_cli_error("%s", mw_value_reader_errmsg(s->v));
            status = MW_EXIT_FAILURE;
            break;
        }
        const unsigned char *val;
        const uint64_t *known;
        uint64_t size;
        int all = 0;
        if (got == 1)
            mw_value_reader_state(s->v, c.object_id, &val, &known, &size, &all);
        if (s->blocks == 0 && !all) {
            status = MW_DIFF_STREAM_NOT_HERE;   /* not every byte known: the loaded way */
            break;
        }
        if (got != 1 || c.n == 0)
            continue;
        if (nobj > 1)
            snprintf(s->object, sizeof s->object, " (object %" PRIu64 ")", c.object_id);
        struct mw_diff_heading hd = heading_of(q, s);
        if (s->blocks++)
            putchar('\n');
        if (print_change(s, &hd, &c) < 0) {
            mw_cli_error("%s", "out of memory");
            status = MW_EXIT_FAILURE;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        mw_cli_error("cannot read %s: %s", mw_show_name(s->tag), sqlite3_errmsg(mw_trace_reader_db(s->r)));
        status = MW_EXIT_FAILURE;
    }
    sqlite3_finalize(q);
    /* No change at all: the loaded way says so. */
    return rows == 0 && status == MW_EXIT_OK ? MW_DIFF_STREAM_NOT_HERE : status;
}

/* ---- the net difference between two points ------------------------------------------------- */

struct net_object {
    uint64_t id, changes, first, last;
};

/* The objects of the tag that changed in (from, to], in the order they first did. */
static int net_objects(struct stream *s, struct net_object **out, size_t *n)
{
    sqlite3_stmt *q;
    *out = NULL;
    *n = 0;
    sqlite3 *db = mw_trace_reader_db(s->r);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT object_id, count(*), min(seq), max(seq) FROM %s"
             " WHERE object_id IN (SELECT id FROM objects WHERE tag = ?1)"
             " AND seq > ?2 AND seq <= ?3 GROUP BY object_id ORDER BY min(seq)",
             mw_trace_change_table(db));
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, s->tag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->o->from > INT64_MAX ? INT64_MAX : (int64_t)s->o->from);
    sqlite3_bind_int64(q, 3, s->o->to > INT64_MAX ? INT64_MAX : (int64_t)s->o->to);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (MW_GROW(*out, cap, *n + 1) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        (*out)[(*n)++] = (struct net_object){(uint64_t)sqlite3_column_int64(q, 0),
                                             (uint64_t)sqlite3_column_int64(q, 1),
                                             (uint64_t)sqlite3_column_int64(q, 2),
                                             (uint64_t)sqlite3_column_int64(q, 3)};
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The last change of object id at or before seq; 0 when none. */
static uint64_t last_change_by(mw_trace_reader *r, uint64_t id, uint64_t seq)
{
    sqlite3_stmt *q;
    uint64_t found = 0;
    if (sqlite3_prepare_v2(mw_trace_reader_db(r),
                           "SELECT max(seq) FROM changes WHERE object_id = ? AND seq <= ?", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(q, 1, (int64_t)id);
    sqlite3_bind_int64(q, 2, seq > INT64_MAX ? INT64_MAX : (int64_t)seq);
    if (sqlite3_step(q) == SQLITE_ROW)
        found = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return found;
}

/* ---- the net view: only bytes that changes in (from, to] wrote can differ ------------- */

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges n spans (touching ones too); the new count. */
static size_t merge_spans(struct span *sp, size_t n)
{
    if (n == 0)
        return 0;
    qsort(sp, n, sizeof *sp, span_cmp);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (sp[i].lo <= sp[k].hi) {
            if (sp[i].hi > sp[k].hi)
                sp[k].hi = sp[i].hi;
        } else {
            sp[++k] = sp[i];
        }
    }
    return k + 1;
}

/* The bytes of object id (size bytes) that its changes in (from, to] wrote, merged and
 * clipped to the object: x->spans, x->nspans. 0 or -1. */
static int written_spans(struct stream *s, uint64_t id, uint64_t size, struct block *x)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(mw_trace_reader_db(s->r),
                           "SELECT coalesce(r.offset, c.offset), coalesce(r.length, c.length)"
                           " FROM changes AS c LEFT JOIN ranges AS r ON r.seq = c.seq"
                           " WHERE c.object_id = ?1 AND c.seq > ?2 AND c.seq <= ?3",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(q, 1, (int64_t)id);
    sqlite3_bind_int64(q, 2, s->o->from > INT64_MAX ? INT64_MAX : (int64_t)s->o->from);
    sqlite3_bind_int64(q, 3, s->o->to > INT64_MAX ? INT64_MAX : (int64_t)s->o->to);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t off = sqlite3_column_int64(q, 0), len = sqlite3_column_int64(q, 1);
        if (off < 0 || len <= 0 || (uint64_t)off >= size)
            continue;
        uint64_t hi = (uint64_t)len > size - (uint64_t)off ? size : (uint64_t)(off + len);
        if (MW_GROW(x->spans, cap, x->nspans + 1) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        x->spans[x->nspans++] = (struct span){(uint64_t)off, hi};
    }
    sqlite3_finalize(q);
    x->nspans = merge_spans(x->spans, x->nspans);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The object's item size when it is a plain one, else 1: the net view's elements read the
 * whole items around the bytes that differ. */
static uint64_t item_size(mw_trace_reader *r, uint64_t id)
{
    sqlite3_stmt *q;
    int64_t n = 1;
    if (sqlite3_prepare_v2(mw_trace_reader_db(r), "SELECT itemsize FROM objects WHERE id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return 1;
    sqlite3_bind_int64(q, 1, (int64_t)id);
    if (sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n > 0 && n <= 4096 ? (uint64_t)n : 1;
}

/* Copies the value at --from over the written spans and what is shown around them
 * (context rows, whole items), in whole words of known bits. Elsewhere the value at
 * --from is the value at --to, and nothing reads it. */
static void copy_around_spans(struct block *x, unsigned char *before, uint64_t *bknown,
                              const unsigned char *val, const uint64_t *known, uint64_t pad)
{
    for (size_t i = 0; i < x->nspans; i++) {
        uint64_t lo = x->spans[i].lo > pad ? x->spans[i].lo - pad : 0;
        uint64_t hi = x->size - x->spans[i].hi > pad ? x->spans[i].hi + pad : x->size;
        lo -= lo % 64;
        hi = hi % 64 && x->size - hi > 64 - hi % 64 ? hi + (64 - hi % 64) : hi;
        hi = hi > x->size ? x->size : hi;
        memcpy(before + lo, val + lo, (size_t)(hi - lo));
        memcpy(bknown + lo / 64, known + lo / 64, (size_t)((hi + 63) / 64 - lo / 64) * 8);
    }
}

/* The object's value just after --from into x->before/before_known (copies, over the
 * bytes that matter: copy_around_spans): after its last change up to then, or before its
 * first one after. 1, 0 (not every byte of it known: *all 0), negative on error. */
static int value_at_from(struct stream *s, const struct net_object *ob, struct block *x,
                         int *all)
{
    uint64_t at = last_change_by(s->r, ob->id, s->o->from);
    struct mw_value_change c;
    int rc = mw_value_reader_change_with_state(s->v, at ? at : ob->first, &c);
    const unsigned char *val;
    const uint64_t *known;
    if (rc != 1 || mw_value_reader_state(s->v, ob->id, &val, &known, &x->size, all) != 1)
        return rc < 0 ? rc : -1;
    size_t words = (size_t)(x->size / 64 + 1);
    unsigned char *before = mw_big_zalloc((size_t)x->size);
    uint64_t *bknown = mw_big_zalloc(words * sizeof *bknown);
    x->before = before;
    x->before_known = bknown;
    if (!before || !bknown || written_spans(s, ob->id, x->size, x) < 0)
        return -ENOMEM;
    uint64_t pad = ((uint64_t)s->o->ctx + 1) * MW_DIFF_ROW + item_size(s->r, ob->id);
    copy_around_spans(x, before, bknown, val, known, pad);
    if (at)
        return 1;
    /* Before its first change: that change's old bytes where it had them. */
    for (size_t i = 0; i < c.n; i++) {
        const struct mw_value_range *g = &c.ranges[i];
        for (uint64_t b = g->offset; b < g->offset + g->length; b++) {
            if (g->old)
                before[b] = g->old[b - g->offset];
            if (g->old)
                bknown[b / 64] |= (uint64_t)1 << (b % 64);
            else
                bknown[b / 64] &= ~((uint64_t)1 << (b % 64));
        }
    }
    return 1;
}

static void free_block(struct block *x)
{
    mw_big_free((void *)x->before, (size_t)x->size);
    mw_big_free((void *)x->before_known, (size_t)(x->size / 64 + 1) * sizeof *x->before_known);
    free(x->spans);
}

struct net_heading_ctx {
    struct stream *s;
    const struct net_object *ob;
};

static void net_heading(void *ctx, const char *what)
{
    struct net_heading_ctx *h = ctx;
    const struct mw_diff_options *o = h->s->o;
    if (h->s->blocks++)
        putchar('\n');
    printf("%s%s%s  from seq %" PRIu64 " to seq %" PRIu64 "  %" PRIu64 " change%s (seq %" PRIu64
           "..%" PRIu64 "), %s%s\n",
           o->color ? MW_DIFF_BOLD : "", h->s->shown_tag, h->s->object, o->from, o->to,
           h->ob->changes, h->ob->changes == 1 ? "" : "s", h->ob->first, h->ob->last, what,
           o->color ? MW_DIFF_RESET : "");
}

/* Runs of the bytes that differ between x->before and x->state, as ranges over them
 * (within the written spans: no other byte can differ). */
static struct mw_rec_range *differing_runs(const struct block *x, size_t *n, uint64_t *bytes)
{
    struct mw_rec_range *runs = NULL;
    size_t cap = 0;
    *n = 0;
    *bytes = 0;
    for (size_t i = 0; i < x->nspans; i++) {
        uint64_t b = x->spans[i].lo, end = x->spans[i].hi;
        while (b < end) {
            struct mw_diff_byte d;
            describe_net((void *)x, b, &d);
            if (!d.changed) {
                b++;
                continue;
            }
            uint64_t e = b + 1;
            for (; e < end; e++) {
                describe_net((void *)x, e, &d);
                if (!d.changed)
                    break;
            }
            if (MW_GROW(runs, cap, *n + 1) != 0) {
                free(runs);
                return NULL;
            }
            runs[(*n)++] = (struct mw_rec_range){b, e - b, x->before + b, x->state + b};
            *bytes += e - b;
            b = e;
        }
    }
    return runs ? runs : calloc(1, sizeof *runs);
}

/* One object's net difference: its elements, or a hexdump of the bytes that differ. */
static int net_object(struct stream *s, const struct net_object *ob, struct block *x)
{
    size_t nruns;
    uint64_t bytes;
    struct mw_rec_range *runs = differing_runs(x, &nruns, &bytes);
    if (!runs)
        return -1;
    struct net_heading_ctx h = {s, ob};
    const struct mw_elem_layout *l = NULL;
    int typed = 0, rc = -2;
    if (!s->o->bytes && mw_trace_reader_layout(s->r, ob->id, &l, &typed) < 0)
        rc = -1;
    else if (typed)
        rc = print_elements(l, runs, nruns, x->before, x->state, x->size, s->tag, s->o->color,
                            1, net_heading, &h);
    if (rc == -2) {
        char what[64];
        snprintf(what, sizeof what, "%" PRIu64 " byte%s differ%s", bytes, bytes == 1 ? "" : "s",
                 bytes == 1 ? "s" : "");
        net_heading(&h, what);
        struct mw_diff_view view = {.size = x->size};
        for (size_t i = 0; i < nruns; i++)
            mw_diff_view_add_rows(&view, runs[i].offset / MW_DIFF_ROW,
                                  (runs[i].offset + runs[i].length - 1) / MW_DIFF_ROW, s->o->ctx);
        mw_diff_print_rows(&view, describe_net, x, s->o->color);
        free(view.rows);
        rc = 0;
    }
    free(runs);
    return rc;
}

/* The tag's last change: where --to stops when not given. */
static uint64_t tag_last_seq(mw_trace_reader *r, const char *tag)
{
    sqlite3_stmt *q;
    uint64_t last = 0;
    if (sqlite3_prepare_v2(mw_trace_reader_db(r),
                           "SELECT max(seq) FROM changes"
                           " WHERE object_id IN (SELECT id FROM objects WHERE tag = ?)",
                           -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, tag, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        last = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return last;
}

static int net(struct stream *s)
{
    struct net_object *obs;
    size_t nobs;
    struct mw_diff_options o = *s->o;
    if (o.to == UINT64_MAX)
        o.to = tag_last_seq(s->r, s->tag);
    s->o = &o;
    int64_t nobj = changed_objects(s->r, s->tag);
    if (nobj < 0 || net_objects(s, &obs, &nobs) < 0) {
        mw_cli_error("cannot read %s: %s", mw_show_name(s->tag), sqlite3_errmsg(mw_trace_reader_db(s->r)));
        return MW_EXIT_FAILURE;
    }
    int status = MW_EXIT_OK;
    for (size_t i = 0; i < nobs && status == MW_EXIT_OK; i++) {
        struct block x = {0};
        int all = 0, rc = value_at_from(s, &obs[i], &x, &all);
        if (rc == 1 && i == 0 && !all)
            status = MW_DIFF_STREAM_NOT_HERE;   /* the loaded way fills bytes in */
        else if (rc == 1) {
            struct mw_value_change c;
            int all_after;
            if (nobj > 1)
                snprintf(s->object, sizeof s->object, " (object %" PRIu64 ")", obs[i].id);
            rc = mw_value_reader_change_with_state(s->v, obs[i].last, &c);
            if (rc == 1 && mw_value_reader_state(s->v, obs[i].id, &x.state, &x.known, &x.size,
                                                 &all_after) == 1)
                rc = net_object(s, &obs[i], &x);
        }
        if (rc < 0 && status == MW_EXIT_OK) {
            mw_cli_error("%s", rc == -1 || rc == -ENOMEM ? "out of memory"
                                                         : mw_value_reader_errmsg(s->v));
            status = MW_EXIT_FAILURE;
        }
        free_block(&x);
    }
    if (status == MW_EXIT_OK && s->blocks == 0)
        printf("%s  from seq %" PRIu64 " to seq %" PRIu64 "  no changes\n", s->shown_tag, s->o->from,
               s->o->to);
    free(obs);
    return status;
}

int mw_diff_stream(mw_trace_reader *r, const char *path, const char *tag,
                   const struct mw_diff_options *o)
{
    (void)path;
    struct stream s = {.r = r, .tag = tag, .o = o};
    if (!(s.v = mw_trace_reader_values(r))) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (!(s.shown_tag = mw_show(tag, strlen(tag), MW_SHOW_NAME_MAX, NULL))) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int status = o->net ? net(&s) : history(&s);
    free(s.shown_tag);
    if (status != MW_DIFF_STREAM_NOT_HERE && (fflush(stdout) != 0 || ferror(stdout))) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        status = MW_EXIT_FAILURE;
    }
    return status;
}
