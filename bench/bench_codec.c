/* Which coding of bulk values gives the best time and size (issue 15): reads two snapshots
 * of the same bytes (old, then new) and codes new against old, piece by piece
 * (MW_CODEC_PIECE bytes), every way compared; prints per way the size as a share of the raw
 * new bytes and the encode and decode speed. A benchmark, not a test.
 *
 * usage: bench_codec OLD NEW LANE [ROUNDS]
 *
 * Ways: zstd of the new bytes alone; XOR with the old bytes, shuffled by lane, then zstd or
 * lz4; the lane-wise difference (zigzag), shuffled, then zstd (several levels) or lz4; and
 * the difference without the shuffle. "memwatch" marks the way the trace uses (codec.c).
 * Two ways code each byte plane of the shuffled difference on its own (issue 15's ideas,
 * measured and not kept): "planes" stores a plane whose bytes look uniform (order-0 entropy
 * of a sample above 7.6 bits) as it is and gives the others to zstd; "packed" also packs a
 * plane of small values 2 or 4 bits a value (larger values listed apart), whichever of the
 * packings is smallest, before zstd. Decoding includes undoing the transform (except for
 * the unshuffled difference and the plane ways, which are here for their size: "-"). */
#include <errno.h>
#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "codec.h"

enum transform { T_NONE, T_XOR, T_DELTA, T_DELTA_UNSHUFFLED };
enum compressor { C_ZSTD, C_LZ4, C_PLANES, C_PACKED };

struct way {
    const char *name;
    enum transform t;
    enum compressor c;
    int level;
};

static const struct way ways[] = {
    {"zstd-1 (new bytes alone)", T_NONE, C_ZSTD, 1},
    {"xor+shuffle zstd-1", T_XOR, C_ZSTD, 1},
    {"xor+shuffle lz4", T_XOR, C_LZ4, 0},
    {"delta+shuffle zstd-1 (memwatch)", T_DELTA, C_ZSTD, 1},
    {"delta+shuffle zstd-3", T_DELTA, C_ZSTD, 3},
    {"delta+shuffle zstd--3 (fast)", T_DELTA, C_ZSTD, -3},
    {"delta+shuffle lz4", T_DELTA, C_LZ4, 0},
    {"delta unshuffled zstd-1", T_DELTA_UNSHUFFLED, C_ZSTD, 1},
    {"delta+shuffle planes, noise raw", T_DELTA, C_PLANES, 1},
    {"delta+shuffle planes packed", T_DELTA, C_PACKED, 1},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* The transform of one piece into t. */
static void transform(enum transform w, const unsigned char *src, const unsigned char *ref,
                      size_t n, unsigned lane, unsigned char *t)
{
    switch (w) {
    case T_NONE: memcpy(t, src, n); break;
    case T_XOR: mw_codec_xor_shuffle(src, ref, n, lane, t); break;
    case T_DELTA: mw_codec_delta_shuffle(src, ref, n, lane, t); break;
    case T_DELTA_UNSHUFFLED:
        /* The difference of each lane in place: shuffle a lane of 1 byte at a time. */
        mw_codec_delta_shuffle(src, ref, n, lane, t);
        {
            unsigned char *u = malloc(n);
            size_t ni = n / lane;
            for (size_t i = 0; i < ni; i++)
                for (unsigned j = 0; j < lane; j++)
                    u[i * lane + j] = t[j * ni + i];
            memcpy(u + ni * lane, t + ni * lane, n - ni * lane);
            memcpy(t, u, n);
            free(u);
        }
        break;
    }
}

static size_t zstd_or_raw(ZSTD_CCtx *z, const unsigned char *p, size_t n, unsigned char *out,
                          size_t cap, int level)
{
    size_t r = ZSTD_compressCCtx(z, out, cap, p, n, level);
    return ZSTD_isError(r) || r > n ? n : r;
}

/* Order-0 entropy of every 31st byte of p, in bits per byte. */
static double sampled_entropy(const unsigned char *p, size_t n)
{
    size_t h[256] = {0}, m = 0;
    for (size_t i = 0; i < n; i += 31, m++)
        h[p[i]]++;
    double e = 0;
    for (int k = 0; k < 256; k++)
        if (h[k])
            e -= (double)h[k] / (double)m * log2((double)h[k] / (double)m);
    return e;
}

/* One plane of values below 2^bits, packed 8/bits a byte; values at or above the top code
 * become it and are listed apart. Returns the bytes zstd leaves of both. */
static size_t packed_plane(ZSTD_CCtx *z, const unsigned char *p, size_t n, unsigned bits,
                           unsigned char *tmp, unsigned char *out, size_t cap)
{
    unsigned per = 8 / bits, top = (1u << bits) - 1;
    size_t m = (n + per - 1) / per, nex = 0;
    unsigned char *ex = tmp + m;
    for (size_t i = 0; i < m; i++) {
        unsigned v = 0;
        for (unsigned k = 0; k < per && i * per + k < n; k++) {
            unsigned x = p[i * per + k];
            if (x >= top)
                ex[nex++] = (unsigned char)x;
            v |= (x < top ? x : top) << (k * bits);
        }
        tmp[i] = (unsigned char)v;
    }
    size_t total = zstd_or_raw(z, tmp, m, out, cap, 1);
    return total + (nex ? zstd_or_raw(z, ex, nex, out, cap, 1) : 0);
}

static size_t compress(const struct way *w, ZSTD_CCtx *z, const unsigned char *t, size_t n,
                       unsigned lane, unsigned char *out, size_t cap)
{
    if (w->c == C_LZ4)
        return (size_t)LZ4_compress_default((const char *)t, (char *)out, (int)n, (int)cap);
    if (w->c == C_ZSTD) {
        size_t r = ZSTD_compressCCtx(z, out, cap, t, n, w->level);
        return ZSTD_isError(r) ? 0 : r;
    }
    static unsigned char tmp[2 * MW_CODEC_PIECE];
    size_t ni = n / lane, total = n - ni * lane;
    for (unsigned j = 0; j < lane; j++) {
        const unsigned char *p = t + j * ni;
        size_t best = sampled_entropy(p, ni) > 7.6 ? ni : zstd_or_raw(z, p, ni, out, cap, 1);
        for (unsigned bits = 2; w->c == C_PACKED && best < ni && bits <= 4; bits *= 2) {
            size_t r = packed_plane(z, p, ni, bits, tmp, out, cap);
            best = r < best ? r : best;
        }
        total += best;
    }
    return total;
}

/* Decompresses and undoes the transform (ref: the old bytes), into dst. */
static void decode(const struct way *w, ZSTD_DCtx *z, const unsigned char *in, size_t len,
                   unsigned char *t, size_t n, const unsigned char *ref, unsigned lane,
                   unsigned char *dst)
{
    if (w->c == C_LZ4)
        LZ4_decompress_safe((const char *)in, (char *)t, (int)len, (int)n);
    else
        ZSTD_decompressDCtx(z, t, n, in, len);
    size_t ni = n / lane;
    switch (w->t) {
    case T_DELTA:
        mw_codec_unshuffle_add(t, ref, n, lane, dst);
        break;
    case T_XOR:
        for (size_t i = 0; i < ni; i++)
            for (unsigned j = 0; j < lane; j++)
                dst[i * lane + j] = t[j * ni + i] ^ ref[i * lane + j];
        for (size_t k = ni * lane; k < n; k++)
            dst[k] = t[k] ^ ref[k];
        break;
    default:   /* T_NONE is the bytes; the unshuffled delta is here for its size */
        memcpy(dst, t, n);
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_codec OLD NEW LANE [ROUNDS]\n");
        return 2;
    }
    size_t n_old, n_new;
    unsigned char *old = slurp(argv[1], &n_old), *new_ = slurp(argv[2], &n_new);
    unsigned lane = (unsigned)atoi(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    if (!old || !new_ || n_old != n_new || (lane != 1 && lane != 2 && lane != 4 && lane != 8)) {
        fprintf(stderr, "bench_codec: two files of the same size and a lane of 1, 2, 4 or 8\n");
        return 2;
    }
    size_t n = n_new, cap = ZSTD_compressBound(MW_CODEC_PIECE) + LZ4_compressBound(MW_CODEC_PIECE);
    unsigned char *t = malloc(MW_CODEC_PIECE), *out = malloc(cap), *dst = malloc(MW_CODEC_PIECE);
    ZSTD_CCtx *zc = ZSTD_createCCtx();
    ZSTD_DCtx *zd = ZSTD_createDCtx();
    printf("%-34s %8s %12s %12s\n", "way", "size %", "encode MB/s", "decode MB/s");
    for (size_t k = 0; k < sizeof ways / sizeof *ways; k++) {
        const struct way *w = &ways[k];
        double best_enc = 1e30, best_dec = 1e30;
        size_t total = 0;
        for (int r = 0; r < rounds; r++) {
            double enc = 0, dec = 0;
            total = 0;
            for (size_t at = 0; at < n; at += MW_CODEC_PIECE) {
                size_t m = n - at < MW_CODEC_PIECE ? n - at : MW_CODEC_PIECE;
                double t0 = now();
                transform(w->t, new_ + at, old + at, m, lane, t);
                size_t len = compress(w, zc, t, m, lane, out, cap);
                double t1 = now();
                if (w->c == C_ZSTD || w->c == C_LZ4)
                    decode(w, zd, out, len, t, m, old + at, lane, dst);
                double t2 = now();
                enc += t1 - t0;
                dec += t2 - t1;
                total += len < m ? len : m;
            }
            best_enc = enc < best_enc ? enc : best_enc;
            best_dec = dec < best_dec ? dec : best_dec;
        }
        char dec[32] = "-";
        if (w->c == C_ZSTD || w->c == C_LZ4)
            snprintf(dec, sizeof dec, "%.0f", (double)n / best_dec / 1e6);
        printf("%-34s %8.1f %12.0f %12s\n", w->name, 100.0 * (double)total / (double)n,
               (double)n / best_enc / 1e6, dec);
    }
    ZSTD_freeCCtx(zc);
    ZSTD_freeDCtx(zd);
    free(old);
    free(new_);
    free(t);
    free(out);
    free(dst);
    return 0;
}
