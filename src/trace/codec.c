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
