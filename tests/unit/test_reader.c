/* src/trace/reader.c: validation statuses (missing, not SQLite, not a trace, newer schema),
 * tags, filtered iteration and the per-tag summary, on a trace made by the writer; the
 * guards against hostile traces (reader_guard.h, reader_schema.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_error.h"
#include "reader.h"
#include "record.h"
#include "trace_scratch.h"
#include "unit.h"
#include "writer.h"

static int open_status(const char *path, int *version)
{
    mw_trace_reader *r;
    int rc = mw_trace_reader_open(path, &r, version);
    mw_trace_reader_close(r);
    return rc;
}

/* Two objects, tags a and b; changes 1 (a), 2 (b), 3 (a, two ranges). */
static void make_trace(const char *path)
{
    mw_trace_writer *w;
    if (mw_trace_writer_create(path, 1, &w))
        abort();
    struct mw_rec_buf b = {0};
    struct mw_rec_object oa = {.id = 1, .tag = "a", .size = 32, .ndim = -1};
    struct mw_rec_object ob = {.id = 2, .tag = "b", .size = 8, .ndim = -1};
    unsigned char o4[4] = {0, 0, 0, 0}, n4[4] = {1, 2, 3, 4};
    struct mw_rec_range g1 = {0, 4, o4, n4}, g3[2] = {{4, 2, NULL, n4}, {16, 4, n4, o4}};
    struct mw_rec_change c1 = {.seq = 1, .object_id = 1, .file = "x.py", .line = 5,
                               .nranges = 1, .ranges = &g1};
    struct mw_rec_change c2 = {.seq = 2, .object_id = 2, .nranges = 1, .ranges = &g1};
    struct mw_rec_change c3 = {.seq = 3, .object_id = 1, .thread_name = "T", .nranges = 2,
                               .ranges = g3};
    mw_rec_encode_object(&b, &oa);
    mw_rec_encode_object(&b, &ob);
    mw_rec_encode_change(&b, &c1);
    mw_rec_encode_change(&b, &c2);
    mw_rec_encode_change(&b, &c3);
    mw_rec_decoder *d;
    mw_rec_decoder_create(&d);
    mw_rec_decoder_feed(d, b.data, b.len);
    struct mw_rec_decoded rec;
    while (mw_rec_decoder_next(d, &rec) == 1)
        mw_trace_writer_apply(w, &rec);
    mw_trace_writer_close(w);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
}

static void test_validation(void)
{
    int version = 0;
    CHECK_EQ_INT(open_status(scratch_path("missing.db"), NULL), -ENOENT);
    CHECK_EQ_INT(open_status(scratch_dir, NULL), -EISDIR);
    FILE *f = fopen(scratch_path("text.db"), "w");
    fputs("this is plain text, long enough to fill an SQLite header of one hundred bytes and "
          "then some more text\n", f);
    fclose(f);
    CHECK_EQ_INT(open_status(scratch_path("text.db"), NULL), MW_EFORMAT);
    scratch_sql(scratch_path("other.db"), "CREATE TABLE t (x)");
    CHECK_EQ_INT(open_status(scratch_path("other.db"), NULL), MW_ETRACE);
    f = fopen(scratch_path("zero.db"), "w");
    fclose(f);
    CHECK_EQ_INT(open_status(scratch_path("zero.db"), NULL), MW_ETRACE);

    make_trace(scratch_path("t.db"));
    CHECK_EQ_INT(open_status(scratch_path("t.db"), &version), 0);
    CHECK_EQ_INT(version, 3);
    /* a newer version that old readers may still read, then one they may not */
    scratch_sql(scratch_path("t.db"), "PRAGMA user_version = 4");
    CHECK_EQ_INT(open_status(scratch_path("t.db"), &version), 0);
    CHECK_EQ_INT(version, 4);
    scratch_sql(scratch_path("t.db"), "UPDATE meta SET value = '4' WHERE key = 'read_compat'");
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(scratch_path("t.db"), &r, NULL), MW_ESCHEMA);
    CHECK(strstr(mw_trace_reader_errmsg(r), "version 4") != NULL);
    mw_trace_reader_close(r);
}

static void test_reading(void)
{
    const char *path = scratch_path("r.db");
    make_trace(path);
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), 0);
    char **tags;
    size_t n;
    CHECK_EQ_INT(mw_trace_reader_tags(r, &tags, &n), 0);
    CHECK(n == 2 && strcmp(tags[0], "a") == 0 && strcmp(tags[1], "b") == 0 && !tags[2]);
    mw_trace_reader_free_tags(tags);
    CHECK_EQ_INT(mw_trace_reader_has_tag(r, "a"), 1);
    CHECK_EQ_INT(mw_trace_reader_has_tag(r, "zz"), 0);
    uint64_t objects, changes;
    CHECK_EQ_INT(mw_trace_reader_counts(r, &objects, &changes), 0);
    CHECK(objects == 2 && changes == 3);

    struct mw_trace_filter f = {.tag = "a"};
    mw_trace_iter *it;
    struct mw_trace_row row;
    CHECK_EQ_INT(mw_trace_iter_start(r, &f, &it), 0);
    uint64_t seqs[8], offs[8];
    int k = 0;
    while (k < 8 && mw_trace_iter_next(it, &row) == 1) {
        seqs[k] = row.seq;
        offs[k++] = row.offset;
        if (row.seq == 3 && row.offset == 4)
            CHECK(row.old == NULL && row.complete == 0 && strcmp(row.thread_name, "T") == 0);
        if (row.seq == 1)
            CHECK(row.old && row.new_[3] == 4 && strcmp(row.file, "x.py") == 0 && row.line == 5);
    }
    mw_trace_iter_finish(it);
    CHECK_EQ_INT(k, 3);
    CHECK(seqs[0] == 1 && seqs[1] == 3 && seqs[2] == 3 && offs[1] == 4 && offs[2] == 16);

    struct mw_trace_filter g = {.has_since = 2, .since = 2, .has_until = 1, .until = 3,
                                .limit = 2};
    CHECK_EQ_INT(mw_trace_iter_start(r, &g, &it), 0);
    k = 0;
    while (mw_trace_iter_next(it, &row) == 1)
        seqs[k++] = row.seq;
    mw_trace_iter_finish(it);
    CHECK(k == 2 && seqs[0] == 2 && seqs[1] == 3);
    mw_trace_reader_close(r);
}

static int count_summary(const struct mw_trace_tag_summary *s, void *ctx)
{
    uint64_t *acc = ctx;
    if (strcmp(s->tag, "a") == 0) {
        acc[0] = s->changes;
        acc[1] = s->ranges;
        acc[2] = s->bytes;
        acc[3] = s->first_seq * 10 + s->last_seq;
    }
    acc[4]++;
    return 0;
}

static void test_summary(void)
{
    const char *path = scratch_path("s.db");
    make_trace(path);
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), 0);
    uint64_t acc[5] = {0};
    CHECK_EQ_INT(mw_trace_reader_summary(r, NULL, count_summary, acc), 0);
    CHECK(acc[0] == 2 && acc[1] == 3 && acc[2] == 10 && acc[3] == 13 && acc[4] == 2);
    mw_trace_reader_close(r);
}

/* The status of opening a copy of the writer's trace changed by sql; the message, when
 * one is wanted, must contain want. */
static int hostile_status(const char *name, const char *sql, const char *want)
{
    const char *path = scratch_path(name);
    make_trace(path);
    scratch_sql(path, sql);
    mw_trace_reader *r;
    int rc = mw_trace_reader_open(path, &r, NULL);
    if (want && !strstr(mw_trace_reader_errmsg(r), want)) {
        fprintf(stderr, "%s: message '%s' lacks '%s'\n", name, mw_trace_reader_errmsg(r), want);
        rc = 12345;
    }
    mw_trace_reader_close(r);
    return rc;
}

static void test_hostile_schema(void)
{
    /* objects as a view over a recursive CTE: refused before anything reads it */
    CHECK_EQ_INT(hostile_status("view.db",
                                "DROP TABLE objects; CREATE VIEW objects AS WITH RECURSIVE n(id)"
                                " AS (SELECT 1 UNION ALL SELECT id + 1 FROM n) SELECT id, 'x' AS"
                                " tag, 8 AS size FROM n",
                                "'objects' is a view, not a table"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("vtab.db", "DROP TABLE ranges; CREATE VIRTUAL TABLE ranges USING"
                                " fts4(seq, offset, length, old, new, complete)",
                                "'ranges' is a virtual table"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("trigger.db", "CREATE TRIGGER t AFTER INSERT ON objects BEGIN"
                                " SELECT 1; END", "trigger ('t')"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("generated.db", "ALTER TABLE run ADD COLUMN big TEXT AS"
                                " (hex(zeroblob(50000000))) VIRTUAL", "'big' of table 'run'"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("missing.db", "DROP VIEW change_ranges; DROP VIEW tag_numbers;"
                                " DROP VIEW change_numbers; DROP VIEW changes;"
                                " ALTER TABLE sites DROP COLUMN thread_name",
                                "table 'sites' has no column 'thread_name'"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("noruntable.db", "DROP TABLE run", "no table 'run'"), MW_ETRACE);
    /* readers read changes (version 3): it must be there, and memwatch's */
    CHECK_EQ_INT(hostile_status("nochanges.db", "DROP VIEW changes", "no view 'changes'"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("otherchanges.db", "DROP VIEW changes; CREATE VIEW changes AS"
                                " SELECT * FROM change_rows", "view 'changes'"),
                 MW_ETRACE);
    CHECK_EQ_INT(hostile_status("myview.db", "DROP VIEW tag_summary; CREATE VIEW tag_summary AS"
                                " SELECT 1 AS tag", "view 'tag_summary'"),
                 MW_ETRACE);
    /* what later schema versions may add is read; so is a trace without change_stats */
    CHECK_EQ_INT(hostile_status("later.db", "ALTER TABLE objects ADD COLUMN later TEXT;"
                                " CREATE TABLE later_t (x); CREATE VIEW later_v AS SELECT x"
                                " FROM later_t", NULL),
                 0);
    CHECK_EQ_INT(hostile_status("old.db", "DROP VIEW tag_numbers; DROP VIEW change_numbers;"
                                " DROP TABLE change_stats", NULL),
                 0);
}

static void test_not_regular(void)
{
    const char *fifo = scratch_path("fifo.db");
    CHECK(mkfifo(fifo, 0600) == 0);
    /* a FIFO is refused at once (nobody writes to it: a blocking open would hang) */
    CHECK_EQ_INT(open_status(fifo, NULL), -EINVAL);
    CHECK_EQ_INT(open_status("/dev/null", NULL), -EINVAL);
    const char *path = scratch_path("w.db");
    make_trace(path);
    CHECK(mkfifo(scratch_path("w.db-wal"), 0600) == 0);
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), -EINVAL);
    CHECK(strstr(mw_trace_reader_errmsg(r), "w.db-wal' next to the trace") != NULL);
    mw_trace_reader_close(r);
}

/* Statements on the reader's connection are bounded: steps, value length. */
static void test_bounds(void)
{
    const char *path = scratch_path("b.db");
    make_trace(path);
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), 0);
    sqlite3_stmt *s;
    CHECK(sqlite3_prepare_v2(mw_trace_reader_db(r),
                             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
                             " SELECT count(*) FROM n", -1, &s, NULL) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(s), SQLITE_INTERRUPT);
    sqlite3_finalize(s);
    const char *why = mw_trace_reader_guard_reason(r);
    CHECK(why && strstr(why, "million steps"));
    mw_trace_reader_close(r);

    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), 0);
    CHECK(sqlite3_prepare_v2(mw_trace_reader_db(r), "SELECT zeroblob(100000000)", -1, &s,
                             NULL) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(s), SQLITE_TOOBIG);
    sqlite3_finalize(s);
    why = mw_trace_reader_guard_reason(r);
    CHECK(why && strstr(why, "MiB"));
    /* a statement that stays within the bounds runs */
    CHECK(sqlite3_prepare_v2(mw_trace_reader_db(r), "SELECT length(zeroblob(1000000))", -1, &s,
                             NULL) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(s), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(s, 0), 1000000);
    sqlite3_finalize(s);
    mw_trace_reader_close(r);
}

/* Statements on the reader's connection only read: the authorizer (reader_guard.c). */
static void test_authorizer(void)
{
    const char *path = scratch_path("a.db");
    make_trace(path);
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(path, &r, NULL), 0);
    static const struct {
        const char *sql;
        int write;
        const char *why;
    } refused[] = {
        {"SELECT fts3_tokenizer('simple')", 0, "fts3_tokenizer()"},
        {"SELECT fts3_tokenizer('x', x'0000000000000000')", 0, "fts3_tokenizer()"},
        {"SELECT load_extension('x')", 0, "load_extension()"},
        {"ATTACH 'x.db' AS x", 0, "ATTACH"},
        {"PRAGMA cache_size = 1000000", 0, "PRAGMA cache_size = 1000000"},
        {"CREATE TEMP VIEW v AS SELECT 1", 1, "the statement would"},
        {"DELETE FROM change_rows", 1, "delete rows"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        sqlite3_stmt *s = NULL;
        CHECK(sqlite3_prepare_v2(mw_trace_reader_db(r), refused[i].sql, -1, &s, NULL) !=
              SQLITE_OK);
        sqlite3_finalize(s);
        const char *why = mw_trace_reader_guard_reason(r);
        CHECK(why && strstr(why, refused[i].why));
        CHECK_EQ_INT(mw_trace_reader_refused_write(r), refused[i].write);
    }
    /* reads, and the reader's own work, go on */
    uint64_t objects = 0, changes = 0;
    CHECK_EQ_INT(mw_trace_reader_counts(r, &objects, &changes), 0);
    CHECK(objects == 2 && changes == 3);
    mw_trace_reader_close(r);
}

int main(void)
{
    if (scratch_begin("reader") < 0)
        return 1;
    RUN(test_validation);
    RUN(test_reading);
    RUN(test_summary);
    RUN(test_hostile_schema);
    RUN(test_not_regular);
    RUN(test_bounds);
    RUN(test_authorizer);
    scratch_end();
    return UNIT_DONE();
}
