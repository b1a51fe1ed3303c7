/* Bulk values in the trace: the lane transforms and zstd (see codec.h). */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "mw_error.h"

struct mw_codec_ctx {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *scratch;   /* MW_CODEC_PIECE bytes: the transformed piece */
};

int mw_codec_ctx_create(mw_codec_ctx **out)
{
    mw_codec_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->cctx = ZSTD_createCCtx();
        c->dctx = ZSTD_createDCtx();
        c->scratch = malloc(MW_CODEC_PIECE);
    }
    if (!c || !c->cctx || !c->dctx || !c->scratch) {
        mw_codec_ctx_destroy(c);
        *out = NULL;
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void mw_codec_ctx_destroy(mw_codec_ctx *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c->scratch);
    free(c);
}

unsigned mw_codec_lane(size_t itemsize, size_t scalar_size)
{
    if (scalar_size == 2 || scalar_size == 4 || scalar_size == 8)
        return itemsize % scalar_size == 0 ? (unsigned)scalar_size : 1;
    return 1;
}

size_t mw_codec_bound(size_t n)
{
    size_t z = ZSTD_compressBound(n);
    return z > n ? z : n;
}

/* ---- the transforms ----------------------------------------------------------------- */

/* One function per lane width: the loops are the whole cost of a piece besides zstd, so
 * each works on native integers of its width (the trace is little-endian, like the
 * machines memwatch runs on; a big-endian build would have to swap here). */
#define LANE_FUNCS(bits)                                                                   \
    static void delta_shuffle_##bits(const unsigned char *src, const unsigned char *ref,  \
                                     size_t ni, unsigned char *out)                        \
    {                                                                                      \
        for (size_t i = 0; i < ni; i++) {                                                  \
            uint##bits##_t s, r = 0, z;                                                    \
            memcpy(&s, src + i * (bits / 8), bits / 8);                                   \
            if (ref) {                                                                     \
                memcpy(&r, ref + i * (bits / 8), bits / 8);                               \
                uint##bits##_t d = (uint##bits##_t)(s - r);                                \
                /* zigzag: 0, -1, 1, -2 ... become 0, 1, 2, 3 ... */                       \
                z = (uint##bits##_t)((uint##bits##_t)(d << 1) ^                            \
                                     (uint##bits##_t)(0 - (d >> (bits - 1))));             \
            } else {                                                                       \
                z = s;                                                                     \
            }                                                                              \
            for (unsigned j = 0; j < bits / 8; j++)                                        \
                out[j * ni + i] = (unsigned char)(z >> (8 * j));                           \
        }                                                                                  \
    }                                                                                      \
    static void unshuffle_add_##bits(const unsigned char *in, const unsigned char *ref,   \
                                     size_t ni, unsigned char *dst)                        \
    {                                                                                      \
        for (size_t i = 0; i < ni; i++) {                                                  \
            uint##bits##_t z = 0, s;                                                       \
            for (unsigned j = 0; j < bits / 8; j++)                                        \
                z |= (uint##bits##_t)((uint##bits##_t)in[j * ni + i] << (8 * j));         \
            if (ref) {                                                                     \
                uint##bits##_t r;                                                          \
                memcpy(&r, ref + i * (bits / 8), bits / 8);                               \
                uint##bits##_t d = (uint##bits##_t)((z >> 1) ^ (uint##bits##_t)(0 - (z & 1))); \
                s = (uint##bits##_t)(r + d);                                               \
            } else {                                                                       \
                s = z;                                                                     \
            }                                                                              \
            memcpy(dst + i * (bits / 8), &s, bits / 8);                                    \
        }                                                                                  \
    }

LANE_FUNCS(8)
LANE_FUNCS(16)
LANE_FUNCS(32)
LANE_FUNCS(64)

void mw_codec_delta_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *out)
{
    size_t ni = n / lane, done = ni * lane;
    switch (lane) {
    case 2: delta_shuffle_16(src, ref, ni, out); break;
    case 4: delta_shuffle_32(src, ref, ni, out); break;
    case 8: delta_shuffle_64(src, ref, ni, out); break;
    default: done = 0; break;
    }
    /* The tail shorter than a lane, and lane 1: byte by byte. */
    delta_shuffle_8(src + done, ref ? ref + done : NULL, n - done, out + done);
}

void mw_codec_unshuffle_add(const unsigned char *in, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *dst)
{
    size_t ni = n / lane, done = ni * lane;
    switch (lane) {
    case 2: unshuffle_add_16(in, ref, ni, dst); break;
    case 4: unshuffle_add_32(in, ref, ni, dst); break;
    case 8: unshuffle_add_64(in, ref, ni, dst); break;
    default: done = 0; break;
    }
    unshuffle_add_8(in + done, ref ? ref + done : NULL, n - done, dst + done);
}

void mw_codec_xor_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                          unsigned lane, unsigned char *out)
{
    size_t ni = n / lane;
    for (size_t i = 0; i < ni; i++)
        for (unsigned j = 0; j < lane; j++)
            out[j * ni + i] = src[i * lane + j] ^ ref[i * lane + j];
    for (size_t k = ni * lane; k < n; k++)
        out[k] = src[k] ^ ref[k];
}

/* ---- pieces ---------------------------------------------------------------------------- */

static int lane_ok(unsigned lane)
{
    return lane == 1 || lane == 2 || lane == 4 || lane == 8;
}

int mw_codec_encode(mw_codec_ctx *c, const unsigned char *src, const unsigned char *ref,
                    size_t n, unsigned lane, int level, unsigned char *out, size_t *out_len,
                    int *codec)
{
    if (n > MW_CODEC_PIECE || !lane_ok(lane))
        return MW_EINVAL;
    mw_codec_delta_shuffle(src, ref, n, lane, c->scratch);
    size_t z = ZSTD_compressCCtx(c->cctx, out, mw_codec_bound(n), c->scratch, n, level);
    if (!ZSTD_isError(z) && z < n) {
        *out_len = z;
        *codec = ref ? MW_CODEC_DELTA : MW_CODEC_ZSTD;
        return 0;
    }
    /* Incompressible (or zstd out of memory): the bytes themselves. */
    if (n)
        memcpy(out, src, n);
    *out_len = n;
    *codec = MW_CODEC_RAW;
    return 0;
}

int mw_codec_decode(mw_codec_ctx *c, int codec, unsigned lane, const unsigned char *in,
                    size_t in_len, const unsigned char *ref, unsigned char *dst, size_t n)
{
    if (n > MW_CODEC_PIECE || !lane_ok(lane))
        return MW_EINVAL;
    if (codec == MW_CODEC_RAW) {
        if (in_len != n)
            return MW_EFORMAT;
        if (n)
            memcpy(dst, in, n);
        return 0;
    }
    if (codec != MW_CODEC_ZSTD && codec != MW_CODEC_DELTA)
        return MW_EINVAL;
    if (codec == MW_CODEC_DELTA && !ref)
        return MW_EINVAL;
    size_t got = ZSTD_decompressDCtx(c->dctx, c->scratch, n, in, in_len);
    if (ZSTD_isError(got) || got != n)
        return MW_EFORMAT;
    mw_codec_unshuffle_add(c->scratch, codec == MW_CODEC_DELTA ? ref : NULL, n, lane, dst);
    return 0;
}
