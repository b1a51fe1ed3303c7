/* src/trace/reader.c: validation statuses (missing, not SQLite, not a trace, newer schema),
 * tags, filtered iteration and the per-tag summary, on a trace made by the writer. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
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
    CHECK_EQ_INT(version, 2);
    /* a newer version that old readers may still read, then one they may not */
    scratch_sql(scratch_path("t.db"), "PRAGMA user_version = 3");
    CHECK_EQ_INT(open_status(scratch_path("t.db"), &version), 0);
    CHECK_EQ_INT(version, 3);
    scratch_sql(scratch_path("t.db"), "UPDATE meta SET value = '3' WHERE key = 'read_compat'");
    mw_trace_reader *r;
    CHECK_EQ_INT(mw_trace_reader_open(scratch_path("t.db"), &r, NULL), MW_ESCHEMA);
    CHECK(strstr(mw_trace_reader_errmsg(r), "version 3") != NULL);
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

int main(void)
{
    if (scratch_begin("reader") < 0)
        return 1;
    RUN(test_validation);
    RUN(test_reading);
    RUN(test_summary);
    scratch_end();
    return UNIT_DONE();
}
