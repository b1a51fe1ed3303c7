/* memwatch query: list the changes recorded in a trace, one row per changed byte range or
 * (--elements) per changed element; per-tag totals (--summary); or the rows of a read-only
 * SQL statement (--sql). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "elements.h"
#include "format.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "processes.h"
#include "query_cells.h"
#include "reader.h"
#include "reader_run.h"
#include "rowcopy.h"
#include "show.h"
#include "value_read.h"
#include "value_sql.h"

enum { OPT_TAG = 256, OPT_SINCE, OPT_UNTIL, OPT_SQL, OPT_PID };

static const char *const query_usage[] = {
    "usage: memwatch query [-s | -e] [-f format] [-n limit] [--since seq] [--until seq] [--tag tag] [--pid pid] [trace ...]",
    "       memwatch query [-f format] --sql statement [trace]",
    "",
    "List the changes recorded in a trace, one row per changed byte range, in order.",
    "",
    MW_CLI_LIST,
    "",
    "Without trace, the newest memwatch-*.db in the current directory is read. Several",
    "traces are read as one timeline, merged by wall clock, each row naming its trace.",
    "The trace's tables and views are described in memwatch-query(1).",
    NULL,
};

static const struct mw_cli_option query_options[] = {
    {"tag", required_argument, OPT_TAG, "    --tag tag          only the objects watched under this tag"},
    {"pid", required_argument, OPT_PID, "    --pid PID          only the changes process PID wrote"},
    {"since", required_argument, OPT_SINCE,
     "    --since seq        only changes numbered seq or later"},
    {"until", required_argument, OPT_UNTIL,
     "    --until seq        only changes numbered seq or earlier"},
    {"limit", required_argument, 'n', "    -n, --limit n      at most n rows"},
    {"format", required_argument, 'f',
     "    -f, --format fmt   table (the default), csv, json or jsonl"},
    {"elements", no_argument, 'e',
     "    -e, --elements     one row per changed element: index, old and new value"},
    {"summary", no_argument, 's',
     "    -s, --summary      one row per tag: changes, bytes changed, first and last seq,\n"
     "                       and for typed objects elements changed, deltas, NaN and Inf"},
    {"sql", required_argument, OPT_SQL,
     "    --sql statement    run one read-only SQL statement on the trace, print its rows"},
    {"help", no_argument, 'h', "    -h, --help         show this help"},
    {NULL, 0, 0, NULL},
};

static void time_cell(struct mw_cell *c, uint64_t ns)
{
    c->type = MW_CELL_REAL;
    c->r = (double)ns / 1e9;
}

static void text_cell(struct mw_cell *c, const char *s)
{
    if (s) {
        c->type = MW_CELL_TEXT;
        c->s = s;
    } else {
        c->type = MW_CELL_NULL;
    }
}

static void int_cell(struct mw_cell *c, int64_t v)
{
    c->type = MW_CELL_INT;
    c->i = v;
}

static void blob_cell(struct mw_cell *c, const unsigned char *p, uint64_t n)
{
    c->type = MW_CELL_BLOB;
    c->blob = p;
    c->len = (size_t)n;
}

const char *const table_cols[] = {"seq", "time", "tag", "offset", "length",
                                  "old", "new", "where", "thread", "pid"};
const char *const data_cols[] = {"seq", "time_ns", "tag", "object_id", "offset",
                                 "length", "old_hex", "new_hex", "complete", "file",
                                 "line", "function", "thread", "thread_id", "kept", "pid"};
#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))
const int table_ncols = NCOLS(table_cols), data_ncols = NCOLS(data_cols);

/* The where and thread cells of a table row: "file:line function" or the native symbol,
 * the thread's name or number (into t, which must outlive the row; free t->where after). */
static void where_thread_cells(struct mw_cell *where_c, struct mw_cell *thread_c,
                               const struct mw_trace_row *row, struct row_text *t)
{
    t->where = NULL;
    if (row->file) {
        if (asprintf(&t->where, "%s:%d%s%s", row->file, row->line, row->function ? " " : "",
                     row->function ? row->function : "") < 0)
            t->where = NULL;
        text_cell(where_c, t->where ? t->where : row->file);
    } else {
        text_cell(where_c, row->native_symbol);
    }
    if (row->thread_name) {
        text_cell(thread_c, row->thread_name);
    } else if (row->thread_id) {
        snprintf(t->thread, sizeof t->thread, "%" PRId64, row->thread_id);
        text_cell(thread_c, t->thread);
    } else {
        text_cell(thread_c, NULL);
    }
}

/* What a table shows for bytes the trace did not keep: why (never a guess). */
static const char *not_kept_text(int kept)
{
    return kept == MW_KEPT_DROPPED ? "(dropped)" : "(not kept)";
}

void change_table_cells(struct mw_cell *c, const struct mw_trace_row *row, struct row_text *t)
{
    int_cell(&c[0], (int64_t)row->seq);
    time_cell(&c[1], row->time_ns);
    text_cell(&c[2], row->tag);
    int_cell(&c[3], (int64_t)row->offset);
    int_cell(&c[4], (int64_t)row->length);
    if (row->old)
        blob_cell(&c[5], row->old, row->length);
    else
        text_cell(&c[5], row->new_ ? "?" : not_kept_text(row->kept));
    if (row->new_)
        blob_cell(&c[6], row->new_, row->length);
    else
        text_cell(&c[6], not_kept_text(row->kept));
    where_thread_cells(&c[7], &c[8], row, t);
    if (row->pid)
        int_cell(&c[9], row->pid);
}

void change_data_cells(struct mw_cell *c, const struct mw_trace_row *row)
{
    int_cell(&c[0], (int64_t)row->seq);
    int_cell(&c[1], (int64_t)row->time_ns);
    text_cell(&c[2], row->tag);
    int_cell(&c[3], (int64_t)row->object_id);
    int_cell(&c[4], (int64_t)row->offset);
    int_cell(&c[5], (int64_t)row->length);
    if (row->old)
        blob_cell(&c[6], row->old, row->length);
    if (row->new_)
        blob_cell(&c[7], row->new_, row->length);
    int_cell(&c[8], row->complete);
    text_cell(&c[9], row->file);
    if (row->line > 0)
        int_cell(&c[10], row->line);
    text_cell(&c[11], row->function);
    text_cell(&c[12], row->thread_name);
    if (row->thread_id)
        int_cell(&c[13], row->thread_id);
    text_cell(&c[14], mw_kept_name(row->kept));
    if (row->pid)
        int_cell(&c[15], row->pid);
}

/* After a listing: its messages and exit status. read_rc: 0, -ENOMEM, or another negative
 * status of the reader. An unfiltered listing of nothing says why: not an error, the run
 * simply changed nothing that was watched. */
static int end_listing(mw_trace_reader *r, const char *path, const struct mw_trace_filter *f,
                       uint64_t rows, int read_rc, int write_failed)
{
    if (read_rc < 0) {
        mw_cli_error("%s", read_rc == -ENOMEM ? "out of memory" : mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (write_failed) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    if (rows == 0 && !f->tag && !f->has_since && !f->has_until) {
        uint64_t objects = 0, changes = 0;
        if (mw_trace_reader_counts(r, &objects, &changes) == 0 && changes == 0)
            mw_cli_say_empty(path, objects);
    }
    return MW_EXIT_OK;
}

static int list_changes(mw_trace_reader *r, const char *path, const struct mw_trace_filter *f,
                        enum mw_format format)
{
    int table = format == MW_FORMAT_TABLE;
    mw_trace_iter *it;
    if (mw_trace_iter_start(r, f, &it) < 0) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    mw_output *o = table ? mw_output_begin(stdout, format, NCOLS(table_cols), table_cols)
                         : mw_output_begin(stdout, format, NCOLS(data_cols), data_cols);
    if (!o) {
        mw_trace_iter_finish(it);
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    struct mw_trace_row row;
    int rc;
    while ((rc = mw_trace_iter_next(it, &row)) == 1) {
        struct mw_cell c[16];
        struct row_text t = {0};
        memset(c, 0, sizeof(c));
        if (table)
            change_table_cells(c, &row, &t);
        else
            change_data_cells(c, &row);
        int out = mw_output_row(o, c);
        free(t.where);
        if (out < 0)
            break;
    }
    uint64_t rows = mw_output_rows(o);
    int out_rc = mw_output_end(o);
    mw_trace_iter_finish(it);
    /* A reader error is an error status that is neither -ENOMEM nor 0 for end_listing. */
    return end_listing(r, path, f, rows, rc < 0 ? MW_ETRACE : 0, out_rc < 0);
}

/* A real number: a short text in tables (%.6g), the number elsewhere. */
static void real_cell(struct mw_cell *c, double v, int table, char *buf, size_t size)
{
    if (table) {
        snprintf(buf, size, "%.6g", v);
        text_cell(c, buf);
        c->type = MW_CELL_TEXT;
    } else {
        c->type = MW_CELL_REAL;
        c->r = v;
    }
}

/* ---- --elements ---- */

/* The ranges of one change, copied out of the iterator. */
struct pending {
    struct mw_trace_row row;          /* of the first range, its strings the copies below
                                         (its bytes are the ranges') */
    char *tag, *file, *function, *thread_name, *native_symbol;
    struct mw_rec_range *ranges;
    unsigned char **bufs;             /* old/new copies, two per range */
    size_t n, cap, bufs_cap;
};

static void pending_clear(struct pending *p)
{
    for (size_t i = 0; i < 2 * p->n; i++)
        free(p->bufs[i]);
    free(p->tag), free(p->file), free(p->function), free(p->thread_name);
    free(p->native_symbol);
    p->tag = p->file = p->function = p->thread_name = p->native_symbol = NULL;
    p->n = 0;
}

static int pending_add(struct pending *p, const struct mw_trace_row *row)
{
    int oom = 0;
    if (p->n == 0) {
        p->row = *row;
        p->row.tag = p->tag = mw_cli_copy_str(row->tag, &oom);
        p->row.file = p->file = mw_cli_copy_str(row->file, &oom);
        p->row.function = p->function = mw_cli_copy_str(row->function, &oom);
        p->row.thread_name = p->thread_name = mw_cli_copy_str(row->thread_name, &oom);
        p->row.native_symbol = p->native_symbol = mw_cli_copy_str(row->native_symbol, &oom);
        p->row.old = p->row.new_ = NULL;
    }
    if (MW_GROW(p->ranges, p->cap, p->n + 1) != 0 ||
        MW_GROW(p->bufs, p->bufs_cap, 2 * (p->n + 1)) != 0)
        return -1;
    unsigned char *old = mw_cli_copy_bytes(row->old, row->length, &oom);
    unsigned char *new_ = mw_cli_copy_bytes(row->new_, row->length, &oom);
    p->bufs[2 * p->n] = old;
    p->bufs[2 * p->n + 1] = new_;
    p->ranges[p->n++] = (struct mw_rec_range){row->offset, row->length, old, new_};
    return oom ? -1 : 0;
}

struct elem_out {
    mw_output *o;
    int table;
    uint64_t limit;
    const struct pending *p;
    int write_failed;
    int oom;
};

/* The texts of one element row, whole: no fixed size (a tag of megabytes makes a name of
 * megabytes, which JSON and CSV keep, and a table shortens visibly). */
struct elem_text {
    char *name, *old, *new_;
    char index[MW_REC_MAX_NDIM * 24], delta[32];
    struct row_text row;
};

static int elem_text_make(struct elem_text *t, const char *tag, const struct mw_elem_change *e)
{
    t->name = mw_cli_element_name(tag, e);
    mw_elem_format_index(e->ndim, e->index, t->index, sizeof t->index);
    t->old = mw_cli_element_value(e->scalar, e->old);
    t->new_ = mw_cli_element_value(e->scalar, e->new_);
    return t->name && t->old && t->new_ ? 0 : -1;
}

static void elem_text_free(struct elem_text *t)
{
    free(t->name);
    free(t->old);
    free(t->new_);
    free(t->row.where);
}

/* The cells of an element row in a table. */
static void element_table_cells(struct mw_cell *c, const struct pending *p,
                                const struct mw_elem_change *e, struct elem_text *t,
                                int has_delta, double delta)
{
    int_cell(&c[0], (int64_t)p->row.seq);
    time_cell(&c[1], p->row.time_ns);
    text_cell(&c[2], t->name);
    text_cell(&c[3], t->old);
    text_cell(&c[4], t->new_);
    c[3].flags = c[4].flags = MW_CELL_F_REPR;
    if (has_delta)
        real_cell(&c[5], delta, 1, t->delta, sizeof t->delta);
    text_cell(&c[6], mw_elem_flags_note(e->flags));
    where_thread_cells(&c[7], &c[8], &p->row, &t->row);
}

/* The cells of an element row in the other formats. */
static void element_data_cells(struct mw_cell *c, const struct pending *p,
                               const struct mw_elem_change *e, const struct elem_text *t,
                               int has_delta, double delta)
{
    int_cell(&c[0], (int64_t)p->row.seq);
    int_cell(&c[1], (int64_t)p->row.time_ns);
    text_cell(&c[2], p->tag);
    int_cell(&c[3], (int64_t)p->row.object_id);
    text_cell(&c[4], t->name);
    c[5].type = MW_CELL_JSON;
    c[5].s = t->index;
    text_cell(&c[6], e->scalar->path[0] ? e->scalar->path : NULL);
    int_cell(&c[7], (int64_t)e->offset);
    if (e->old)
        text_cell(&c[8], t->old);
    if (e->new_)
        text_cell(&c[9], t->new_);
    /* Numbers only where the element is one real, finite number: a complex value's real
     * part alone would pass for its value. */
    int real = e->scalar->kind != MW_ELEM_COMPLEX;
    if (e->old && real && isfinite(e->old_num))
        c[10].type = MW_CELL_REAL, c[10].r = e->old_num;
    if (e->new_ && real && isfinite(e->new_num))
        c[11].type = MW_CELL_REAL, c[11].r = e->new_num;
    if (has_delta)
        c[12].type = MW_CELL_REAL, c[12].r = delta;
    text_cell(&c[13], mw_elem_flags_note(e->flags));
    text_cell(&c[14], p->file);
    if (p->row.line > 0)
        int_cell(&c[15], p->row.line);
    text_cell(&c[16], p->function);
    text_cell(&c[17], p->thread_name);
    if (p->row.thread_id)
        int_cell(&c[18], p->row.thread_id);
}

/* Stops the diff (returns 1) at the limit or on a write error. */
static int element_row(const struct mw_elem_change *e, void *ctx)
{
    struct elem_out *x = ctx;
    const struct pending *p = x->p;
    struct elem_text t = {0};
    struct mw_cell c[20];
    memset(c, 0, sizeof(c));
    if (elem_text_make(&t, p->tag ? p->tag : "", e) < 0) {
        elem_text_free(&t);
        x->oom = 1;
        return 1;
    }
    int has_delta = e->old && e->new_ && e->scalar->kind != MW_ELEM_COMPLEX &&
                    !isnan(e->old_num) && !isnan(e->new_num) &&
                    isfinite(e->new_num - e->old_num);
    double delta = has_delta ? e->new_num - e->old_num : 0;
    if (x->table)
        element_table_cells(c, p, e, &t, has_delta, delta);
    else
        element_data_cells(c, p, e, &t, has_delta, delta);
    int out = mw_output_row(x->o, c);
    elem_text_free(&t);
    if (out < 0) {
        x->write_failed = 1;
        return 1;
    }
    return x->limit && mw_output_rows(x->o) >= x->limit ? 1 : 0;
}

/* A change whose bytes the trace did not keep: one row saying so, with what it kept
 * instead (how many elements or bytes changed, the numeric summary). 1: stop. */
static int summary_element_row(mw_trace_reader *r, struct pending *p, struct elem_out *x)
{
    struct mw_trace_change_summary sum;
    int rc = mw_trace_reader_change_summary(r, p->row.seq, &sum);
    if (rc < 0)
        return rc;
    char name[1024], note[512], range[96] = "", nonfinite[128] = "";
    struct row_text t = {0};
    uint64_t bytes = 0;
    for (size_t i = 0; i < p->n; i++)
        bytes += p->ranges[i].length;
    if (sum.has_stats)
        snprintf(name, sizeof name, "%s (%" PRIu64 " element%s)", p->tag ? p->tag : "",
                 sum.elements, sum.elements == 1 ? "" : "s");
    else
        snprintf(name, sizeof name, "%s (%" PRIu64 " byte%s)", p->tag ? p->tag : "",
                 sum.has_changed_bytes ? sum.changed_bytes : bytes,
                 (sum.has_changed_bytes ? sum.changed_bytes : bytes) == 1 ? "" : "s");
    if (sum.has_stats && sum.deltas)
        snprintf(range, sizeof range, ", delta %.6g..%.6g (mean %.6g)", sum.delta_min,
                 sum.delta_max, sum.delta_mean);
    if (sum.has_stats && (sum.nan_appeared || sum.inf_appeared))
        snprintf(nonfinite, sizeof nonfinite, ", %" PRIu64 " NaN and %" PRIu64 " Inf appeared",
                 sum.nan_appeared, sum.inf_appeared);
    snprintf(note, sizeof note, "values %s%s%s",
             p->row.kept == MW_KEPT_DROPPED ? "dropped" : "not kept", range, nonfinite);
    struct mw_cell c[20];
    memset(c, 0, sizeof(c));
    const char *nk = not_kept_text(p->row.kept);
    if (x->table) {
        int_cell(&c[0], (int64_t)p->row.seq);
        time_cell(&c[1], p->row.time_ns);
        text_cell(&c[2], name);
        text_cell(&c[3], nk);
        text_cell(&c[4], nk);
        text_cell(&c[6], note);
        where_thread_cells(&c[7], &c[8], &p->row, &t);
    } else {
        int_cell(&c[0], (int64_t)p->row.seq);
        int_cell(&c[1], (int64_t)p->row.time_ns);
        text_cell(&c[2], p->tag);
        int_cell(&c[3], (int64_t)p->row.object_id);
        text_cell(&c[4], name);
        int_cell(&c[7], (int64_t)p->row.offset);
        text_cell(&c[13], note);
        text_cell(&c[14], p->file);
        if (p->row.line > 0)
            int_cell(&c[15], p->row.line);
        text_cell(&c[16], p->function);
        text_cell(&c[17], p->thread_name);
        if (p->row.thread_id)
            int_cell(&c[18], p->row.thread_id);
    }
    int failed = mw_output_row(x->o, c) < 0;
    free(t.where);
    if (failed) {
        x->write_failed = 1;
        return 1;
    }
    return x->limit && mw_output_rows(x->o) >= x->limit ? 1 : 0;
}

/* Decodes the pending change into element rows. 1: stop (limit, write error). */
static int flush_elements(mw_trace_reader *r, struct pending *p, struct elem_out *x)
{
    if (p->n == 0)
        return 0;
    const struct mw_elem_layout *l;
    int rc = mw_trace_reader_layout(r, p->row.object_id, &l, NULL);
    if (rc < 0)
        return rc;
    x->p = p;
    for (size_t i = 0; i < p->n; i++)
        if (!p->ranges[i].new_) {
            rc = summary_element_row(r, p, x);
            pending_clear(p);
            return rc;
        }
    rc = mw_elem_diff(l, p->ranges, p->n, NULL, NULL, 0, element_row, x);
    pending_clear(p);
    if (rc == MW_EINVAL)
        return 0;   /* ranges past the object's end (a hand-made trace): nothing to decode */
    return rc;
}

static int list_elements(mw_trace_reader *r, const char *path, const struct mw_trace_filter *f,
                         enum mw_format format)
{
    static const char *const tcols[] = {"seq", "time", "element", "old", "new", "delta",
                                        "note", "where", "thread"};
    static const char *const dcols[] = {"seq", "time_ns", "tag", "object_id", "element",
                                        "index", "field", "offset", "old", "new", "old_value",
                                        "new_value", "delta", "note", "file", "line",
                                        "function", "thread", "thread_id"};
    int table = format == MW_FORMAT_TABLE;
    struct mw_trace_filter all = *f;
    all.limit = 0;   /* the limit counts elements, not ranges */
    mw_trace_iter *it;
    if (mw_trace_iter_start(r, &all, &it) < 0) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    struct elem_out x = {
        .o = table ? mw_output_begin(stdout, format, NCOLS(tcols), tcols)
                   : mw_output_begin(stdout, format, NCOLS(dcols), dcols),
        .table = table,
        .limit = f->limit,
    };
    if (!x.o) {
        mw_trace_iter_finish(it);
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    struct pending p = {0};
    struct mw_trace_row row;
    int rc, stop = 0;
    while ((rc = mw_trace_iter_next(it, &row)) == 1) {
        if (p.n && p.row.seq != row.seq && (stop = flush_elements(r, &p, &x)) != 0)
            break;
        if (pending_add(&p, &row) < 0) {
            stop = -ENOMEM;
            break;
        }
    }
    if (rc >= 0 && !stop)
        stop = flush_elements(r, &p, &x);
    pending_clear(&p);
    free(p.ranges);
    free(p.bufs);
    uint64_t rows = mw_output_rows(x.o);
    int out_rc = mw_output_end(x.o);
    mw_trace_iter_finish(it);
    int read_rc = stop == -ENOMEM || x.oom ? -ENOMEM : rc < 0 || stop < 0 ? MW_ETRACE : 0;
    return end_listing(r, path, f, rows, read_rc, out_rc < 0 || x.write_failed);
}

struct summary_ctx {
    mw_output *o;
    int table;
};

static int summary_row(const struct mw_trace_tag_summary *s, void *ctx)
{
    struct summary_ctx *sc = ctx;
    struct mw_cell c[16];
    char dmin[32], dmax[32], dmean[32];
    memset(c, 0, sizeof(c));
    text_cell(&c[0], s->tag);
    int_cell(&c[1], (int64_t)s->objects);
    int_cell(&c[2], (int64_t)s->changes);
    int_cell(&c[3], (int64_t)s->ranges);
    int_cell(&c[4], (int64_t)s->bytes);
    if (s->has_changes) {
        int_cell(&c[5], (int64_t)s->first_seq);
        int_cell(&c[6], (int64_t)s->last_seq);
    }
    if (s->has_numbers) {
        int_cell(&c[7], (int64_t)s->elements);
        if (s->deltas) {
            real_cell(&c[8], s->delta_min, sc->table, dmin, sizeof dmin);
            real_cell(&c[9], s->delta_max, sc->table, dmax, sizeof dmax);
            real_cell(&c[10], s->delta_mean, sc->table, dmean, sizeof dmean);
        }
        int_cell(&c[11], (int64_t)s->nan_appeared);
        int_cell(&c[12], (int64_t)s->nan_gone);
        int_cell(&c[13], (int64_t)s->inf_appeared);
        int_cell(&c[14], (int64_t)s->inf_gone);
        if (s->has_first_nonfinite)
            int_cell(&c[15], (int64_t)s->first_nonfinite_seq);
    }
    return mw_output_row(sc->o, c) < 0 ? 1 : 0;
}

/* The table's first line: the interpreter that ran the script (memwatch-trace(1), WHICH
 * PYTHON), when the trace says. Machine formats keep one row per tag; they read it from
 * the run table and meta (query --sql). */
static int print_python(mw_trace_reader *r)
{
    struct mw_trace_python py;
    if (mw_trace_reader_python(r, &py) < 0) {
        mw_cli_error("cannot read the run: %s", sqlite3_errmsg(mw_trace_reader_db(r)));
        return -1;
    }
    if (py.version || py.path) {
        char *version = py.version ? mw_show(py.version, strlen(py.version), 32, NULL) : NULL;
        char *where = py.path ? mw_show(py.path, strlen(py.path), MW_SHOW_NAME_MAX, NULL) : NULL;
        char *how = py.chosen_by ? mw_show(py.chosen_by, strlen(py.chosen_by), 32, NULL) : NULL;
        printf("python %s%s%s%s%s%s\n", version ? version : "?", where ? " " : "",
               where ? where : "", how ? " (chosen by " : "", how ? how : "", how ? ")" : "");
        free(version);
        free(where);
        free(how);
    }
    mw_trace_python_free(&py);
    return 0;
}

static int summarize(mw_trace_reader *r, const char *path, const struct mw_trace_filter *f,
                     enum mw_format format)
{
    if (format == MW_FORMAT_TABLE && print_python(r) < 0)
        return MW_EXIT_FAILURE;
    if (format == MW_FORMAT_TABLE) {
        mw_query_print_incomplete(mw_trace_reader_db(r));
        mw_query_print_processes(mw_trace_reader_db(r));
    }
    static const char *const cols[] = {"tag", "objects", "changes", "ranges", "bytes_changed",
                                       "first_seq", "last_seq", "elements_changed",
                                       "delta_min", "delta_max", "delta_mean", "nan_appeared",
                                       "nan_gone", "inf_appeared", "inf_gone",
                                       "first_nonfinite_seq"};
    struct summary_ctx sc = {mw_output_begin(stdout, format, NCOLS(cols), cols),
                             format == MW_FORMAT_TABLE};
    if (!sc.o) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int rc = mw_trace_reader_summary(r, f, summary_row, &sc);
    uint64_t rows = mw_output_rows(sc.o);
    int out_rc = mw_output_end(sc.o);
    if (rc < 0) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (rc > 0 || out_rc < 0) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    if (rows == 0)
        mw_cli_error("%s is an empty trace: no objects were watched", mw_show_name(path));
    return MW_EXIT_OK;
}

/* Is the rest of a statement text only blanks and semicolons? (comments count as text) */
static int only_blanks(const char *s)
{
    for (; *s; s++)
        if (*s != ';' && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

static int run_sql(mw_trace_reader *r, const char *sql, enum mw_format format)
{
    sqlite3 *db = mw_trace_reader_db(r);
    sqlite3_stmt *s = NULL;
    const char *tail = NULL;
    /* mw_old, mw_new, mw_value: the values however the trace keeps them (value_sql.h). */
    mw_value_reader *values = mw_trace_reader_values(r);
    if (!values || mw_value_sql_register(db, values) != 0) {
        mw_cli_error("%s", values ? "cannot offer the value functions" : mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (sqlite3_prepare_v2(db, sql, -1, &s, &tail) != SQLITE_OK) {
        /* The reader's authorizer admits reads and safe functions only (reader_guard.h). */
        const char *why = mw_trace_reader_guard_reason(r);
        if (why && mw_trace_reader_refused_write(r))
            mw_cli_error("refusing a statement that would modify the trace: '%s'", sql);
        else if (why)
            mw_cli_error("refusing the sql statement: %s", why);
        else
            mw_cli_error("bad sql statement: %s", sqlite3_errmsg(db));
        return MW_EXIT_USAGE;
    }
    if (!s) {
        mw_cli_error("empty sql statement");
        return MW_EXIT_USAGE;
    }
    if (tail && !only_blanks(tail)) {
        sqlite3_finalize(s);
        while (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r')
            tail++;
        mw_cli_error("one sql statement at a time: '%s' follows the first", tail);
        return MW_EXIT_USAGE;
    }
    /* The connection is read-only and its authorizer refuses writes already; VACUUM INTO,
     * which writes another file, is not an action the authorizer sees. */
    if (!sqlite3_stmt_readonly(s)) {
        sqlite3_finalize(s);
        mw_cli_error("refusing a statement that would modify the trace: '%s'", sql);
        return MW_EXIT_USAGE;
    }
    int ncols = sqlite3_column_count(s);
    if (ncols == 0) {
        sqlite3_finalize(s);
        mw_cli_error("the statement returns no columns: '%s'", sql);
        return MW_EXIT_USAGE;
    }
    const char **names = calloc((size_t)ncols, sizeof(*names));
    struct mw_cell *c = calloc((size_t)ncols, sizeof(*c));
    mw_output *o = NULL;
    if (names && c) {
        for (int i = 0; i < ncols; i++)
            names[i] = sqlite3_column_name(s, i);
        o = mw_output_begin(stdout, format, ncols, names);
    }
    if (!o) {
        free(names);
        free(c);
        sqlite3_finalize(s);
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int i = 0; i < ncols; i++) {
            memset(&c[i], 0, sizeof(c[i]));
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_INTEGER:
                int_cell(&c[i], sqlite3_column_int64(s, i));
                break;
            case SQLITE_FLOAT:
                c[i].type = MW_CELL_REAL;
                c[i].r = sqlite3_column_double(s, i);
                break;
            case SQLITE_TEXT:
                text_cell(&c[i], (const char *)sqlite3_column_text(s, i));
                c[i].len = (size_t)sqlite3_column_bytes(s, i);   /* text may hold NUL */
                break;
            case SQLITE_BLOB: {
                const unsigned char *b = sqlite3_column_blob(s, i);
                blob_cell(&c[i], b ? b : (const unsigned char *)"",
                          (uint64_t)sqlite3_column_bytes(s, i));
                break;
            }
            default:
                break;
            }
        }
        if (mw_output_row(o, c) < 0)
            break;
    }
    int out_rc = mw_output_end(o);
    int status = MW_EXIT_OK;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        /* An error of the statement itself (a bad function argument) is the user's input;
         * anything else is a failure reading the file. */
        const char *why = mw_trace_reader_guard_reason(r);
        int usage = !why && sqlite3_errcode(db) == SQLITE_ERROR;
        mw_cli_error("cannot run the sql statement: %s", why ? why : sqlite3_errmsg(db));
        status = usage ? MW_EXIT_USAGE : MW_EXIT_FAILURE;
    } else if (out_rc < 0) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        status = MW_EXIT_FAILURE;
    }
    sqlite3_finalize(s);
    free(names);
    free(c);
    return status;
}

/* What the command line asks for. */
struct query_args {
    struct mw_trace_filter f;
    enum mw_format format;
    int summary, elements;
    const char *sql;
    const char *since_arg;
};

static int query_option(void *args, int opt)
{
    struct query_args *a = args;
    switch (opt) {
    case OPT_TAG:
        a->f.tag = optarg;
        break;
    case OPT_SINCE:
        a->since_arg = optarg;
        return mw_cli_seq_option(&mw_cmd_query, "--since", optarg, &a->f.since,
                                 &a->f.has_since);
    case OPT_UNTIL:
        return mw_cli_seq_option(&mw_cmd_query, "--until", optarg, &a->f.until,
                                 &a->f.has_until);
    case 'n':
        return mw_cli_count_option(&mw_cmd_query, "--limit", optarg, UINT64_MAX, &a->f.limit);
    case 'f':
        if (mw_format_parse(optarg, &a->format))
            return mw_cli_usage_error(&mw_cmd_query,
                                      "unknown format '%s' (use table, csv, json or jsonl)",
                                      optarg);
        break;
    case 's':
    case 'e':
        *(opt == 's' ? &a->summary : &a->elements) = 1;
        break;
    case OPT_SQL:
        a->sql = optarg;
        break;
    case OPT_PID: {
        uint64_t pid;
        if (mw_cli_parse_u64(optarg, &pid) || pid == 0 || pid > INT32_MAX)
            return mw_cli_usage_error(&mw_cmd_query, "'--pid' needs a process id, not '%s'",
                                      optarg);
        a->f.pid = (int64_t)pid;
        break;
    }
    }
    return MW_CLI_GO_ON;
}

/* Options that cannot go together. */
static int check_query_args(const struct query_args *a)
{
    const struct mw_trace_filter *f = &a->f;
    if (a->sql && (a->summary || f->tag || f->has_since || f->has_until || f->limit))
        return mw_cli_usage_error(&mw_cmd_query,
                                  "'--sql' cannot be combined with '--summary', '--tag', "
                                  "'--since', '--until' or '--limit'");
    if (a->sql && a->elements)
        return mw_cli_usage_error(&mw_cmd_query, "'--sql' cannot be combined with '--elements'");
    if (a->summary && a->elements)
        return mw_cli_usage_error(&mw_cmd_query,
                                  "'--summary' and '--elements' cannot be combined");
    if (a->summary && f->limit)
        return mw_cli_usage_error(&mw_cmd_query, "'--limit' cannot be combined with '--summary'");
    if (f->has_since && f->has_until && f->since > f->until)
        return mw_cli_usage_error(&mw_cmd_query, "'--since %s' is after '--until %" PRIu64 "'",
                                  a->since_arg, f->until);
    return MW_CLI_GO_ON;
}

/* What the options ask of the trace at path. */
static int query_trace(mw_trace_reader *r, const char *path, void *ctx)
{
    const struct query_args *a = ctx;
    int status;
    if (a->sql)
        return run_sql(r, a->sql, a->format);
    if (a->f.tag && (status = mw_cli_check_tag(r, path, a->f.tag)))
        return status;
    if (a->summary)
        return summarize(r, path, &a->f, a->format);
    if (a->elements)
        return list_elements(r, path, &a->f, a->format);
    return list_changes(r, path, &a->f, a->format);
}

int cmd_query(int argc, char **argv)
{
    struct query_args a = {.format = MW_FORMAT_TABLE};
    int status = mw_cli_parse_options(&mw_cmd_query, argc, argv, query_option, &a);
    if (status != MW_CLI_GO_ON)
        return status;
    if ((status = check_query_args(&a)) != MW_CLI_GO_ON)
        return status;
    if (argc - optind > 1)   /* several traces: one timeline (timeline_query.c) */
        return mw_timeline_query(argv + optind, (size_t)(argc - optind), &a.f, a.format,
                                 a.summary, a.elements, a.sql);
    return mw_cli_with_trace(optind < argc ? argv[optind] : NULL, query_trace, &a);
}

const struct mw_command mw_cmd_query = {
    .name = "query", .summary = "list the changes recorded in a trace",
    .usage = query_usage, .options = query_options, .getopt_flags = ":", .run = cmd_query,
};
