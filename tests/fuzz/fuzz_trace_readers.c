/* libFuzzer harness over the trace readers: whatever file a user hands to `memwatch query`,
 * `memwatch diff` or `memwatch report` must get a message and an exit status, never a
 * crash, a hang or unbounded memory (issue 9, "Hostile trace files").
 *
 * An input is one of three things:
 *   - a trace file as bytes (any bytes: valid traces, truncated or corrupted ones); it is
 *     written to a temporary file and opened as the user's TRACE would be;
 *   - "SQL\n" followed by SQL text: a fresh trace is made from the embedded schema and the
 *     text is run on it (errors ignored). Byte-level mutation of SQLite files mostly finds
 *     SQLite's own page checks; this form reaches traces that are well-formed SQLite but
 *     hold hostile values (negative or huge sizes, blobs shorter than their length,
 *     ranges past the object's end, missing objects, odd formats and shapes);
 *   - "SCHEMA\n" followed by bytes, two per step: which of memwatch's tables or views,
 *     and what takes its place (a view over a recursive CTE that never ends, a view of
 *     huge values, a copy behind a view, a virtual table, a computed column, a trigger, a
 *     missing or an extra column, a cross join, a function no reader may call). SQL text
 *     seldom mutates into such a schema; this form makes every combination reachable
 *     (issue 14, item 2: hostile schemas hung the readers or filled the memory).
 * Each input then goes through the reader API (reader.h), the report (report.h) and the
 * subcommands' own entry points cmd_query/cmd_diff/cmd_report, called in this process
 * (not the binary) with their output sent to /dev/null.
 *
 * Built by -DMEMWATCH_FUZZ=ON with clang as fuzz_trace_readers; the same file, with
 * replay_main.c instead of libFuzzer, is the normal suite's test fuzz.replay over the
 * corpus and every regression input. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "reader.h"
#include "report.h"
#include "schema.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX - 16];
static char path[PATH_MAX];

static void remove_trace(void);

static void remove_dir(void)
{
    remove_trace();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mw-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof path, "%s/t.db", dir);
    /* Everything the commands print goes nowhere; their messages on stderr stay (the fuzz
     * run closes stderr with -close_fd_mask=2). */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        fflush(stdout);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    opterr = 0;
    atexit(remove_dir);
    return 0;
}

static void remove_trace(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

/* The rows of a "SCHEMA\n" input, before its steps: a few of everything, so that a view
 * that copies a table has something to copy. */
static const char seed_rows[] =
    "INSERT INTO objects (id, tag, size, format, itemsize, ndim, shape, strides, watched_ns)"
    " VALUES (1, 'a', 8, '<f', 4, 1, '[2]', '[4]', 1), (2, 'b', 4, 'B', 1, 1, '[4]', '[1]', 2);"
    "INSERT INTO sites (id, file, line) VALUES (1, 'x.py', 3), (2, 'x.py', 4);"
    "INSERT INTO change_rows (seq, time_ns, object_id, site_id) VALUES (1, 5, 1, 1),"
    " (2, 6, 2, 2);"
    "INSERT INTO ranges VALUES (1, 0, 4, x'00000000', x'0000c07f', 1),"
    " (2, 1, 2, x'0000', x'0102', 1);"
    "INSERT INTO change_stats (seq, elements, nan_appeared) VALUES (1, 1, 1);";

/* Keeps SQL inputs from leaving the temporary file or running forever. */
static int deny_attach(void *ctx, int action, const char *a, const char *b, const char *c,
                       const char *d)
{
    (void)ctx, (void)a, (void)b, (void)c, (void)d;
    return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

static int stop_long(void *ctx)
{
    return ++*(int *)ctx > 2000;   /* x 1000 virtual machine steps */
}

/* The columns of table name in db, "a, b, c" (malloc'd), or NULL. */
static char *columns_of(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s;
    char *cols = NULL;
    if (sqlite3_prepare_v2(db, "SELECT group_concat(name, ', ') FROM pragma_table_info(?1)", -1,
                           &s, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        cols = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return cols;
}

/* cols ("a, b") with each name as "<expr> AS name", into out. */
static void each_column(char *out, size_t size, const char *cols, const char *expr)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = cols; *p && n < size;) {
        size_t len = strcspn(p, ",");
        n += (size_t)snprintf(out + n, size - n, "%s%s AS %.*s", n ? ", " : "", expr, (int)len, p);
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
}

/* One step of a "SCHEMA\n" input: what of kind takes the place of target. */
static void schema_step(sqlite3 *db, unsigned target, unsigned kind)
{
    static const char *const targets[] = {"objects", "change_rows", "ranges", "meta", "run",
                                          "change_stats", "change_ranges", "tag_summary",
                                          "change_numbers", "tag_numbers"};
    const char *t = targets[target % (sizeof targets / sizeof *targets)];
    char *cols = columns_of(db, t);
    if (!cols)
        return;
    /* Its rows are kept aside first (t_saved), then it goes, table or view. */
    char drop[512], sel[2048], sql[8192];
    snprintf(drop, sizeof drop, "CREATE TABLE IF NOT EXISTS %s_saved AS SELECT * FROM %s; "
             "DROP %s %s", t, t, target % 10 < 6 ? "TABLE" : "VIEW", t);
    size_t first_len = strcspn(cols, ",");
    const char *rest = cols + first_len + (cols[first_len] ? 2 : 0);
    switch (kind % 10) {
    case 0:   /* a view over a recursive CTE that never ends */
        each_column(sel, sizeof sel, cols, "i");
        snprintf(sql, sizeof sql, "%s; CREATE VIEW %s AS WITH RECURSIVE n(i) AS (SELECT 1 UNION "
                 "ALL SELECT i + 1 FROM n) SELECT %s FROM n", drop, t, sel);
        break;
    case 1:   /* a view of 50 MB values, a thousand rows */
        each_column(sel, sizeof sel, cols, "hex(zeroblob(25000000))");
        snprintf(sql, sizeof sql, "%s; CREATE VIEW %s AS WITH RECURSIVE n(i) AS (SELECT 1 UNION "
                 "ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT %s FROM n", drop, t, sel);
        break;
    case 2:   /* the same rows behind a view */
        snprintf(sql, sizeof sql, "%s; CREATE VIEW %s AS SELECT * FROM %s_saved", drop, t, t);
        break;
    case 3:   /* a virtual table */
        snprintf(sql, sizeof sql, "%s; CREATE VIRTUAL TABLE %s USING fts4(%s)", drop, t, cols);
        break;
    case 4:   /* its first column computed */
        snprintf(sql, sizeof sql, "%s; CREATE TABLE %s (%.*s AS (hex(zeroblob(25000000))) "
                 "VIRTUAL%s%s)", drop, t, (int)first_len, cols, *rest ? ", " : "", rest);
        break;
    case 5:   /* a trigger */
        snprintf(sql, sizeof sql, "CREATE TRIGGER %s_trigger AFTER INSERT ON %s BEGIN SELECT 1; "
                 "END", t, t);
        break;
    case 6:   /* its first column missing */
        if (!*rest)
            break;
        snprintf(sql, sizeof sql, "%s; CREATE TABLE %s (%s); INSERT INTO %s SELECT %s FROM "
                 "%s_saved", drop, t, rest, t, rest, t);
        break;
    case 7:   /* a cross join of its rows */
        snprintf(sql, sizeof sql, "%s; CREATE VIEW %s AS SELECT a.* FROM %s_saved AS a, %s_saved "
                 "AS b, %s_saved AS c, %s_saved AS d", drop, t, t, t, t, t);
        break;
    case 8:   /* a view that calls what no reader may call */
        each_column(sel, sizeof sel, cols, "fts3_tokenizer('simple')");
        snprintf(sql, sizeof sql, "%s; CREATE VIEW %s AS SELECT %s", drop, t, sel);
        break;
    default:  /* an extra column, as a later schema version may add: still a trace */
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN extra_%u TEXT DEFAULT 'x'", t,
                 kind & 0xff);
        break;
    }
    if (kind % 10 != 6 || *rest)
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    free(cols);
}

/* A fresh trace from the embedded schema, open on *db for the caller to change. */
static int fresh_trace(sqlite3 **db, int *steps)
{
    if (sqlite3_open(path, db) != SQLITE_OK)
        return -1;
    sqlite3_limit(*db, SQLITE_LIMIT_LENGTH, 1 << 20);
    /* A scratch file: no fsync, no journal file. */
    sqlite3_exec(*db, "PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY", NULL, NULL,
                 NULL);
    sqlite3_exec(*db, mw_trace_schema_sql, NULL, NULL, NULL);
    sqlite3_set_authorizer(*db, deny_attach, NULL);
    sqlite3_progress_handler(*db, 1000, stop_long, steps);
    return 0;
}

static int write_input(const uint8_t *data, size_t size)
{
    remove_trace();
    if (size >= 7 && memcmp(data, "SCHEMA\n", 7) == 0) {
        sqlite3 *db = NULL;
        int steps = 0;
        if (fresh_trace(&db, &steps) == 0) {
            sqlite3_exec(db, seed_rows, NULL, NULL, NULL);
            for (size_t i = 7; i + 1 < size && i < 7 + 2 * 8; i += 2)
                schema_step(db, data[i], data[i + 1]);
        }
        sqlite3_close(db);
        return 0;
    }
    if (size >= 4 && memcmp(data, "SQL\n", 4) == 0) {
        char *sql = malloc(size - 3);
        if (!sql)
            return -1;
        memcpy(sql, data + 4, size - 4);
        sql[size - 4] = '\0';
        sqlite3 *db = NULL;
        int steps = 0;
        if (fresh_trace(&db, &steps) == 0)
            sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_close(db);
        free(sql);
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

static int count_summary(const struct mw_trace_tag_summary *s, void *ctx)
{
    (void)s;
    ++*(int *)ctx;
    return 0;
}

/* The reader API as query and diff use it. Returns the first tags (up to 3) for the
 * commands below; the caller frees them. */
static char **read_api(void)
{
    mw_trace_reader *r = NULL;
    int version = 0;
    char **keep = NULL;
    if (mw_trace_reader_open(path, &r, &version) != 0) {
        if (r)
            (void)mw_trace_reader_errmsg(r);
        mw_trace_reader_close(r);
        return NULL;
    }
    uint64_t objects = 0, changes = 0;
    mw_trace_reader_counts(r, &objects, &changes);

    char **tags = NULL;
    size_t ntags = 0;
    if (mw_trace_reader_tags(r, &tags, &ntags) == 0 && tags) {
        keep = calloc(4, sizeof *keep);
        for (size_t i = 0; keep && i < ntags && i < 3; i++) {
            mw_trace_reader_has_tag(r, tags[i]);
            keep[i] = strdup(tags[i]);
        }
        mw_trace_reader_free_tags(tags);
    }

    struct mw_trace_filter filters[3] = {{0}};
    filters[1].tag = keep ? keep[0] : NULL;
    filters[1].limit = 7;
    filters[2].has_since = filters[2].has_until = 1;
    filters[2].since = 2;
    filters[2].until = 40;
    for (int k = 0; k < 3; k++) {
        mw_trace_iter *it = NULL;
        if (mw_trace_iter_start(r, &filters[k], &it) == 0) {
            struct mw_trace_row row;
            int n = 0;
            /* Touch every byte a row claims to have, so that a length that disagrees with
             * its blob is found here by ASan rather than later by a user. */
            volatile unsigned sum = 0;
            while (n++ < 10000 && mw_trace_iter_next(it, &row) == 1) {
                for (uint64_t b = 0; b < row.length && b < (1u << 20); b++) {
                    if (row.old)
                        sum += row.old[b];
                    if (row.new_)
                        sum += row.new_[b];
                }
                if (row.tag)
                    sum += (unsigned)strlen(row.tag);
            }
            (void)sum;
        }
        mw_trace_iter_finish(it);
        int n = 0;
        mw_trace_reader_summary(r, &filters[k], count_summary, &n);
    }

    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(mw_trace_reader_db(r), "SELECT id FROM objects LIMIT 8", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const struct mw_elem_layout *layout = NULL;
            int typed = 0;
            mw_trace_reader_layout(r, (uint64_t)sqlite3_column_int64(st, 0), &layout, &typed);
        }
    }
    sqlite3_finalize(st);
    mw_trace_reader_layout(r, 0, &(const struct mw_elem_layout *){NULL}, &(int){0});

    FILE *null = fopen("/dev/null", "w");
    if (null) {
        struct mw_report_options opt = {.trace_name = "fuzz.db", .max_marks = 50};
        struct mw_report_summary sum;
        char err[256];
        mw_report_write(mw_trace_reader_db(r), null, &opt, &sum, err, sizeof err);
        fclose(null);
    }
    mw_trace_reader_close(r);
    return keep;
}

static void run_command(int (*cmd)(int, char **), const char *const *args)
{
    char *argv[16];
    int argc = 0;
    while (args[argc] && argc < 15) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    optind = 0;   /* a fresh getopt state, as main() gives each command */
    cmd(argc, argv);
    fflush(stdout);
}

static void run_commands(char **tags)
{
    const char *const queries[][12] = {
        {"query", path, NULL},
        {"query", "--format", "json", path, NULL},
        {"query", "--format", "csv", "--elements", path, NULL},
        {"query", "--elements", path, NULL},
        {"query", "--summary", path, NULL},
        {"query", "--summary", "--format", "jsonl", "--since", "1", "--until", "9", path, NULL},
        {"query", "--format", "jsonl", "--limit", "3", "--since", "2", path, NULL},
        {"query", "--sql", "SELECT * FROM change_ranges", "--format", "json", path, NULL},
        {"query", "--sql", "SELECT * FROM objects", path, NULL},
    };
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++)
        run_command(cmd_query, queries[i]);
    for (int t = 0; tags && tags[t]; t++) {
        const char *tag = tags[t];
        const char *const q[] = {"query", "--tag", tag, "--elements", "--format", "json", path,
                                 NULL};
        run_command(cmd_query, q);
        const char *const d1[] = {"diff", "-t", path, tag, NULL};
        const char *const d2[] = {"diff", "-t", path, "--bytes", "--color=always", "-C", "5", tag,
                                  NULL};
        const char *const d3[] = {"diff", "-t", path, "--from", "1", "--to", "1000000", tag, NULL};
        const char *const d4[] = {"diff", "-t", path, "--from", "0", "--to", "3", "-C", "0", tag,
                                  NULL};
        run_command(cmd_diff, d1);
        run_command(cmd_diff, d2);
        run_command(cmd_diff, d3);
        run_command(cmd_diff, d4);
    }
    const char *const nosuch[] = {"diff", "-t", path, "no such tag", NULL};
    run_command(cmd_diff, nosuch);
    /* The report's own aggregation ran in read_api(); this is the command around it. */
    const char *const rep[] = {"report", "--marks", "1", "-o", "-", path, NULL};
    run_command(cmd_report, rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (write_input(data, size) != 0)
        return 0;
    char **tags = read_api();
    run_commands(tags);
    for (int t = 0; tags && t < 3; t++)
        free(tags[t]);
    free(tags);
    remove_trace();
    return 0;
}
