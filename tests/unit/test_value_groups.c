/* src/trace/value_store.c under --values=last:N with a --max-trace-size the run never
 * reaches: one object changes once and stays, another changes thousands of times. Every
 * group of the busy object is closed and dropped in turn while the quiet object's group
 * stays at the head of the writer's queue of closed groups; the queue is compacted as it
 * goes. What a user sees: the quiet object's value, the busy object's last N values, and
 * the meta's count of dropped values, all exact. */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "record.h"
#include "trace_scratch.h"
#include "unit.h"
#include "value_read.h"
#include "value_store.h"
#include "writer.h"

enum { SIZE = 256, BUSY_CHANGES = 20000, LAST = 2 };

static void fill(unsigned char *b, uint64_t k)
{
    for (size_t i = 0; i < SIZE; i++)
        b[i] = (unsigned char)(k * 31 + i * 7);
}

static void apply(mw_trace_writer *w, struct mw_rec_buf *b)
{
    mw_rec_decoder *d;
    CHECK_EQ_INT(mw_rec_decoder_create(&d), 0);
    CHECK_EQ_INT(mw_rec_decoder_feed(d, b->data, b->len), 0);
    struct mw_rec_decoded r;
    while (mw_rec_decoder_next(d, &r) == 1)
        CHECK_EQ_INT(mw_trace_writer_apply(w, &r), 0);
    mw_rec_decoder_destroy(d);
    b->len = 0;
}

static void object(mw_trace_writer *w, struct mw_rec_buf *b, uint64_t id, const char *tag)
{
    int64_t shape[1] = {SIZE}, strides[1] = {1};
    struct mw_rec_object o = {.id = id, .tag = tag, .type_name = "bytearray", .size = SIZE,
                              .format = "B", .itemsize = 1, .ndim = 1, .shape = shape,
                              .strides = strides};
    CHECK_EQ_INT(mw_rec_encode_object(b, &o), 0);
    apply(w, b);
}

/* Change seq of object id: the whole object goes from value k - 1 to value k. */
static void change(mw_trace_writer *w, struct mw_rec_buf *b, uint64_t id, uint64_t seq,
                   uint64_t k)
{
    unsigned char old[SIZE], new_[SIZE];
    fill(old, k - 1);
    fill(new_, k);
    struct mw_rec_range g = {0, SIZE, old, new_};
    struct mw_rec_change c = {.seq = seq, .object_id = id, .nranges = 1, .ranges = &g};
    CHECK_EQ_INT(mw_rec_encode_change(b, &c), 0);
    apply(w, b);
}

/* Change seq's new bytes are value k. */
static void check_new(mw_value_reader *v, uint64_t seq, uint64_t k)
{
    struct mw_value_change c;
    CHECK_EQ_INT(mw_value_reader_change(v, seq, &c), 1);
    CHECK_EQ_INT(c.kept, MW_KEPT_CHUNKS);
    CHECK_EQ_INT(c.n, 1);
    unsigned char want[SIZE];
    fill(want, k);
    CHECK(c.n == 1 && c.ranges[0].new_ && memcmp(c.ranges[0].new_, want, SIZE) == 0);
}

static void test_quiet_and_busy(void)
{
    const char *path = scratch_path("groups.db");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    struct mw_values_config cfg = {MW_VALUES_LAST, LAST, (uint64_t)1 << 30};
    CHECK_EQ_INT(mw_trace_writer_set_values(w, &cfg), 0);
    char *argv[] = {"t.py"};
    struct mw_run_info run = {"script", "t.py", 1, argv, "/tmp", 1700000000000000000, NULL, NULL,
                              NULL, NULL};
    CHECK_EQ_INT(mw_trace_writer_begin_run(w, &run), 0);

    struct mw_rec_buf b = {0};
    object(w, &b, 1, "quiet");
    object(w, &b, 2, "busy");
    for (uint64_t k = 1; k <= LAST; k++)
        change(w, &b, 1, k, k);
    for (uint64_t k = 1; k <= BUSY_CHANGES; k++)
        change(w, &b, 2, LAST + k, k);
    mw_rec_buf_free(&b);
    CHECK_EQ_INT(mw_trace_writer_commit(w), 0);
    struct mw_run_end end = {1700000001000000000, 1000000000, 0, 0, 0};
    CHECK_EQ_INT(mw_trace_writer_end_run(w, &end), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);

    /* groups of LAST changes, at least the last LAST kept: the busy object's last group */
    CHECK_EQ_INT(scratch_int(path, "SELECT value FROM meta WHERE key = 'values_dropped_changes'"),
                 BUSY_CHANGES - LAST);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM changes WHERE kept = 3"),
                 BUSY_CHANGES - LAST);

    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    mw_value_reader *v;
    CHECK_EQ_INT(mw_value_reader_create(db, 2, &v), 0);
    for (uint64_t k = 1; k <= LAST; k++)
        check_new(v, k, k);
    for (uint64_t k = BUSY_CHANGES - LAST + 1; k <= BUSY_CHANGES; k++)
        check_new(v, LAST + k, k);
    struct mw_value_change c;
    CHECK_EQ_INT(mw_value_reader_change(v, LAST + 1, &c), 1);
    CHECK_EQ_INT(c.kept, MW_KEPT_DROPPED);
    CHECK(c.n == 1 && c.ranges[0].new_ == NULL);
    mw_value_reader_destroy(v);
    sqlite3_close(db);
}

int main(void)
{
    if (scratch_begin("value-groups") != 0)
        return 1;
    RUN(test_quiet_and_busy);
    scratch_end();
    return UNIT_DONE();
}
