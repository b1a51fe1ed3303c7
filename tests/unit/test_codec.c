/* src/trace/codec.c: every lane and codec decodes to the bytes it encoded, float updates
 * shrink against their old value, and damaged pieces are refused instead of decoded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mw_error.h"
#include "unit.h"

static mw_codec_ctx *ctx;
static unsigned char *out, *back;

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

/* Encodes src (against ref when given), decodes it back, and checks it is the same.
 * Returns the encoded size. */
static size_t round_trip(const unsigned char *src, const unsigned char *ref, size_t n,
                         unsigned lane)
{
    size_t len = 0;
    int codec = -1;
    CHECK_EQ_INT(mw_codec_encode(ctx, src, ref, n, lane, MW_CODEC_LEVEL, out, &len, &codec), 0);
    CHECK(len <= mw_codec_bound(n));
    CHECK(codec == MW_CODEC_RAW || codec == (ref ? MW_CODEC_DELTA : MW_CODEC_ZSTD));
    memset(back, 0xa5, n);
    CHECK_EQ_INT(mw_codec_decode(ctx, codec, lane, out, len, codec == MW_CODEC_DELTA ? ref : NULL,
                                 back, n), 0);
    CHECK(memcmp(back, src, n) == 0);
    return len;
}

static void every_lane_round_trips(void)
{
    static const size_t sizes[] = {0, 1, 3, 7, 8, 9, 4095, 4096, 65537, MW_CODEC_PIECE};
    unsigned char *a = malloc(MW_CODEC_PIECE), *b = malloc(MW_CODEC_PIECE);
    for (size_t i = 0; i < MW_CODEC_PIECE; i++) {
        a[i] = (unsigned char)next_rand();
        b[i] = (unsigned char)(i % 7 ? a[i] : next_rand());
    }
    for (unsigned lane = 1; lane <= 8; lane *= 2)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            round_trip(b, a, sizes[k], lane);     /* delta against the old bytes */
            round_trip(b, NULL, sizes[k], lane);  /* on its own */
        }
    free(a);
    free(b);
}

static void float_updates_shrink(void)
{
    size_t n = 1 << 18;
    float *w = malloc(n * sizeof *w), *w2 = malloc(n * sizeof *w2);
    for (size_t i = 0; i < n; i++) {
        w[i] = ((float)next_rand() / 16777216.0f - 0.5f) * 0.06f;
        w2[i] = w[i] - 0.01f * ((float)next_rand() / 16777216.0f - 0.5f) * 0.001f;
    }
    size_t delta = round_trip((unsigned char *)w2, (unsigned char *)w, n * 4, 4);
    size_t alone = round_trip((unsigned char *)w2, NULL, n * 4, 4);
    /* Small updates cost well under half of the bytes; random floats do not shrink much. */
    CHECK(delta < n * 4 / 2);
    CHECK(alone > n * 4 * 3 / 4);
    /* Unchanged bytes cost next to nothing. */
    CHECK(round_trip((unsigned char *)w, (unsigned char *)w, n * 4, 4) < 1024);
    free(w);
    free(w2);
}

static void damage_is_refused(void)
{
    unsigned char src[4096], ref[4096];
    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (unsigned char)(i / 16);
        ref[i] = (unsigned char)(i / 17);
    }
    size_t len;
    int codec;
    CHECK_EQ_INT(mw_codec_encode(ctx, src, ref, sizeof src, 4, MW_CODEC_LEVEL, out, &len, &codec),
                 0);
    CHECK_EQ_INT(codec, MW_CODEC_DELTA);
    /* Too short, too long, a different size asked for, flipped bytes, no reference. */
    CHECK_EQ_INT(mw_codec_decode(ctx, codec, 4, out, len - 1, ref, back, sizeof src), MW_EFORMAT);
    CHECK_EQ_INT(mw_codec_decode(ctx, codec, 4, out, len, ref, back, sizeof src - 1), MW_EFORMAT);
    CHECK_EQ_INT(mw_codec_decode(ctx, codec, 4, out, len, NULL, back, sizeof src), MW_EINVAL);
    out[len / 2] ^= 0xff;
    int rc = mw_codec_decode(ctx, codec, 4, out, len, ref, back, sizeof src);
    CHECK(rc == MW_EFORMAT || rc == 0);   /* zstd frames carry no checksum by default */
    CHECK_EQ_INT(mw_codec_decode(ctx, 9, 4, out, len, ref, back, sizeof src), MW_EINVAL);
    CHECK_EQ_INT(mw_codec_decode(ctx, codec, 3, out, len, ref, back, sizeof src), MW_EINVAL);
    CHECK_EQ_INT(mw_codec_decode(ctx, MW_CODEC_RAW, 1, out, 10, NULL, back, 11), MW_EFORMAT);
    CHECK_EQ_INT(mw_codec_decode(ctx, MW_CODEC_RAW, 1, out, 10, NULL, back, MW_CODEC_PIECE + 1),
                 MW_EINVAL);
}

/* The vector loops write and read the same bytes as the portable ones (which are the
 * format of the traces already written), for every lane, with and without a reference,
 * at sizes around the blocks of sixteen items. */
static void vectors_match_portable(void)
{
    static const size_t sizes[] = {0, 5, 16, 31, 32, 33, 127, 128, 129, 1000, 4096, 65541};
    size_t cap = 65541;
    unsigned char *a = malloc(cap), *b = malloc(cap), *v = malloc(cap), *p = malloc(cap);
    for (size_t i = 0; i < cap; i++) {
        a[i] = (unsigned char)next_rand();
        b[i] = (unsigned char)(i % 5 ? a[i] + (next_rand() & 3) : next_rand());
    }
    for (unsigned lane = 1; lane <= 8; lane *= 2)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k];
            for (int with_ref = 0; with_ref < 2; with_ref++) {
                const unsigned char *ref = with_ref ? a : NULL;
                mw_codec_delta_shuffle(b, ref, n, lane, v);
                mw_codec_delta_shuffle_portable(b, ref, n, lane, p);
                CHECK(memcmp(v, p, n) == 0);
                memset(v, 0x5a, n);
                memset(p, 0xa5, n);
                mw_codec_unshuffle_add(b, ref, n, lane, v);
                mw_codec_unshuffle_add_portable(b, ref, n, lane, p);
                CHECK(memcmp(v, p, n) == 0);
            }
        }
    free(a);
    free(b);
    free(v);
    free(p);
}

static void lanes(void)
{
    CHECK_EQ_INT(mw_codec_lane(4, 4), 4);      /* float32 */
    CHECK_EQ_INT(mw_codec_lane(8, 4), 4);      /* complex64 */
    CHECK_EQ_INT(mw_codec_lane(8, 8), 8);
    CHECK_EQ_INT(mw_codec_lane(2, 2), 2);      /* float16 */
    CHECK_EQ_INT(mw_codec_lane(1, 1), 1);
    CHECK_EQ_INT(mw_codec_lane(12, 8), 1);     /* a structure of mixed fields */
    CHECK_EQ_INT(mw_codec_lane(16, 16), 1);    /* long double */
}

int main(void)
{
    CHECK_EQ_INT(mw_codec_ctx_create(&ctx), 0);
    out = malloc(mw_codec_bound(MW_CODEC_PIECE));
    back = malloc(MW_CODEC_PIECE);
    RUN(every_lane_round_trips);
    RUN(float_updates_shrink);
    RUN(damage_is_refused);
    RUN(vectors_match_portable);
    RUN(lanes);
    free(out);
    free(back);
    mw_codec_ctx_destroy(ctx);
    return UNIT_DONE();
}
