/* libFuzzer harness over the trace readers: whatever file a user hands to `memwatch query`,
 * `memwatch diff` or `memwatch report` must get a message and an exit status, never a
 * crash, a hang or unbounded memory (issue 9, "Hostile trace files").
 *
 * An input is one of two things:
 *   - a trace file as bytes (any bytes: valid traces, truncated or corrupted ones); it is
 *     written to a temporary file and opened as the user's TRACE would be;
 *   - "SQL\n" followed by SQL text: a fresh trace is made from the embedded schema and the
 *     text is run on it (errors ignored). Byte-level mutation of SQLite files mostly finds
 *     SQLite's own page checks; this form reaches traces that are well-formed SQLite but
 *     hold hostile values (negative or huge sizes, blobs shorter than their length,
 *     ranges past the object's end, missing objects, odd formats and shapes).
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

static int write_input(const uint8_t *data, size_t size)
{
    remove_trace();
    if (size >= 4 && memcmp(data, "SQL\n", 4) == 0) {
        char *sql = malloc(size - 3);
        if (!sql)
            return -1;
        memcpy(sql, data + 4, size - 4);
        sql[size - 4] = '\0';
        sqlite3 *db = NULL;
        int steps = 0;
        if (sqlite3_open(path, &db) == SQLITE_OK) {
            sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
            /* A scratch file: no fsync, no journal file. */
            sqlite3_exec(db, "PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY", NULL,
                         NULL, NULL);
            sqlite3_exec(db, mw_trace_schema_sql, NULL, NULL, NULL);
            sqlite3_set_authorizer(db, deny_attach, NULL);
            sqlite3_progress_handler(db, 1000, stop_long, &steps);
            sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
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
