/* The trace writer's copy of large objects' values (src/trace/held_values.c), through the
 * writer as the records reach it: changes sent without their old bytes (old_held) read
 * back with exact old bytes; a gap in an object's numbering, or a change its process did
 * not number, makes later changes say "old unavailable" and never gives a wrong byte; a
 * copy starts from a base or from a first change that covers the object, and from nothing
 * else. */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "held_values.h"
#include "record.h"
#include "trace_scratch.h"
#include "unit.h"
#include "value_read.h"
#include "writer.h"

enum { SIZE = 8192 };

static const int64_t sender = 100;   /* the pid serve.c would set on every record */

static void apply(mw_trace_writer *w, struct mw_rec_buf *b)
{
    mw_rec_decoder *d;
    CHECK_EQ_INT(mw_rec_decoder_create(&d), 0);
    CHECK_EQ_INT(mw_rec_decoder_feed(d, b->data, b->len), 0);
    struct mw_rec_decoded r;
    while (mw_rec_decoder_next(d, &r) == 1) {
        if (r.type == MW_REC_CHANGE)
            r.u.change.pid = sender;
        if (r.type == MW_REC_VALUE)
            r.u.value.pid = sender;
        CHECK_EQ_INT(mw_trace_writer_apply(w, &r), 0);
    }
    mw_rec_decoder_destroy(d);
    b->len = 0;
}

/* Value k of the object: distinct in every byte from k - 1. */
static void fill(unsigned char *v, uint64_t k)
{
    for (size_t i = 0; i < SIZE; i++)
        v[i] = (unsigned char)(k * 37 + i * 11 + (i >> 8));
}

static mw_trace_writer *open_trace(const char *path, struct mw_rec_buf *b)
{
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    char *argv[] = {"t.py"};
    struct mw_run_info run = {"script", "t.py", 1, argv, "/tmp", 1700000000000000000, NULL, NULL,
                              NULL, NULL};
    CHECK_EQ_INT(mw_trace_writer_begin_run(w, &run), 0);
    int64_t shape[1] = {SIZE}, strides[1] = {1};
    struct mw_rec_object o = {.id = 1, .tag = "big", .type_name = "bytearray", .size = SIZE,
                              .format = "B", .itemsize = 1, .ndim = 1, .shape = shape,
                              .strides = strides};
    CHECK_EQ_INT(mw_rec_encode_object(b, &o), 0);
    apply(w, b);
    return w;
}

static void close_trace(mw_trace_writer *w)
{
    CHECK_EQ_INT(mw_trace_writer_commit(w), 0);
    struct mw_run_end end = {1700000001000000000, 1000000000, 0, 0, 0};
    CHECK_EQ_INT(mw_trace_writer_end_run(w, &end), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
}

/* Change seq takes bytes [lo, hi) from value k - 1 to value k, numbered ordinal; with_old:
 * its old bytes travel with it, else the writer is to have them. */
static void change(mw_trace_writer *w, struct mw_rec_buf *b, uint64_t seq, uint64_t k,
                   size_t lo, size_t hi, uint64_t ordinal, int with_old)
{
    unsigned char old[SIZE], new_[SIZE];
    fill(old, k - 1);
    fill(new_, k);
    struct mw_rec_range g = {lo, hi - lo, with_old ? old + lo : NULL, new_ + lo};
    struct mw_rec_change c = {.seq = seq, .object_id = 1, .nranges = 1, .ranges = &g,
                              .ordinal = ordinal, .old_held = !with_old};
    CHECK_EQ_INT(mw_rec_encode_change(b, &c), 0);
    apply(w, b);
}

/* What the trace says of change seq, which took [lo, hi) from value k - 1 to value k: its
 * new bytes always; its old bytes exact when old_known, else unavailable. */
static void check_change(mw_value_reader *v, uint64_t seq, uint64_t k, size_t lo, size_t hi,
                         int old_known)
{
    struct mw_value_change c;
    CHECK_EQ_INT(mw_value_reader_change(v, seq, &c), 1);
    unsigned char old[SIZE], new_[SIZE];
    fill(old, k - 1);
    fill(new_, k);
    CHECK(c.n == 1 && c.ranges[0].offset == lo && c.ranges[0].length == hi - lo);
    if (c.n != 1)
        return;
    CHECK(c.ranges[0].new_ && memcmp(c.ranges[0].new_, new_ + lo, hi - lo) == 0);
    CHECK_EQ_INT(c.ranges[0].complete, old_known);
    if (old_known)
        CHECK(c.ranges[0].old && memcmp(c.ranges[0].old, old + lo, hi - lo) == 0);
}

static mw_value_reader *reader_of(const char *path, sqlite3 **db)
{
    CHECK_EQ_INT(sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    mw_value_reader *v;
    CHECK_EQ_INT(mw_value_reader_create(*db, 3, &v), 0);
    return v;
}

/* A first change covering the object starts the copy; later changes come without old bytes
 * and read back exact, until a change the process did not number ends the copy. */
static void test_copy_from_first_change(void)
{
    const char *path = scratch_path("held-first.db");
    struct mw_rec_buf b = {0};
    mw_trace_writer *w = open_trace(path, &b);
    change(w, &b, 1, 1, 0, SIZE, 1, 1);
    change(w, &b, 2, 2, 0, SIZE, 2, 0);
    change(w, &b, 3, 3, 0, SIZE, 3, 0);
    /* the process stopped counting (a change it could not send): the copy ends */
    change(w, &b, 4, 4, 0, SIZE, 0, 1);
    change(w, &b, 5, 5, 0, SIZE, 5, 0);
    mw_rec_buf_free(&b);
    close_trace(w);
    sqlite3 *db;
    mw_value_reader *v = reader_of(path, &db);
    check_change(v, 1, 1, 0, SIZE, 1);
    check_change(v, 2, 2, 0, SIZE, 1);
    check_change(v, 3, 3, 0, SIZE, 1);
    check_change(v, 4, 4, 0, SIZE, 1);
    check_change(v, 5, 5, 0, SIZE, 0);
    mw_value_reader_destroy(v);
    sqlite3_close(db);
}

/* A copy from an exact base; then a change lost on the way (a gap in the numbers): the
 * changes after it have no old bytes to give, and say so. */
static void test_gap_says_unavailable(void)
{
    const char *path = scratch_path("held-gap.db");
    struct mw_rec_buf b = {0};
    mw_trace_writer *w = open_trace(path, &b);
    unsigned char base[SIZE];
    fill(base, 0);
    struct mw_rec_value val = {.object_id = 1, .seq = 1, .exact = 1, .size = SIZE,
                               .bytes = base};
    CHECK_EQ_INT(mw_rec_encode_value(&b, &val), 0);
    apply(w, &b);
    change(w, &b, 1, 1, 10, 20, 1, 1);
    change(w, &b, 2, 2, 0, SIZE, 2, 0);
    /* change 3 (ordinal 3) never arrives */
    change(w, &b, 4, 4, 0, SIZE, 4, 0);
    change(w, &b, 5, 5, 0, SIZE, 5, 0);
    mw_rec_buf_free(&b);
    close_trace(w);
    sqlite3 *db;
    mw_value_reader *v = reader_of(path, &db);
    check_change(v, 1, 1, 10, 20, 1);
    /* value 1 is base 0 with bytes [10, 20) of value 1: change 2's old bytes are that */
    struct mw_value_change c;
    CHECK_EQ_INT(mw_value_reader_change(v, 2, &c), 1);
    unsigned char want[SIZE];
    fill(want, 0);
    unsigned char one[SIZE];
    fill(one, 1);
    memcpy(want + 10, one + 10, 10);
    CHECK(c.n == 1 && c.ranges[0].complete && c.ranges[0].old &&
          memcmp(c.ranges[0].old, want, SIZE) == 0);
    check_change(v, 4, 4, 0, SIZE, 0);
    check_change(v, 5, 5, 0, SIZE, 0);
    mw_value_reader_destroy(v);
    sqlite3_close(db);
}

/* A first change that leaves part of the object unknown starts no copy: a later change
 * that counts on one says its old bytes are unavailable. */
static void test_partial_first_change_starts_nothing(void)
{
    const char *path = scratch_path("held-partial.db");
    struct mw_rec_buf b = {0};
    mw_trace_writer *w = open_trace(path, &b);
    change(w, &b, 1, 1, 0, SIZE / 2, 1, 1);
    change(w, &b, 2, 2, 0, SIZE, 2, 0);
    mw_rec_buf_free(&b);
    close_trace(w);
    sqlite3 *db;
    mw_value_reader *v = reader_of(path, &db);
    check_change(v, 1, 1, 0, SIZE / 2, 1);
    check_change(v, 2, 2, 0, SIZE, 0);
    mw_value_reader_destroy(v);
    sqlite3_close(db);
}

int main(void)
{
    if (scratch_begin("held-values") != 0)
        return 1;
    RUN(test_copy_from_first_change);
    RUN(test_gap_says_unavailable);
    RUN(test_partial_first_change_starts_nothing);
    scratch_end();
    return UNIT_DONE();
}
