/* The record stream's value frames and "more follows" flags (record.c): a large change
 * says which of its frames is the last, a value is cut at MW_REC_VALUE_ALIGN and comes
 * back whole, a small change reserves a small buffer, and bad value frames are refused. */
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "record.h"
#include "unit.h"

static mw_rec_decoder *decoder_with(const void *p, size_t n)
{
    mw_rec_decoder *d;
    if (mw_rec_decoder_create(&d) || mw_rec_decoder_feed(d, p, n))
        abort();
    return d;
}

static void large_change_says_when_it_ends(void)
{
    size_t n = 40u << 20;
    unsigned char *old = calloc(1, n), *new_ = malloc(n);
    memset(new_, 7, n);
    struct mw_rec_range r = {0, n, old, new_};
    struct mw_rec_change c = {.seq = 5, .object_id = 2, .nranges = 1, .ranges = &r};
    struct mw_rec_buf b = {0};
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    mw_rec_decoder *d = decoder_with(b.data, b.len);
    struct mw_rec_decoded rec;
    uint64_t got = 0;
    int frames = 0, more = 1;
    while (mw_rec_decoder_next(d, &rec) == 1) {
        frames++;
        const struct mw_rec_range *g = rec.type == MW_REC_CHANGE ? rec.u.change.ranges
                                                                  : rec.u.ranges.ranges;
        uint32_t ng = rec.type == MW_REC_CHANGE ? rec.u.change.nranges : rec.u.ranges.nranges;
        CHECK(more);   /* nothing after the frame that said it was the last */
        more = rec.type == MW_REC_CHANGE ? rec.u.change.more : rec.u.ranges.more;
        for (uint32_t i = 0; i < ng; i++) {
            CHECK(g[i].offset == got);
            got += g[i].length;
        }
    }
    CHECK(frames >= 3);
    CHECK_EQ_INT(more, 0);
    CHECK(got == n);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);

    /* A small change is one frame, says so, and its buffer stays small. */
    struct mw_rec_range small = {3, 2, old, new_};
    c.ranges = &small;
    CHECK_EQ_INT(mw_rec_encode_change(&b, &c), 0);
    CHECK(b.cap < 4096);
    d = decoder_with(b.data, b.len);
    CHECK_EQ_INT(mw_rec_decoder_next(d, &rec), 1);
    CHECK_EQ_INT(rec.type, MW_REC_CHANGE);
    CHECK_EQ_INT(rec.u.change.more, 0);
    mw_rec_decoder_destroy(d);
    mw_rec_buf_free(&b);
    free(old);
    free(new_);
}

static void values_come_back_whole(void)
{
    static const size_t sizes[] = {0, 1, 4096, (16u << 20) + 3, 33u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        unsigned char *v = malloc(n ? n : 1), *back = calloc(1, n ? n : 1);
        for (size_t i = 0; i < n; i++)
            v[i] = (unsigned char)(i * 31 + 7);
        struct mw_rec_value val = {.object_id = 9, .seq = 77, .exact = (int)(k % 2), .size = n,
                                   .bytes = v};
        struct mw_rec_buf b = {0};
        CHECK_EQ_INT(mw_rec_encode_value(&b, &val), 0);
        mw_rec_decoder *d = decoder_with(b.data, b.len);
        struct mw_rec_decoded rec;
        uint64_t covered = 0;
        int frames = 0;
        while (mw_rec_decoder_next(d, &rec) == 1) {
            frames++;
            CHECK_EQ_INT(rec.type, MW_REC_VALUE);
            CHECK_EQ_INT(rec.u.value.object_id, 9);
            CHECK_EQ_INT(rec.u.value.seq, 77);
            CHECK_EQ_INT(rec.u.value.exact, (int)(k % 2));
            CHECK(rec.u.value.size == n);
            CHECK(rec.u.value.offset % MW_REC_VALUE_ALIGN == 0);
            CHECK(rec.u.value.offset == covered);
            memcpy(back + rec.u.value.offset, rec.u.value.bytes, rec.u.value.length);
            covered += rec.u.value.length;
        }
        CHECK(frames >= 1);
        CHECK(covered == n);
        CHECK(memcmp(v, back, n) == 0);
        mw_rec_decoder_destroy(d);
        mw_rec_buf_free(&b);
        free(v);
        free(back);
    }
}

/* A value frame by hand: object, seq, exact, size, offset, then the bytes. */
static size_t value_frame(unsigned char *f, uint64_t size, uint64_t offset, uint32_t n)
{
    size_t len = 1 + 33 + 4 + n;
    unsigned char *p = f;
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(len >> (8 * i));
    *p++ = MW_REC_VALUE;
    uint64_t fields[] = {1, 2, size, offset};
    for (int k = 0; k < 4; k++) {
        if (k == 2)
            *p++ = 1;   /* exact */
        for (int i = 0; i < 8; i++)
            *p++ = (unsigned char)(fields[k] >> (8 * i));
    }
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(n >> (8 * i));
    memset(p, 1, n);
    return 4 + len;
}

static void bad_values_are_refused(void)
{
    unsigned char f[256];
    struct mw_rec_decoded rec;
    struct {
        uint64_t size, offset;
        uint32_t n;
    } bad[] = {
        {10, 0, 11},                  /* more bytes than the value */
        {100, 5, 10},                 /* not at a multiple of MW_REC_VALUE_ALIGN */
        {10, MW_REC_VALUE_ALIGN, 0},  /* past the value */
        {10, 0, 0},                   /* nothing of a value that has bytes */
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t len = value_frame(f, bad[k].size, bad[k].offset, bad[k].n);
        mw_rec_decoder *d = decoder_with(f, len);
        CHECK_EQ_INT(mw_rec_decoder_next(d, &rec), MW_EFORMAT);
        mw_rec_decoder_destroy(d);
    }
    size_t len = value_frame(f, 10, 0, 10);
    mw_rec_decoder *d = decoder_with(f, len);
    CHECK_EQ_INT(mw_rec_decoder_next(d, &rec), 1);
    mw_rec_decoder_destroy(d);
}

int main(void)
{
    RUN(large_change_says_when_it_ends);
    RUN(values_come_back_whole);
    RUN(bad_values_are_refused);
    return UNIT_DONE();
}
