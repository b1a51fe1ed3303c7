/* src/trace/record.c: encode/decode round trips, frames fed in pieces, large changes split
 * across frames, and malformed or truncated input rejected with MW_EFORMAT. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mw_error.h"
#include "record.h"
#include "unit.h"

static mw_rec_decoder *decoder_with(const void *p, size_t n)
{
    mw_rec_decoder *d;
    if (mw_rec_decoder_create(&d))
        abort();
    if (mw_rec_decoder_feed(d, p, n))
        abort();
    return d;
}

static void test_hello_object_unwatch_stats(void)
{
    struct mw_rec_buf b = {0};
    struct mw_rec_hello h = {"3.11.2 (main)", "uffd", 1234, 4096, 1, 5, "a\0b\0", 4, 0, 0, 0};
    int64_t shape[2] = {3, 4}, strides[2] = {16, 4};
    struct mw_rec_object o = {.id = 7, .tag = "weights", .type_name = "numpy.ndarray",
                              .address = 0x7f0000001000ull, .size = 48, .readonly = 1,
                              .format = "<f", .itemsize = 4, .ndim = 2, .shape = shape,
                              .strides = strides, .time_ns = 99};
    struct mw_rec_object o2 = {.id = 8, .tag = "raw", .ndim = -1, .time_ns = 100};
    struct mw_rec_unwatch u = {7, 555};
    struct mw_rec_stats s = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    CHECK_EQ_INT(mw_rec_encode_hello(&b, &h), 0);
    CHECK_EQ_INT(mw_rec_encode_object(&b, &o), 0);
    CHECK_EQ_INT(mw_rec_encode_object(&b, &o2), 0);
    CHECK_EQ_INT(mw_rec_encode_unwatch(&b, &u), 0);
    CHECK_EQ_INT(mw_rec_encode_stats(&b, &s), 0);

    mw_rec_decoder *d = decoder_with(b.data, b.len);
    struct mw_rec_decoded r;
    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.type, MW_REC_HELLO);
    CHECK(strcmp(r.u.hello.python_version, "3.11.2 (main)") == 0);
    CHECK(strcmp(r.u.hello.backend, "uffd") == 0);
    CHECK_EQ_INT(r.u.hello.pid, 1234);
    CHECK_EQ_INT(r.u.hello.page_size, 4096);

    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.type, MW_REC_OBJECT);
    CHECK_EQ_INT(r.u.object.id, 7);
    CHECK(strcmp(r.u.object.tag, "weights") == 0);
    CHECK(strcmp(r.u.object.type_name, "numpy.ndarray") == 0);
    CHECK(r.u.object.address == 0x7f0000001000ull);
    CHECK_EQ_INT(r.u.object.size, 48);
    CHECK_EQ_INT(r.u.object.readonly, 1);
    CHECK(strcmp(r.u.object.format, "<f") == 0);
    CHECK_EQ_INT(r.u.object.itemsize, 4);
    CHECK_EQ_INT(r.u.object.ndim, 2);
    CHECK(r.u.object.shape && r.u.object.shape[0] == 3 && r.u.object.shape[1] == 4);
    CHECK(r.u.object.strides && r.u.object.strides[0] == 16 && r.u.object.strides[1] == 4);
    CHECK_EQ_INT(r.u.object.time_ns, 99);

    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.u.object.id, 8);
    CHECK(r.u.object.type_name == NULL && r.u.object.format == NULL);
    CHECK(r.u.object.shape == NULL && r.u.object.strides == NULL);
    CHECK_EQ_INT(r.u.object.ndim, -1);

    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.type, MW_REC_UNWATCH);
    CHECK_EQ_INT(r.u.unwatch.id, 7);
    CHECK_EQ_INT(r.u.unwatch.time_ns, 555);

    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.type, MW_REC_STATS);
    CHECK(r.u.stats.faults == 1 && r.u.stats.checks == 2 && r.u.stats.changes == 3 &&
          r.u.stats.old_unavailable == 4 && r.u.stats.tracked_objects_peak == 5);
    CHECK(r.u.stats.changes_compared == 6 && r.u.stats.isolated_objects_peak == 7 &&
          r.u.stats.isolated_pages_peak == 8 && r.u.stats.open_pages_peak == 9);
    CHECK(r.u.stats.short_of_memory == 10 && r.u.stats.lost_for_memory == 11);

    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 0);
    CHECK_EQ_INT(mw_rec_decoder_pending(d, NULL), 0);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
}

static void test_change_fed_byte_by_byte(void)
{
    struct mw_rec_buf b = {0};
    unsigned char old1[3] = {1, 2, 3}, new1[3] = {4, 5, 6}, new2[1] = {9};
    struct mw_rec_range ranges[2] = {{10, 3, old1, new1}, {100, 1, NULL, new2}};
    struct mw_rec_change c = {.seq = 42, .time_ns = 1000, .object_id = 7, .thread_id = 321,
                              .thread_name = "MainThread", .file = "train.py", .line = 57,
                              .function = "step", .nranges = 2, .ranges = ranges};
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);

    mw_rec_decoder *d;
    CHECK_EQ_INT(mw_rec_decoder_create(&d), 0);
    struct mw_rec_decoded r;
    for (size_t i = 0; i < b.len; i++) {
        CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 0);
        CHECK_EQ_INT(mw_rec_decoder_feed(d, b.data + i, 1), 0);
    }
    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 1);
    CHECK_EQ_INT(r.type, MW_REC_CHANGE);
    const struct mw_rec_change *g = &r.u.change;
    CHECK_EQ_INT(g->seq, 42);
    CHECK_EQ_INT(g->time_ns, 1000);
    CHECK_EQ_INT(g->object_id, 7);
    CHECK_EQ_INT(g->thread_id, 321);
    CHECK(strcmp(g->thread_name, "MainThread") == 0);
    CHECK(strcmp(g->file, "train.py") == 0);
    CHECK_EQ_INT(g->line, 57);
    CHECK(strcmp(g->function, "step") == 0);
    CHECK(g->native_symbol == NULL && g->native_library == NULL);
    CHECK_EQ_INT(g->nranges, 2);
    CHECK_EQ_INT(g->ranges[0].offset, 10);
    CHECK_EQ_INT(g->ranges[0].length, 3);
    CHECK(memcmp(g->ranges[0].old, old1, 3) == 0 && memcmp(g->ranges[0].new_, new1, 3) == 0);
    CHECK_EQ_INT(g->ranges[1].offset, 100);
    CHECK(g->ranges[1].old == NULL && g->ranges[1].new_[0] == 9);
    CHECK_EQ_INT(mw_rec_decoder_next(d, &r), 0);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
}

/* A change larger than a frame goes out as CHANGE + RANGES frames that add up to it. */
static void test_large_change_split(void)
{
    size_t n = 20u << 20;   /* 20 MiB with old bytes: 40 MiB of data, more than a frame */
    unsigned char *old = malloc(n), *new_ = malloc(n);
    for (size_t i = 0; i < n; i++) {
        old[i] = (unsigned char)i;
        new_[i] = (unsigned char)(i * 7 + 1);
    }
    struct mw_rec_range ranges[2] = {{0, n, old, new_}, {n + 10, 5, NULL, new_}};
    struct mw_rec_change c = {.seq = 5, .object_id = 1, .nranges = 2, .ranges = ranges};
    struct mw_rec_buf b = {0};
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    mw_rec_decoder *d = decoder_with(b.data, b.len);
    struct mw_rec_decoded r;
    int frames = 0, bad = 0;
    uint64_t next = 0, total = 0;
    while (mw_rec_decoder_next(d, &r) == 1) {
        const struct mw_rec_range *g;
        uint32_t k;
        if (frames++ == 0) {
            CHECK_EQ_INT(r.type, MW_REC_CHANGE);
            CHECK_EQ_INT(r.u.change.seq, 5);
            g = r.u.change.ranges;
            k = r.u.change.nranges;
        } else {
            CHECK_EQ_INT(r.type, MW_REC_RANGES);
            CHECK_EQ_INT(r.u.ranges.seq, 5);
            g = r.u.ranges.ranges;
            k = r.u.ranges.nranges;
        }
        for (uint32_t i = 0; i < k; i++) {
            if (g[i].offset < n) {
                /* pieces of the first range, in order and adjacent */
                if (g[i].offset != next || !g[i].old ||
                    memcmp(g[i].old, old + g[i].offset, g[i].length) ||
                    memcmp(g[i].new_, new_ + g[i].offset, g[i].length))
                    bad++;
                next = g[i].offset + g[i].length;
            } else {
                if (g[i].offset != n + 10 || g[i].length != 5 || g[i].old)
                    bad++;
            }
            total += g[i].length;
        }
    }
    CHECK(frames >= 3);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(next, n);
    CHECK_EQ_INT(total, n + 5);
    CHECK_EQ_INT(mw_rec_decoder_pending(d, NULL), 0);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
    free(old);
    free(new_);
}

/* Every proper prefix of a stream is "need more", never an error or a record too many. */
static void test_truncated(void)
{
    struct mw_rec_buf b = {0};
    unsigned char x[4] = {1, 2, 3, 4};
    struct mw_rec_range g = {0, 4, x, x};
    struct mw_rec_change c = {.seq = 1, .file = "a.py", .nranges = 1, .ranges = &g};
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    int wrong = 0;
    for (size_t cut = 0; cut < b.len; cut++) {
        mw_rec_decoder *d = decoder_with(b.data, cut);
        struct mw_rec_decoded r;
        int type;
        if (mw_rec_decoder_next(d, &r) != 0 || mw_rec_decoder_pending(d, &type) != cut ||
            (cut >= 5 && type != MW_REC_CHANGE))
            wrong++;
        mw_rec_decoder_destroy(d);
    }
    CHECK_EQ_INT(wrong, 0);
    mw_rec_buf_free(&b);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Decodes one hand-made frame; returns the status of the first next(). */
static int decode_raw(const unsigned char *p, size_t n)
{
    mw_rec_decoder *d = decoder_with(p, n);
    struct mw_rec_decoded r;
    int rc = mw_rec_decoder_next(d, &r);
    /* errors are sticky */
    if (rc == MW_EFORMAT && mw_rec_decoder_next(d, &r) != MW_EFORMAT)
        rc = 99;
    mw_rec_decoder_destroy(d);
    return rc;
}

static void test_malformed(void)
{
    unsigned char f[64];
    /* zero-length frame */
    memset(f, 0, sizeof(f));
    CHECK_EQ_INT(decode_raw(f, 8), MW_EFORMAT);
    /* a length beyond the cap is refused at once, without waiting for the bytes */
    put32(f, MW_REC_MAX_FRAME + 1);
    CHECK_EQ_INT(decode_raw(f, 8), MW_EFORMAT);
    put32(f, 0xFFFFFFFFu);
    CHECK_EQ_INT(decode_raw(f, 8), MW_EFORMAT);
    /* unknown type */
    put32(f, 1);
    f[4] = 77;
    CHECK_EQ_INT(decode_raw(f, 5), MW_EFORMAT);
    /* an unwatch frame one byte short, and one byte long */
    put32(f, 16);
    f[4] = MW_REC_UNWATCH;
    CHECK_EQ_INT(decode_raw(f, 4 + 16), MW_EFORMAT);
    put32(f, 18);
    CHECK_EQ_INT(decode_raw(f, 4 + 18), MW_EFORMAT);
    put32(f, 17);
    CHECK_EQ_INT(decode_raw(f, 4 + 17), 1);

    /* a string whose length runs past the frame */
    struct mw_rec_buf b = {0};
    struct mw_rec_hello h = {.python_version = "abc", .backend = "x", .pid = 1, .page_size = 4096};
    CHECK_EQ_INT(mw_rec_encode_hello(&b, &h), 0);
    put32(b.data + 5, 1000);
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    /* a string with a NUL inside */
    put32(b.data + 5, 3);
    b.data[10] = '\0';
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    b.data[10] = 'b';
    CHECK_EQ_INT(decode_raw(b.data, b.len), 1);
    mw_rec_buf_free(&b);

    /* a range whose bytes do not match its length; a range count that cannot fit */
    unsigned char x[4] = {1, 2, 3, 4};
    struct mw_rec_range g = {0, 4, NULL, x};
    struct mw_rec_change c = {.seq = 1, .nranges = 1, .ranges = &g};
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    size_t ranges_at = b.len - (4 + 8 + 8 + 4 + 4 + 4);   /* nranges field */
    size_t len_at = ranges_at + 4 + 8;                      /* the range's length field */
    unsigned char saved = b.data[len_at];
    b.data[len_at] = 5;
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    b.data[len_at] = saved;
    put32(b.data + ranges_at, 0x10000000u);
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    put32(b.data + ranges_at, 1);
    CHECK_EQ_INT(decode_raw(b.data, b.len), 1);
    /* a new-bytes blob given as NULL */
    put32(b.data + b.len - 8, 0xFFFFFFFFu);
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    mw_rec_buf_free(&b);

    /* an object with ndim out of range */
    struct mw_rec_object o = {.id = 1, .tag = "t", .ndim = 1};
    CHECK_EQ_INT(mw_rec_encode_object(&b, &o), 0);
    size_t ndim_at = b.len - (8 + 1 + 1 + 4);
    put32(b.data + ndim_at, 65);
    CHECK_EQ_INT(decode_raw(b.data, b.len), MW_EFORMAT);
    put32(b.data + ndim_at, 1);
    CHECK_EQ_INT(decode_raw(b.data, b.len), 1);
    mw_rec_buf_free(&b);
    o.ndim = 65;
    CHECK_EQ_INT(mw_rec_encode_object(&b, &o), MW_EINVAL);
    CHECK_EQ_INT(b.len, 0);
    mw_rec_buf_free(&b);

    /* garbage: never a crash, only MW_EFORMAT or "need more" */
    unsigned char junk[4096];
    unsigned seed = 12345;
    int crashes_avoided = 0;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(junk); i++) {
            seed = seed * 1103515245u + 12345u;
            junk[i] = (unsigned char)(seed >> 16);
        }
        put32(junk, (seed >> 8) % 200);   /* plausible lengths, garbage content */
        junk[4] = (unsigned char)(1 + round % 6);
        int rc = decode_raw(junk, sizeof(junk));
        crashes_avoided += rc == MW_EFORMAT || rc == 0 || rc == 1;
    }
    CHECK_EQ_INT(crashes_avoided, 2000);
}

static void test_flush(void)
{
    int p[2];
    CHECK_EQ_INT(pipe(p), 0);
    struct mw_rec_buf b = {0};
    struct mw_rec_unwatch u = {3, 4};
    CHECK_EQ_INT(mw_rec_encode_unwatch(&b, &u), 0);
    size_t n = b.len;
    CHECK_EQ_INT(mw_rec_buf_flush(&b, p[1]), 0);
    CHECK_EQ_INT(b.len, 0);
    unsigned char got[64];
    CHECK_EQ_INT(read(p[0], got, sizeof(got)), n);
    close(p[0]);
    /* a closed reader: -EPIPE (SIGPIPE ignored here), and the bytes are kept */
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(mw_rec_encode_unwatch(&b, &u), 0);
    CHECK_EQ_INT(mw_rec_buf_flush(&b, p[1]), -EPIPE);
    CHECK_EQ_INT(b.len, n);
    close(p[1]);
    mw_rec_buf_free(&b);
}

int main(void)
{
    RUN(test_hello_object_unwatch_stats);
    RUN(test_change_fed_byte_by_byte);
    RUN(test_large_change_split);
    RUN(test_truncated);
    RUN(test_malformed);
    RUN(test_flush);
    return UNIT_DONE();
}
