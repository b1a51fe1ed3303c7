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
#include "trace_scratch.h"
#include "unit.h"
#include "writer.h"

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void encode_sample(struct mw_rec_buf *b)
{
    struct mw_rec_hello h = {.python_version = "3.11.2", .backend = "mprotect", .pid = 4321,
                             .page_size = 4096};
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
    struct mw_rec_stats s = {5, 6, 1, 1, 1, 1, 3, 2, 4, 0, 0};
    if (mw_rec_encode_hello(b, &h) || mw_rec_encode_object(b, &o) ||
        mw_rec_encode_change(b, &c) || mw_rec_encode_unwatch(b, &u) ||
        mw_rec_encode_stats(b, &s))
        abort();
}

static void test_create_exists_force(void)
{
    const char *path = scratch_path("a.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), -EEXIST);
    CHECK(w == NULL);
    CHECK(exists(path));
    /* with force: replaced, and a stale -wal next to it goes too */
    FILE *f = fopen(scratch_path("a.db-wal"), "w");
    fputs("stale", f);
    fclose(f);
    CHECK_EQ_INT(mw_trace_writer_create(path, 1, &w), 0);
    CHECK(!exists(scratch_path("a.db-wal")) || scratch_int(path, "SELECT count(*) FROM objects") == 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(scratch_int(path, "PRAGMA user_version"), 3);
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'schema_version'", "3"));
    CHECK(scratch_text_is(path, "PRAGMA journal_mode", "delete"));
    CHECK(!exists(scratch_path("a.db-wal")));
    /* a path that cannot be created */
    CHECK_EQ_INT(mw_trace_writer_create("/nonexistent-dir/x.db", 0, &w), -ENOENT);
    CHECK_EQ_INT(mw_trace_writer_create(scratch_dir, 1, &w), -EISDIR);
    CHECK_EQ_INT(mw_trace_writer_close(NULL), 0);
}

static void test_apply_and_read_back(void)
{
    const char *path = scratch_path("b.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    char *argv[] = {"t.py", "--say \"hi\""};
    struct mw_run_info run = {"script", "t.py", 2, argv, "/tmp", 1700000000000000000,
                              "/opt/py/bin/python3.12", "PATH", "3", "RANK"};
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
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM ranges"), 2);
    struct mw_run_end end = {1700000001000000000, 1000000000, 3, 0, 0};
    CHECK_EQ_INT(mw_trace_writer_end_run(w, &end), 0);
    struct mw_trace_totals t;
    mw_trace_writer_totals(w, &t);
    CHECK_EQ_INT(t.objects, 1);
    CHECK_EQ_INT(t.changes, 1);
    CHECK_EQ_INT(t.ranges, 2);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);

    CHECK(scratch_text_is(path, "SELECT argv FROM run", "[\"t.py\", \"--say \\\"hi\\\"\"]"));
    CHECK(scratch_text_is(path, "SELECT mode || ' ' || target || ' ' || cwd FROM run", "script t.py /tmp"));
    CHECK(scratch_text_is(path, "SELECT python_version FROM run", "3.11.2"));
    CHECK_EQ_INT(scratch_int(path, "SELECT pid FROM run"), 4321);
    CHECK_EQ_INT(scratch_int(path, "SELECT exit_status FROM run"), 3);
    CHECK_EQ_INT(scratch_int(path, "SELECT end_signal FROM run"), -2);
    CHECK(scratch_text_is(path, "SELECT ended_by FROM run", "exit"));
    CHECK_EQ_INT(scratch_int(path, "SELECT changes_dropped FROM run"), 0);
    CHECK_EQ_INT(scratch_int(path, "SELECT faults + checks FROM run"), 11);
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'backend'", "mprotect"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'page_size'", "4096"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'python_path'",
                          "/opt/py/bin/python3.12"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'python_chosen_by'", "PATH"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'rank'", "3"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'rank_from'", "RANK"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'changes_found_by_trap'", "0"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'changes_found_by_comparison'", "1"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'isolated_pages_peak'", "2"));
    CHECK(scratch_text_is(path, "SELECT value FROM meta WHERE key = 'open_pages_peak'", "4"));
    CHECK(scratch_text_is(path, "SELECT shape || strides FROM objects", "[8][1]"));
    CHECK_EQ_INT(scratch_int(path, "SELECT unwatched_ns FROM objects WHERE id = 1"), 30);
    CHECK(scratch_text_is(path, "SELECT old_hex || '>' || new_hex || ' ' || location FROM change_ranges"
                          " WHERE offset = 2", "0000>abcd t.py:3 <module>"));
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM change_ranges WHERE old_hex IS NULL"
                             " AND complete = 0 AND new_hex = 'ab'"), 1);
    CHECK(scratch_text_is(path, "SELECT tag || ' ' || changes || ' ' || bytes_changed FROM tag_summary",
                    "weights 1 3"));
    CHECK(scratch_text_is(path, "PRAGMA integrity_check", "ok"));
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
}

/* Streams n bytes through a pipe into a new writer at path: the consume status; err (512
 * bytes) receives the writer's message, and the writer is closed (checked). */
static int consume_bytes(const char *path, const unsigned char *bytes, size_t n, char *err)
{
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    CHECK_EQ_INT(write(p[1], bytes, n), n);
    close(p[1]);
    int rc = mw_trace_writer_consume_fd(w, p[0]);
    snprintf(err, 512, "%s", mw_trace_writer_errmsg(w));
    close(p[0]);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    return rc;
}

static void test_consume_fd(void)
{
    const char *path = scratch_path("c.db");
    char err[512];
    struct mw_rec_buf b = {0};
    encode_sample(&b);
    /* ...and a change cut short, as when the traced process dies mid-write */
    unsigned char x[3] = {1, 2, 3};
    struct mw_rec_range g = {0, 3, x, x};
    struct mw_rec_change c = {.seq = 2, .object_id = 1, .nranges = 1, .ranges = &g};
    size_t before = b.len;
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    b.len = before + (b.len - before) / 2;
    CHECK_EQ_INT(consume_bytes(path, b.data, b.len, err), 0);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM changes"), 1);
    CHECK_EQ_INT(scratch_int(path, "SELECT changes_dropped FROM run"), 1);
    mw_rec_buf_free(&b);

    /* a malformed stream: MW_EFORMAT, and what came before it is kept */
    path = scratch_path("d.db");
    encode_sample(&b);
    static const unsigned char junk[8] = {3, 0, 0, 0, 99, 0, 0, 0};
    unsigned char *bad = malloc(b.len + sizeof junk);
    if (!bad)
        abort();
    memcpy(bad, b.data, b.len);
    memcpy(bad + b.len, junk, sizeof junk);
    CHECK_EQ_INT(consume_bytes(path, bad, b.len + sizeof junk, err), MW_EFORMAT);
    free(bad);
    CHECK(strstr(err, "malformed") != NULL);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM ranges"), 2);
    mw_rec_buf_free(&b);
}

/* Many small changes through the pipe: every one arrives, in several batches. */
static void test_many_changes(void)
{
    const char *path = scratch_path("e.db");
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
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM change_ranges WHERE tag = 'many'"), 50000);
}

int main(void)
{
    if (scratch_begin("writer") < 0)
        return 1;
    RUN(test_create_exists_force);
    RUN(test_apply_and_read_back);
    RUN(test_consume_fd);
    RUN(test_many_changes);
    scratch_end();
    return UNIT_DONE();
}
