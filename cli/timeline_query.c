/* memwatch query given several traces: their changes as one timeline, merged by wall
 * clock, each row naming its trace (timeline.h); --summary per trace and for the whole. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "format.h"
#include "query_cells.h"
#include "reader.h"
#include "reader_run.h"
#include "show.h"
#include "timeline.h"

#define MAX_COLS 24

static void text_cell(struct mw_cell *c, const char *s)
{
    c->type = s ? MW_CELL_TEXT : MW_CELL_NULL;
    c->s = s;
}

static void int_cell(struct mw_cell *c, int64_t v)
{
    c->type = MW_CELL_INT;
    c->i = v;
}

static void uint_cell(struct mw_cell *c, uint64_t v)
{
    /* Saturated: a hostile trace's times can be anything. */
    int_cell(c, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

/* Column names: the trace's columns, then the one-trace command's. NULL when out of
 * memory. */
static const char **column_names(const char *const *first, int nfirst, const char *const *rest,
                                 int nrest)
{
    const char **names = calloc((size_t)(nfirst + nrest), sizeof *names);
    if (names) {
        memcpy(names, first, (size_t)nfirst * sizeof *names);
        memcpy(names + nfirst, rest, (size_t)nrest * sizeof *names);
    }
    return names;
}

/* Above a table: one line per trace, its name, file, start and interpreter, so that the
 * trace column can be read. */
static void print_traces(const struct mw_timeline *tl)
{
    for (size_t i = 0; i < tl->n; i++) {
        const struct mw_timeline_trace *t = &tl->t[i];
        time_t sec = (time_t)(t->start_unix_ns / 1000000000);
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&sec, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        struct mw_trace_python py = {0};
        int has_py = mw_trace_reader_python(t->r, &py) == 0 && py.version;
        char *label = mw_show(t->label, strlen(t->label), MW_SHOW_NAME_MAX, NULL);
        char *path = mw_show(t->path, strlen(t->path), MW_SHOW_NAME_MAX, NULL);
        char *version = has_py ? mw_show(py.version, strlen(py.version), 32, NULL) : NULL;
        printf("trace %s: %s, started %s.%06ld UTC (+%.6fs)%s%s\n", label ? label : "?",
               path ? path : "?", when, (long)(t->start_unix_ns % 1000000000 / 1000),
               (double)t->offset_ns / 1e9, version ? ", python " : "", version ? version : "");
        free(label);
        free(path);
        free(version);
        mw_trace_python_free(&py);
    }
}

/* The listing's exit status after its rows. */
static int end_listing(const struct mw_timeline *tl, int read_rc, int out_rc, uint64_t rows,
                       const struct mw_trace_filter *f)
{
    if (read_rc < 0)
        return MW_EXIT_FAILURE;   /* the merge said which trace */
    if (out_rc < 0) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    if (rows == 0 && !f->tag && !f->has_since && !f->has_until)
        mw_cli_error("none of the %zu traces recorded a change", tl->n);
    return MW_EXIT_OK;
}

static int list_changes(struct mw_timeline *tl, const struct mw_trace_filter *f,
                        enum mw_format format)
{
    static const char *const tfirst[] = {"trace"};
    static const char *const dfirst[] = {"trace", "rank", "trace_file", "unix_ns"};
    int table = format == MW_FORMAT_TABLE;
    int nfirst = table ? 1 : 4, nrest = table ? table_ncols : data_ncols;
    if (nfirst + nrest > MAX_COLS) {
        mw_cli_error("too many columns");
        return MW_EXIT_FAILURE;
    }
    const char **names = column_names(table ? tfirst : dfirst, nfirst,
                                      table ? table_cols : data_cols, nrest);
    mw_output *o = names ? mw_output_begin(stdout, format, nfirst + nrest, names) : NULL;
    free(names);
    mw_timeline_iter *it = NULL;
    if (!o) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    if (table)
        print_traces(tl);
    int rc = mw_timeline_iter_start(tl, f, &it), out_rc = 0;
    struct mw_trace_row row;
    size_t i;
    uint64_t t;
    while (rc == 0 && (!f->limit || mw_output_rows(o) < f->limit) &&
           (rc = mw_timeline_iter_next(it, &row, &i, &t)) == 1) {
        rc = 0;
        struct mw_cell c[MAX_COLS];
        struct row_text rt = {0};
        memset(c, 0, sizeof c);
        text_cell(&c[0], tl->t[i].label);
        if (table) {
            change_table_cells(c + 1, &row, &rt);
            c[2].type = MW_CELL_REAL;   /* time: seconds on the timeline */
            c[2].r = (double)t / 1e9;
        } else {
            if (tl->t[i].has_rank)
                int_cell(&c[1], tl->t[i].rank);
            text_cell(&c[2], tl->t[i].path);
            uint64_t unix_ns = (uint64_t)tl->origin_unix_ns + t;
            uint_cell(&c[3], unix_ns < t ? UINT64_MAX : unix_ns);
            change_data_cells(c + 4, &row);
            uint_cell(&c[5], t);        /* time_ns: on the timeline */
        }
        out_rc = mw_output_row(o, c);
        free(rt.where);
        if (out_rc < 0)
            break;
    }
    uint64_t rows = mw_output_rows(o);
    if (mw_output_end(o) < 0)
        out_rc = -1;
    mw_timeline_iter_finish(it);
    return end_listing(tl, rc, out_rc, rows, f);
}

/* ---- --summary ---- */

/* Totals over several tags' summaries: a trace's, or the whole timeline's. */
struct totals {
    uint64_t objects, changes, ranges, bytes, elements, deltas;
    uint64_t nan_appeared, nan_gone, inf_appeared, inf_gone;
    double delta_min, delta_max, delta_sum;
    int has_numbers;
};

static void add_totals(struct totals *a, const struct mw_trace_tag_summary *s)
{
    a->objects += s->objects;
    a->changes += s->changes;
    a->ranges += s->ranges;
    a->bytes += s->bytes;
    if (!s->has_numbers)
        return;
    if (s->deltas) {
        a->delta_min = a->deltas && a->delta_min < s->delta_min ? a->delta_min : s->delta_min;
        a->delta_max = a->deltas && a->delta_max > s->delta_max ? a->delta_max : s->delta_max;
        a->delta_sum += s->delta_mean * (double)s->deltas;
        a->deltas += s->deltas;
    }
    a->has_numbers = 1;
    a->elements += s->elements;
    a->nan_appeared += s->nan_appeared;
    a->nan_gone += s->nan_gone;
    a->inf_appeared += s->inf_appeared;
    a->inf_gone += s->inf_gone;
}

struct summary_ctx {
    mw_output *o;
    int table;
    const char *trace;          /* the trace column */
    struct totals trace_sum, all;
};

/* A real number: a short text in tables, the number elsewhere. */
static void real_cell(struct mw_cell *c, double v, int table, char *buf, size_t size)
{
    if (table) {
        snprintf(buf, size, "%.6g", v);
        text_cell(c, buf);
    } else {
        c->type = MW_CELL_REAL;
        c->r = v;
    }
}

/* One summary row: a tag's (s), or totals (s NULL) under the name tag. */
static int summary_cells(struct summary_ctx *sc, const struct mw_trace_tag_summary *s,
                         const struct totals *sum, const char *trace, const char *tag)
{
    struct mw_cell c[MAX_COLS];
    char dmin[32], dmax[32], dmean[32];
    memset(c, 0, sizeof c);
    text_cell(&c[0], trace);
    text_cell(&c[1], tag);
    uint_cell(&c[2], sum->objects);
    uint_cell(&c[3], sum->changes);
    uint_cell(&c[4], sum->ranges);
    uint_cell(&c[5], sum->bytes);
    if (s && s->has_changes) {
        uint_cell(&c[6], s->first_seq);
        uint_cell(&c[7], s->last_seq);
    }
    if (sum->has_numbers) {
        uint_cell(&c[8], sum->elements);
        if (sum->deltas) {
            real_cell(&c[9], sum->delta_min, sc->table, dmin, sizeof dmin);
            real_cell(&c[10], sum->delta_max, sc->table, dmax, sizeof dmax);
            real_cell(&c[11], sum->delta_sum / (double)sum->deltas, sc->table, dmean,
                      sizeof dmean);
        }
        uint_cell(&c[12], sum->nan_appeared);
        uint_cell(&c[13], sum->nan_gone);
        uint_cell(&c[14], sum->inf_appeared);
        uint_cell(&c[15], sum->inf_gone);
        if (s && s->has_first_nonfinite)
            uint_cell(&c[16], s->first_nonfinite_seq);
    }
    return mw_output_row(sc->o, c) < 0 ? 1 : 0;
}

static int summary_row(const struct mw_trace_tag_summary *s, void *ctx)
{
    struct summary_ctx *sc = ctx;
    struct totals one = {0};
    add_totals(&one, s);
    add_totals(&sc->trace_sum, s);
    add_totals(&sc->all, s);
    return summary_cells(sc, s, &one, sc->trace, s->tag);
}

/* Each trace's tags, then its totals (tag "(all tags)" in tables, null elsewhere), then
 * the whole timeline's (trace "(all traces)" in tables, null elsewhere). */
static int summarize(struct mw_timeline *tl, const struct mw_trace_filter *f,
                     enum mw_format format)
{
    static const char *const cols[] = {"trace", "tag", "objects", "changes", "ranges",
                                       "bytes_changed", "first_seq", "last_seq",
                                       "elements_changed", "delta_min", "delta_max",
                                       "delta_mean", "nan_appeared", "nan_gone",
                                       "inf_appeared", "inf_gone", "first_nonfinite_seq"};
    struct summary_ctx sc = {.table = format == MW_FORMAT_TABLE};
    if (sc.table)
        print_traces(tl);
    if (!(sc.o = mw_output_begin(stdout, format, (int)(sizeof cols / sizeof *cols), cols))) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    const char *all_tags = sc.table ? "(all tags)" : NULL;
    int rc = 0;
    for (size_t i = 0; i < tl->n && rc == 0; i++) {
        sc.trace = tl->t[i].label;
        memset(&sc.trace_sum, 0, sizeof sc.trace_sum);
        rc = mw_trace_reader_summary(tl->t[i].r, f, summary_row, &sc);
        if (rc < 0) {
            mw_cli_error("cannot read %s: %s", mw_show_name(tl->t[i].path),
                         mw_trace_reader_errmsg(tl->t[i].r));
            mw_output_end(sc.o);
            return MW_EXIT_FAILURE;
        }
        if (rc == 0)
            rc = summary_cells(&sc, NULL, &sc.trace_sum, sc.trace, all_tags);
    }
    if (rc == 0)
        rc = summary_cells(&sc, NULL, &sc.all, sc.table ? "(all traces)" : NULL, all_tags);
    if (mw_output_end(sc.o) < 0 || rc > 0) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    return MW_EXIT_OK;
}

int mw_timeline_query(char *const *paths, size_t n, const struct mw_trace_filter *f,
                      enum mw_format format, int summary, int elements, const char *sql)
{
    /* A statement of the user's own runs on one connection, over one trace's tables. */
    if (sql) {
        mw_cli_error("'--sql' reads one trace at a time: give it one trace");
        return MW_EXIT_USAGE;
    }
    if (elements) {
        mw_cli_error("'--elements' reads one trace at a time: give it one trace");
        return MW_EXIT_USAGE;
    }
    struct mw_timeline tl;
    int status = mw_timeline_open(paths, n, &tl);
    if (status)
        return status;
    if (!f->tag || (status = mw_timeline_check_tag(&tl, f->tag)) == 0)
        status = summary ? summarize(&tl, f, format) : list_changes(&tl, f, format);
    mw_timeline_close(&tl);
    return status;
}
