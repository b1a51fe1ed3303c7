/* How the trace stores bulk values (schemas/trace.sql, "VALUES"): pieces of at most
 * MW_CODEC_PIECE bytes, each transformed and compressed on its own.
 *
 * DESIGN: a change's new bytes are coded against its old bytes (the value they replace),
 * which a reader already has from the object's history: float updates differ from the
 * previous value in their low bits, so the lane-wise difference (new - old, as little-endian
 * integers of `lane` bytes, zigzag-coded so that small negative differences are small
 * numbers too) is mostly zero bytes in its high positions. Shuffling the bytes by lane (all
 * first bytes, then all second bytes, ...) puts those zeros together, and zstd takes them
 * out. bench/codec.sh compares this with XOR instead of the difference, with lz4 instead
 * of zstd and with zstd alone (README, "Watching large objects and long runs"). Values
 * without a reference (an object's value when first seen) are only shuffled and compressed.
 * A piece that does not get smaller is stored as it is. Python-free and SQLite-free. */
#ifndef MW_TRACE_CODEC_H
#define MW_TRACE_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* The codec column of the chunks table. */
enum mw_codec {
    MW_CODEC_RAW = 0,     /* the bytes as they are */
    MW_CODEC_ZSTD = 1,    /* a zstd frame of the bytes shuffled by lane */
    MW_CODEC_DELTA = 2,   /* a zstd frame of zigzag(new - old) per lane, shuffled by lane */
};

/* Decoded bytes per piece: large enough for zstd to find the zeros, small enough that a
 * reader decodes what it needs of a large object piece by piece. A multiple of every lane. */
#define MW_CODEC_PIECE ((size_t)1 << 20)

/* The zstd level the writer uses: level 1 is the fastest of the levels that keep the size
 * target (bench/codec.sh prints the others). */
#define MW_CODEC_LEVEL 1

typedef struct mw_codec_ctx mw_codec_ctx;

int mw_codec_ctx_create(mw_codec_ctx **out);
void mw_codec_ctx_destroy(mw_codec_ctx *c);   /* accepts NULL */

/* 1, 2, 4 or 8: the lane of items of itemsize bytes whose scalars are numbers of that size
 * (float32, int64, complex64's parts...); 1 for anything else. */
unsigned mw_codec_lane(size_t itemsize, size_t scalar_size);

/* The most bytes mw_codec_encode writes for n input bytes. */
size_t mw_codec_bound(size_t n);

/* Encodes n bytes (n <= MW_CODEC_PIECE) of src. With ref (the n bytes src replaces) the
 * piece is delta-coded, else compressed on its own. Writes at most mw_codec_bound(n) bytes
 * to out: *out_len and *codec. 0, or -ENOMEM / MW_EINVAL. */
int mw_codec_encode(mw_codec_ctx *c, const unsigned char *src, const unsigned char *ref,
                    size_t n, unsigned lane, int level, unsigned char *out, size_t *out_len,
                    int *codec);

/* Decodes a piece into dst (exactly n bytes). ref: the bytes the piece replaced (needed
 * by MW_CODEC_DELTA only; NULL otherwise). 0, or MW_EFORMAT when the piece does not
 * decode to n bytes (a damaged or hand-made trace), MW_EINVAL for a bad codec or lane. */
int mw_codec_decode(mw_codec_ctx *c, int codec, unsigned lane, const unsigned char *in,
                    size_t in_len, const unsigned char *ref, unsigned char *dst, size_t n);

/* The transforms alone, for bench/bench_codec.c: n bytes, lanes of `lane` bytes (a tail
 * shorter than a lane is kept byte by byte). delta_shuffle writes zigzag(src - ref) (or
 * src, when ref is NULL) shuffled; unshuffle_add reverses it. xor_shuffle: src ^ ref. */
void mw_codec_delta_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *out);
void mw_codec_unshuffle_add(const unsigned char *in, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *dst);
void mw_codec_xor_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                          unsigned lane, unsigned char *out);
/* The same without the vector loops (codec_lanes.c), for the tests to compare. */
void mw_codec_delta_shuffle_portable(const unsigned char *src, const unsigned char *ref,
                                     size_t n, unsigned lane, unsigned char *out);
void mw_codec_unshuffle_add_portable(const unsigned char *in, const unsigned char *ref,
                                     size_t n, unsigned lane, unsigned char *dst);

#endif
