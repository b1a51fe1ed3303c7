/* src/trace/writer.c: create (and -EEXIST without force), apply records, batches, the
 * record stream from a pipe, the end of the run; then the file read back with SQLite. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_error.h"
#include "record.h"
#include "unit.h"
#include "writer.h"

static char dir[] = "/tmp/mw-test-writer-XXXXXX";

static const char *tmp(const char *name)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* One integer from a query, or -1. */
static int64_t q_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    } else {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return v;
}

static int q_text_is(const char *path, const char *sql, const char *want)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            ok = t && strcmp(t, want) == 0;
            if (!ok)
                fprintf(stderr, "%s: got '%s', want '%s'\n", sql, t ? t : "(null)", want);
        }
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return ok;
}

static void encode_sample(struct mw_rec_buf *b)
{
    struct mw_rec_hello h = {"3.11.2", "mprotect", 4321, 4096};
    int64_t shape[1] = {8}, strides[1] = {1};
    struct mw_rec_object o = {.id = 1, .tag = "weights", .type_name = "bytearray",
                              .address = 4096, .size = 8, .format = "B", .itemsize = 1,
                              .ndim = 1, .shape = shape, .strides = strides, .time_ns = 10};
    unsigned char old[2] = {0, 0}, new_[2] = {0xab, 0xcd};
    struct mw_rec_range g[2] = {{2, 2, old, new_}, {6, 1, NULL, new_}};
    struct mw_rec_change c = {.seq = 1, .time_ns = 20, .object_id = 1, .thread_id = 77,
                              .thread_name = "MainThread", .file = "t.py", .line = 3,
                              .function = "<module>", .nranges = 2, .ranges = g};
    struct mw_rec_unwatch u = {1, 30};
    struct mw_rec_stats s = {5, 6, 1, 1, 1};
    if (mw_rec_encode_hello(b, &h) || mw_rec_encode_object(b, &o) ||
        mw_rec_encode_change(b, &c) || mw_rec_encode_unwatch(b, &u) ||
        mw_rec_encode_stats(b, &s))
        abort();
}

static void test_create_exists_force(void)
{
    const char *path = tmp("a.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), -EEXIST);
    CHECK(w == NULL);
    CHECK(exists(path));
    /* with force: replaced, and a stale -wal next to it goes too */
    FILE *f = fopen(tmp("a.db-wal"), "w");
    fputs("stale", f);
    fclose(f);
    CHECK_EQ_INT(mw_trace_writer_create(path, 1, &w), 0);
    CHECK(!exists(tmp("a.db-wal")) || q_int(path, "SELECT count(*) FROM objects") == 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(q_int(path, "PRAGMA user_version"), 1);
    CHECK(q_text_is(path, "SELECT value FROM meta WHERE key = 'schema_version'", "1"));
    CHECK(q_text_is(path, "PRAGMA journal_mode", "delete"));
    CHECK(!exists(tmp("a.db-wal")));
    /* a path that cannot be created */
    CHECK_EQ_INT(mw_trace_writer_create("/nonexistent-dir/x.db", 0, &w), -ENOENT);
    CHECK_EQ_INT(mw_trace_writer_create(dir, 1, &w), -EISDIR);
    CHECK_EQ_INT(mw_trace_writer_close(NULL), 0);
}

static void test_apply_and_read_back(void)
{
    const char *path = tmp("b.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    char *argv[] = {"t.py", "--say \"hi\""};
    struct mw_run_info run = {"script", "t.py", 2, argv, "/tmp", 1700000000000000000};
    CHECK_EQ_INT(mw_trace_writer_begin_run(w, &run), 0);

    struct mw_rec_buf b = {0};
    encode_sample(&b);
    mw_rec_decoder *d;
    CHECK_EQ_INT(mw_rec_decoder_create(&d), 0);
    CHECK_EQ_INT(mw_rec_decoder_feed(d, b.data, b.len), 0);
    struct mw_rec_decoded r;
    int n = 0;
    while (mw_rec_decoder_next(d, &r) == 1) {
        CHECK_EQ_INT(mw_trace_writer_apply(w, &r), 0);
        n++;
    }
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(mw_trace_writer_commit(w), 0);
    /* committed: visible to another connection while the writer is still open */
    CHECK_EQ_INT(q_int(path, "SELECT count(*) FROM ranges"), 2);
    struct mw_run_end end = {1700000001000000000, 1000000000, 3, 0, 0};
    CHECK_EQ_INT(mw_trace_writer_end_run(w, &end), 0);
    struct mw_trace_totals t;
    mw_trace_writer_totals(w, &t);
    CHECK_EQ_INT(t.objects, 1);
    CHECK_EQ_INT(t.changes, 1);
    CHECK_EQ_INT(t.ranges, 2);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);

    CHECK(q_text_is(path, "SELECT argv FROM run", "[\"t.py\", \"--say \\\"hi\\\"\"]"));
    CHECK(q_text_is(path, "SELECT mode || ' ' || target || ' ' || cwd FROM run", "script t.py /tmp"));
    CHECK(q_text_is(path, "SELECT python_version FROM run", "3.11.2"));
    CHECK_EQ_INT(q_int(path, "SELECT pid FROM run"), 4321);
    CHECK_EQ_INT(q_int(path, "SELECT exit_status FROM run"), 3);
    CHECK_EQ_INT(q_int(path, "SELECT end_signal FROM run"), -2);
    CHECK(q_text_is(path, "SELECT ended_by FROM run", "exit"));
    CHECK_EQ_INT(q_int(path, "SELECT changes_dropped FROM run"), 0);
    CHECK_EQ_INT(q_int(path, "SELECT faults + checks FROM run"), 11);
    CHECK(q_text_is(path, "SELECT value FROM meta WHERE key = 'backend'", "mprotect"));
    CHECK(q_text_is(path, "SELECT value FROM meta WHERE key = 'page_size'", "4096"));
    CHECK(q_text_is(path, "SELECT shape || strides FROM objects", "[8][1]"));
    CHECK_EQ_INT(q_int(path, "SELECT unwatched_ns FROM objects WHERE id = 1"), 30);
    CHECK(q_text_is(path, "SELECT old_hex || '>' || new_hex || ' ' || location FROM change_ranges"
                          " WHERE offset = 2", "0000>abcd t.py:3 <module>"));
    CHECK_EQ_INT(q_int(path, "SELECT count(*) FROM change_ranges WHERE old_hex IS NULL"
                             " AND complete = 0 AND new_hex = 'ab'"), 1);
    CHECK(q_text_is(path, "SELECT tag || ' ' || changes || ' ' || bytes_changed FROM tag_summary",
                    "weights 1 3"));
    CHECK(q_text_is(path, "PRAGMA integrity_check", "ok"));
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
}

static void test_consume_fd(void)
{
    const char *path = tmp("c.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    struct mw_rec_buf b = {0};
    encode_sample(&b);
    /* ...and a change cut short, as when the traced process dies mid-write */
    unsigned char x[3] = {1, 2, 3};
    struct mw_rec_range g = {0, 3, x, x};
    struct mw_rec_change c = {.seq = 2, .object_id = 1, .nranges = 1, .ranges = &g};
    size_t before = b.len;
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    b.len = before + (b.len - before) / 2;
    CHECK_EQ_INT(mw_rec_buf_flush(&b, p[1]), 0);
    close(p[1]);
    CHECK_EQ_INT(mw_trace_writer_consume_fd(w, p[0]), 0);
    close(p[0]);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(q_int(path, "SELECT count(*) FROM changes"), 1);
    CHECK_EQ_INT(q_int(path, "SELECT changes_dropped FROM run"), 1);
    mw_rec_buf_free(&b);

    /* a malformed stream: MW_EFORMAT, and what came before it is kept */
    path = tmp("d.db");
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    CHECK_EQ_INT(pipe(p), 0);
    encode_sample(&b);
    static const unsigned char junk[8] = {3, 0, 0, 0, 99, 0, 0, 0};
    CHECK_EQ_INT(write(p[1], b.data, b.len), b.len);
    CHECK_EQ_INT(write(p[1], junk, sizeof(junk)), sizeof(junk));
    close(p[1]);
    CHECK_EQ_INT(mw_trace_writer_consume_fd(w, p[0]), MW_EFORMAT);
    CHECK(strstr(mw_trace_writer_errmsg(w), "malformed") != NULL);
    close(p[0]);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(q_int(path, "SELECT count(*) FROM ranges"), 2);
    mw_rec_buf_free(&b);
}

/* Many small changes through the pipe: every one arrives, in several batches. */
static void test_many_changes(void)
{
    const char *path = tmp("e.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        struct mw_rec_buf b = {0};
        struct mw_rec_object o = {.id = 1, .tag = "many", .size = 1, .ndim = -1};
        mw_rec_encode_object(&b, &o);
        unsigned char v = 1;
        struct mw_rec_range g = {0, 1, &v, &v};
        for (uint64_t i = 1; i <= 50000; i++) {
            struct mw_rec_change c = {.seq = i, .object_id = 1, .nranges = 1, .ranges = &g};
            mw_rec_encode_change(&b, &c);
            if (b.len > 65536 && mw_rec_buf_flush(&b, p[1]))
                _exit(1);
        }
        _exit(mw_rec_buf_flush(&b, p[1]) ? 1 : 0);
    }
    close(p[1]);
    CHECK_EQ_INT(mw_trace_writer_consume_fd(w, p[0]), 0);
    close(p[0]);
    struct mw_trace_totals t;
    mw_trace_writer_totals(w, &t);
    CHECK_EQ_INT(t.changes, 50000);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(q_int(path, "SELECT count(*) FROM change_ranges WHERE tag = 'many'"), 50000);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_create_exists_force);
    RUN(test_apply_and_read_back);
    RUN(test_consume_fd);
    RUN(test_many_changes);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return UNIT_DONE();
}
