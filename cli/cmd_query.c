/* memwatch query: list the changes recorded in a trace, one row per changed byte range;
 * per-tag totals (--summary); or the rows of a read-only SQL statement (--sql). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "reader.h"

const char *const query_usage[] = {
    "usage: memwatch query [-s] [-f format] [-n limit] [--since seq] [--until seq] [--tag tag] [trace]",
    "       memwatch query [-f format] --sql statement [trace]",
    "",
    "List the changes recorded in a trace, one row per changed byte range, in order.",
    "",
    "    --tag tag          only the objects watched under this tag",
    "    --since seq        only changes numbered seq or later",
    "    --until seq        only changes numbered seq or earlier",
    "    -n, --limit n      at most n rows",
    "    -f, --format fmt   table (the default), csv, json or jsonl",
    "    -s, --summary      one row per tag: changes, bytes changed, first and last seq",
    "    --sql statement    run one read-only SQL statement on the trace, print its rows",
    "    -h, --help         show this help",
    "",
    "Without trace, the newest memwatch-*.db in the current directory is read.",
    "The trace's tables and views are described in memwatch-query(1).",
    NULL,
};

enum { OPT_TAG = 256, OPT_SINCE, OPT_UNTIL, OPT_SQL };

static const struct option query_options[] = {
    {"tag", required_argument, NULL, OPT_TAG},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"limit", required_argument, NULL, 'n'},
    {"format", required_argument, NULL, 'f'},
    {"summary", no_argument, NULL, 's'},
    {"sql", required_argument, NULL, OPT_SQL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* A decimal number without sign or junk. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

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

static const char *const table_cols[] = {"seq", "time", "tag", "offset", "length",
                                         "old", "new", "where", "thread"};
static const char *const data_cols[] = {"seq", "time_ns", "tag", "object_id", "offset",
                                        "length", "old_hex", "new_hex", "complete", "file",
                                        "line", "function", "thread", "thread_id"};
#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

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
    char where[1024], thread[64];
    while ((rc = mw_trace_iter_next(it, &row)) == 1) {
        struct mw_cell c[16];
        memset(c, 0, sizeof(c));
        if (table) {
            int_cell(&c[0], (int64_t)row.seq);
            time_cell(&c[1], row.time_ns);
            text_cell(&c[2], row.tag);
            int_cell(&c[3], (int64_t)row.offset);
            int_cell(&c[4], (int64_t)row.length);
            if (row.old)
                blob_cell(&c[5], row.old, row.length);
            else
                text_cell(&c[5], "?");
            blob_cell(&c[6], row.new_, row.length);
            if (row.file) {
                snprintf(where, sizeof(where), "%s:%d%s%s", row.file, row.line,
                         row.function ? " " : "", row.function ? row.function : "");
                text_cell(&c[7], where);
            } else {
                text_cell(&c[7], row.native_symbol);
            }
            if (row.thread_name) {
                text_cell(&c[8], row.thread_name);
            } else if (row.thread_id) {
                snprintf(thread, sizeof(thread), "%" PRId64, row.thread_id);
                text_cell(&c[8], thread);
            } else {
                text_cell(&c[8], NULL);
            }
        } else {
            int_cell(&c[0], (int64_t)row.seq);
            int_cell(&c[1], (int64_t)row.time_ns);
            text_cell(&c[2], row.tag);
            int_cell(&c[3], (int64_t)row.object_id);
            int_cell(&c[4], (int64_t)row.offset);
            int_cell(&c[5], (int64_t)row.length);
            if (row.old)
                blob_cell(&c[6], row.old, row.length);
            blob_cell(&c[7], row.new_, row.length);
            int_cell(&c[8], row.complete);
            text_cell(&c[9], row.file);
            if (row.line > 0)
                int_cell(&c[10], row.line);
            text_cell(&c[11], row.function);
            text_cell(&c[12], row.thread_name);
            if (row.thread_id)
                int_cell(&c[13], row.thread_id);
        }
        if (mw_output_row(o, c) < 0)
            break;
    }
    uint64_t rows = mw_output_rows(o);
    int out_rc = mw_output_end(o);
    mw_trace_iter_finish(it);
    if (rc < 0) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (out_rc < 0) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    if (rows == 0 && !f->tag && !f->has_since && !f->has_until) {
        /* Not an error: the run simply changed nothing that was watched. */
        uint64_t objects = 0, changes = 0;
        if (mw_trace_reader_counts(r, &objects, &changes) == 0 && changes == 0)
            mw_cli_error("'%s' is an empty trace: no changes were recorded (%" PRIu64
                         " object%s watched)",
                         path, objects, objects == 1 ? "" : "s");
    }
    return MW_EXIT_OK;
}

struct summary_ctx {
    mw_output *o;
};

static int summary_row(const struct mw_trace_tag_summary *s, void *ctx)
{
    struct summary_ctx *sc = ctx;
    struct mw_cell c[7];
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
    return mw_output_row(sc->o, c) < 0 ? 1 : 0;
}

static int summarize(mw_trace_reader *r, const char *path, const struct mw_trace_filter *f,
                     enum mw_format format)
{
    static const char *const cols[] = {"tag", "objects", "changes", "ranges", "bytes_changed",
                                       "first_seq", "last_seq"};
    struct summary_ctx sc = {mw_output_begin(stdout, format, NCOLS(cols), cols)};
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
        mw_cli_error("'%s' is an empty trace: no objects were watched", path);
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
    if (sqlite3_prepare_v2(db, sql, -1, &s, &tail) != SQLITE_OK) {
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
    /* The connection is read-only already; this gives the reason before SQLite's own
     * "attempt to write a readonly database". */
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
        int usage = sqlite3_errcode(db) == SQLITE_ERROR;
        mw_cli_error("cannot run the sql statement: %s", sqlite3_errmsg(db));
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

int cmd_query(int argc, char **argv)
{
    struct mw_trace_filter f = {0};
    enum mw_format format = MW_FORMAT_TABLE;
    int summary = 0;
    const char *sql = NULL;
    const char *since_arg = NULL;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":n:f:sh", query_options, NULL)) != -1) {
        switch (opt) {
        case OPT_TAG:
            f.tag = optarg;
            break;
        case OPT_SINCE:
            if (parse_u64(optarg, &f.since))
                return mw_cli_usage_error(query_usage,
                                          "'--since' needs a sequence number, not '%s'", optarg);
            f.has_since = 1;
            since_arg = optarg;
            break;
        case OPT_UNTIL:
            if (parse_u64(optarg, &f.until))
                return mw_cli_usage_error(query_usage,
                                          "'--until' needs a sequence number, not '%s'", optarg);
            f.has_until = 1;
            break;
        case 'n':
            if (parse_u64(optarg, &f.limit) || f.limit == 0)
                return mw_cli_usage_error(query_usage,
                                          "'--limit' needs a positive number, not '%s'", optarg);
            break;
        case 'f':
            if (mw_format_parse(optarg, &format))
                return mw_cli_usage_error(query_usage,
                                          "unknown format '%s' (use table, csv, json or jsonl)",
                                          optarg);
            break;
        case 's':
            summary = 1;
            break;
        case OPT_SQL:
            sql = optarg;
            break;
        case 'h':
            mw_cli_print_usage(stdout, query_usage);
            return MW_EXIT_OK;
        default:
            /* A long option: name it as typed (getopt sets optopt to its value). */
            if (optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0)
                optopt = 0;
            return mw_cli_bad_option(query_usage, opt, argv);
        }
    }
    if (argc - optind > 1)
        return mw_cli_usage_error(query_usage, "too many arguments: one trace at a time");
    if (sql && (summary || f.tag || f.has_since || f.has_until || f.limit))
        return mw_cli_usage_error(query_usage,
                                  "'--sql' cannot be combined with '--summary', '--tag', "
                                  "'--since', '--until' or '--limit'");
    if (summary && f.limit)
        return mw_cli_usage_error(query_usage, "'--limit' cannot be combined with '--summary'");
    if (f.has_since && f.has_until && f.since > f.until)
        return mw_cli_usage_error(query_usage, "'--since %s' is after '--until %" PRIu64 "'",
                                  since_arg, f.until);

    mw_trace_reader *r;
    char *path;
    int status = mw_cli_open_trace(optind < argc ? argv[optind] : NULL, &r, &path);
    if (status)
        return status;
    if (sql)
        status = run_sql(r, sql, format);
    else if (f.tag && (status = mw_cli_check_tag(r, path, f.tag)))
        ;
    else if (summary)
        status = summarize(r, path, &f, format);
    else
        status = list_changes(r, path, &f, format);
    mw_trace_reader_close(r);
    free(path);
    return status;
}
