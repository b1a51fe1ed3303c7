/* The lane transforms of bulk values (codec.h): zigzag(new - old) or new ^ old per lane,
 * shuffled into byte planes, and back.
 *
 * DESIGN: these loops were a third of the writer's time on a large change (a byte store
 * per byte, 1.6 GB/s; ~5 GB/s now, bench/codec.sh). On x86-64 (SSE2 is part of the base
 * instruction set) sixteen items are transposed at a time in registers: the items'
 * vectors go through four rounds of byte interleaving (unpacklo/unpackhi), each of which
 * moves one bit of an item's number into the byte's position in its vector; after the
 * four rounds each vector holds one byte plane of the sixteen items. Decoding undoes the
 * rounds in reverse order (a round's inverse splits the even and odd bytes with packus).
 * Items past the last whole block of sixteen, and other machines, take the portable
 * loops, which give the same bytes (tests/unit/test_codec.c compares them). */
#include "codec.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define MW_CODEC_SSE2 1
#endif

/* ---- portable loops ------------------------------------------------------------------- */

/* One function per lane width, on native integers of its width (the trace is
 * little-endian, like the machines memwatch runs on; a big-endian build would swap here).
 * Items [from, ni) of a block of ni items. */
#define LANE_FUNCS(bits)                                                                   \
    static void delta_shuffle_##bits(const unsigned char *src, const unsigned char *ref,  \
                                     size_t from, size_t ni, unsigned char *out, int xor_)  \
    {                                                                                      \
        for (size_t i = from; i < ni; i++) {                                               \
            uint##bits##_t s, r = 0, z;                                                    \
            memcpy(&s, src + i * (bits / 8), bits / 8);                                   \
            if (ref)                                                                       \
                memcpy(&r, ref + i * (bits / 8), bits / 8);                               \
            if (xor_) {                                                                    \
                z = (uint##bits##_t)(s ^ r);                                               \
            } else if (ref) {                                                              \
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
                                     size_t from, size_t ni, unsigned char *dst)           \
    {                                                                                      \
        for (size_t i = from; i < ni; i++) {                                               \
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

/* ---- sixteen items at a time (SSE2) ------------------------------------------------------ */

#ifdef MW_CODEC_SSE2

/* A round pairs the vectors whose index differs in one bit: the low halves interleaved go
 * to the one with the bit clear, the high halves to the other; undone by splitting the
 * even and odd bytes. Written out per lane so that the vectors stay in registers.
 *
 * With 16 items of `lane` bytes in `lane` vectors, a byte's item i and plane j sit as
 * vector index (high bits of i) and position (low bits of i, then j); every round moves
 * the position's top bit into the paired index bit and shifts the paired bit in at the
 * bottom, so pairing on i's bits from the highest down leaves position = i and index = j
 * (for lane 8 with its bits permuted: PLANE8). */
#define IL(a, b)                                                                           \
    do {                                                                                   \
        __m128i t_ = (a);                                                                  \
        (a) = _mm_unpacklo_epi8(t_, (b));                                                  \
        (b) = _mm_unpackhi_epi8(t_, (b));                                                  \
    } while (0)
#define DL(a, b)                                                                           \
    do {                                                                                   \
        __m128i lo_ = (a), hi_ = (b), m_ = _mm_set1_epi16(0x00ff);                         \
        (a) = _mm_packus_epi16(_mm_and_si128(lo_, m_), _mm_and_si128(hi_, m_));            \
        (b) = _mm_packus_epi16(_mm_srli_epi16(lo_, 8), _mm_srli_epi16(hi_, 8));            \
    } while (0)
/* Rounds on index bits 2, 1, 0, 2 (lane 8), 1, 0, 1, 0 (lane 4), 0 x4 (lane 2). */
#define ROUNDS8(OP)                                                                        \
    OP(x[0], x[4]); OP(x[1], x[5]); OP(x[2], x[6]); OP(x[3], x[7]);                        \
    OP(x[0], x[2]); OP(x[1], x[3]); OP(x[4], x[6]); OP(x[5], x[7]);                        \
    OP(x[0], x[1]); OP(x[2], x[3]); OP(x[4], x[5]); OP(x[6], x[7]);                        \
    OP(x[0], x[4]); OP(x[1], x[5]); OP(x[2], x[6]); OP(x[3], x[7])
#define ROUNDS8_BACK(OP)                                                                   \
    OP(x[0], x[4]); OP(x[1], x[5]); OP(x[2], x[6]); OP(x[3], x[7]);                        \
    OP(x[0], x[1]); OP(x[2], x[3]); OP(x[4], x[5]); OP(x[6], x[7]);                        \
    OP(x[0], x[2]); OP(x[1], x[3]); OP(x[4], x[6]); OP(x[5], x[7]);                        \
    OP(x[0], x[4]); OP(x[1], x[5]); OP(x[2], x[6]); OP(x[3], x[7])
#define ROUNDS4(OP)                                                                        \
    OP(x[0], x[2]); OP(x[1], x[3]); OP(x[0], x[1]); OP(x[2], x[3]);                        \
    OP(x[0], x[2]); OP(x[1], x[3]); OP(x[0], x[1]); OP(x[2], x[3])
#define ROUNDS4_BACK(OP)                                                                   \
    OP(x[0], x[1]); OP(x[2], x[3]); OP(x[0], x[2]); OP(x[1], x[3]);                        \
    OP(x[0], x[1]); OP(x[2], x[3]); OP(x[0], x[2]); OP(x[1], x[3])
#define ROUNDS2(OP) OP(x[0], x[1]); OP(x[0], x[1]); OP(x[0], x[1]); OP(x[0], x[1])
/* The vector holding plane j after ROUNDS8: index bit 2 = j0, bit 1 = j2, bit 0 = j1. */
#define PLANE8(j) ((((j) & 1) << 2) | ((((j) >> 2) & 1) << 1) | (((j) >> 1) & 1))

static inline __m128i load16(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static inline void store16(unsigned char *p, __m128i v)
{
    _mm_storeu_si128((__m128i *)(void *)p, v);
}

/* zigzag(s - r) (or s ^ r, or s) of a vector of items of `lane` bytes. */
static inline __m128i code_vec(__m128i s, __m128i r, unsigned lane, int mode)
{
    if (mode == 0)
        return s;
    if (mode == 2)
        return _mm_xor_si128(s, r);
    switch (lane) {
    case 8: {
        __m128i d = _mm_sub_epi64(s, r);
        __m128i sign = _mm_shuffle_epi32(_mm_srai_epi32(d, 31), _MM_SHUFFLE(3, 3, 1, 1));
        return _mm_xor_si128(_mm_slli_epi64(d, 1), sign);
    }
    case 4: {
        __m128i d = _mm_sub_epi32(s, r);
        return _mm_xor_si128(_mm_slli_epi32(d, 1), _mm_srai_epi32(d, 31));
    }
    default: {
        __m128i d = _mm_sub_epi16(s, r);
        return _mm_xor_si128(_mm_slli_epi16(d, 1), _mm_srai_epi16(d, 15));
    }
    }
}

/* r + unzigzag(z) (or z, without r). */
static inline __m128i uncode_vec(__m128i z, __m128i r, unsigned lane, int with_ref)
{
    if (!with_ref)
        return z;
    switch (lane) {
    case 8: {
        __m128i neg = _mm_sub_epi64(_mm_setzero_si128(), _mm_and_si128(z, _mm_set1_epi64x(1)));
        return _mm_add_epi64(r, _mm_xor_si128(_mm_srli_epi64(z, 1), neg));
    }
    case 4: {
        __m128i neg = _mm_sub_epi32(_mm_setzero_si128(), _mm_and_si128(z, _mm_set1_epi32(1)));
        return _mm_add_epi32(r, _mm_xor_si128(_mm_srli_epi32(z, 1), neg));
    }
    default: {
        __m128i neg = _mm_sub_epi16(_mm_setzero_si128(), _mm_and_si128(z, _mm_set1_epi16(1)));
        return _mm_add_epi16(r, _mm_xor_si128(_mm_srli_epi16(z, 1), neg));
    }
    }
}

/* Whole blocks of sixteen items of LANE bytes (a constant in each copy: the loops unroll
 * and the vectors stay in registers). mode: 0 copy, 1 delta, 2 xor. */
#define BLOCK_FUNCS(LANE, ROUNDS, BACK, PLANE)                                             \
    static size_t shuffle_blocks_##LANE(const unsigned char *src, const unsigned char *ref, \
                                        size_t ni, unsigned char *out, int mode)          \
    {                                                                                      \
        size_t blocks = ni / 16;                                                           \
        for (size_t b = 0; b < blocks; b++) {                                              \
            __m128i x[LANE];                                                               \
            const unsigned char *s = src + b * 16 * LANE;                                  \
            const unsigned char *r = ref ? ref + b * 16 * LANE : s;                        \
            for (unsigned k = 0; k < LANE; k++)                                            \
                x[k] = code_vec(load16(s + 16 * k), load16(r + 16 * k), LANE, mode);       \
            ROUNDS(IL);                                                                    \
            for (unsigned j = 0; j < LANE; j++)                                            \
                store16(out + j * ni + b * 16, x[PLANE(j)]);                               \
        }                                                                                  \
        return blocks * 16;                                                                \
    }                                                                                      \
    static size_t unshuffle_blocks_##LANE(const unsigned char *in, const unsigned char *ref, \
                                          size_t ni, unsigned char *dst)                   \
    {                                                                                      \
        size_t blocks = ni / 16;                                                           \
        for (size_t b = 0; b < blocks; b++) {                                              \
            __m128i x[LANE];                                                               \
            for (unsigned j = 0; j < LANE; j++)                                            \
                x[PLANE(j)] = load16(in + j * ni + b * 16);                                \
            BACK(DL);                                                                      \
            unsigned char *d = dst + b * 16 * LANE;                                        \
            const unsigned char *r = ref ? ref + b * 16 * LANE : NULL;                     \
            for (unsigned k = 0; k < LANE; k++)                                            \
                store16(d + 16 * k, uncode_vec(x[k], r ? load16(r + 16 * k) : x[k], LANE,  \
                                               r != NULL));                                \
        }                                                                                  \
        return blocks * 16;                                                                \
    }

#define PLANE_SAME(j) (j)
BLOCK_FUNCS(8, ROUNDS8, ROUNDS8_BACK, PLANE8)
BLOCK_FUNCS(4, ROUNDS4, ROUNDS4_BACK, PLANE_SAME)
BLOCK_FUNCS(2, ROUNDS2, ROUNDS2, PLANE_SAME)

static size_t shuffle_blocks(const unsigned char *src, const unsigned char *ref, size_t ni,
                             unsigned lane, unsigned char *out, int mode)
{
    switch (lane) {
    case 8: return shuffle_blocks_8(src, ref, ni, out, mode);
    case 4: return shuffle_blocks_4(src, ref, ni, out, mode);
    case 2: return shuffle_blocks_2(src, ref, ni, out, mode);
    default: return 0;
    }
}

static size_t unshuffle_blocks(const unsigned char *in, const unsigned char *ref, size_t ni,
                               unsigned lane, unsigned char *dst)
{
    switch (lane) {
    case 8: return unshuffle_blocks_8(in, ref, ni, dst);
    case 4: return unshuffle_blocks_4(in, ref, ni, dst);
    case 2: return unshuffle_blocks_2(in, ref, ni, dst);
    default: return 0;
    }
}

#else

static size_t shuffle_blocks(const unsigned char *src, const unsigned char *ref, size_t ni,
                             unsigned lane, unsigned char *out, int mode)
{
    (void)src, (void)ref, (void)ni, (void)lane, (void)out, (void)mode;
    return 0;
}

static size_t unshuffle_blocks(const unsigned char *in, const unsigned char *ref, size_t ni,
                               unsigned lane, unsigned char *dst)
{
    (void)in, (void)ref, (void)ni, (void)lane, (void)dst;
    return 0;
}

#endif

/* ---- the transforms ------------------------------------------------------------------------- */

/* mode: 1 zigzag(src - ref) (src alone without ref), 2 src ^ ref. */
static void shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                    unsigned lane, unsigned char *out, int mode, int vectors)
{
    size_t ni = n / lane, done = ni * lane;
    int m = mode == 1 && !ref ? 0 : mode;
    size_t from = vectors && lane > 1 ? shuffle_blocks(src, ref, ni, lane, out, m) : 0;
    switch (lane) {
    case 2: delta_shuffle_16(src, ref, from, ni, out, mode == 2); break;
    case 4: delta_shuffle_32(src, ref, from, ni, out, mode == 2); break;
    case 8: delta_shuffle_64(src, ref, from, ni, out, mode == 2); break;
    default: done = 0; break;
    }
    /* The tail shorter than a lane, and lane 1: byte by byte. */
    delta_shuffle_8(src + done, ref ? ref + done : NULL, 0, n - done, out + done, mode == 2);
}

void mw_codec_delta_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *out)
{
    shuffle(src, ref, n, lane, out, 1, 1);
}

void mw_codec_xor_shuffle(const unsigned char *src, const unsigned char *ref, size_t n,
                          unsigned lane, unsigned char *out)
{
    shuffle(src, ref, n, lane, out, 2, 1);
}

void mw_codec_delta_shuffle_portable(const unsigned char *src, const unsigned char *ref,
                                     size_t n, unsigned lane, unsigned char *out)
{
    shuffle(src, ref, n, lane, out, 1, 0);
}

static void unshuffle(const unsigned char *in, const unsigned char *ref, size_t n,
                      unsigned lane, unsigned char *dst, int vectors)
{
    size_t ni = n / lane, done = ni * lane;
    size_t from = vectors && lane > 1 ? unshuffle_blocks(in, ref, ni, lane, dst) : 0;
    switch (lane) {
    case 2: unshuffle_add_16(in, ref, from, ni, dst); break;
    case 4: unshuffle_add_32(in, ref, from, ni, dst); break;
    case 8: unshuffle_add_64(in, ref, from, ni, dst); break;
    default: done = 0; break;
    }
    unshuffle_add_8(in + done, ref ? ref + done : NULL, 0, n - done, dst + done);
}

void mw_codec_unshuffle_add(const unsigned char *in, const unsigned char *ref, size_t n,
                            unsigned lane, unsigned char *dst)
{
    unshuffle(in, ref, n, lane, dst, 1);
}

void mw_codec_unshuffle_add_portable(const unsigned char *in, const unsigned char *ref,
                                     size_t n, unsigned lane, unsigned char *dst)
{
    unshuffle(in, ref, n, lane, dst, 0);
}
