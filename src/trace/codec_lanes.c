/* The lane transforms of bulk values (codec.h): zigzag(new - old) or new ^ old per lane,
 * shuffled into byte planes, and back.
 *
 * DESIGN: these loops were half of the writer's time on a large change (a byte store per
 * byte, 1.6 GB/s). On x86-64 (SSE2 is part of the base instruction set) sixteen items are
 * transposed at a time in registers: the items' vectors go through four rounds of byte
 * interleaving (unpacklo/unpackhi), each of which moves one bit of an item's number into
 * the byte's position in its vector; after the four rounds each vector holds one byte
 * plane of the sixteen items. Decoding undoes the rounds in reverse order (a round's
 * inverse splits the even and odd bytes with packus). Items past the last whole block of
 * sixteen, and other machines, take the portable loops, which give the same bytes
 * (tests/unit/test_codec.c compares them). */
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

/* A round pairs the vectors whose index differs in bit b: the low halves interleaved go
 * to the one with the bit clear, the high halves to the other. */
static inline void interleave_round(__m128i *x, unsigned nvec, unsigned b)
{
    for (unsigned k = 0; k < nvec; k++)
        if (!(k & (1u << b))) {
            __m128i a = x[k], c = x[k | (1u << b)];
            x[k] = _mm_unpacklo_epi8(a, c);
            x[k | (1u << b)] = _mm_unpackhi_epi8(a, c);
        }
}

static inline void deinterleave_round(__m128i *x, unsigned nvec, unsigned b)
{
    const __m128i low = _mm_set1_epi16(0x00ff);
    for (unsigned k = 0; k < nvec; k++)
        if (!(k & (1u << b))) {
            __m128i lo = x[k], hi = x[k | (1u << b)];
            x[k] = _mm_packus_epi16(_mm_and_si128(lo, low), _mm_and_si128(hi, low));
            x[k | (1u << b)] = _mm_packus_epi16(_mm_srli_epi16(lo, 8), _mm_srli_epi16(hi, 8));
        }
}

/* Per lane: the vector-index bit each of the four rounds pairs on, and where byte plane j
 * ends up. With 16 items of `lane` bytes in lane vectors, a byte's item i and plane j sit
 * as vector index (high bits of i) and position (low bits of i, then j); every round moves
 * the position's top bit into the paired index bit and shifts the paired bit in at the
 * bottom, so pairing on i's bits from the highest down leaves position = i and index = j
 * (for lane 8 with its bits permuted: vec_of_plane). */
static const unsigned rounds8[4] = {2, 1, 0, 2}, rounds4[4] = {1, 0, 1, 0},
                      rounds2[4] = {0, 0, 0, 0};

static inline unsigned vec_of_plane(unsigned lane, unsigned j)
{
    if (lane != 8)
        return j;
    /* bit 2 = j0, bit 1 = j2, bit 0 = j1 */
    return ((j & 1u) << 2) | (((j >> 2) & 1u) << 1) | ((j >> 1) & 1u);
}

static inline const unsigned *rounds_of(unsigned lane)
{
    return lane == 8 ? rounds8 : lane == 4 ? rounds4 : rounds2;
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

/* Whole blocks of sixteen items; returns the items done. mode: 0 copy, 1 delta, 2 xor. */
static size_t shuffle_blocks(const unsigned char *src, const unsigned char *ref, size_t ni,
                             unsigned lane, unsigned char *out, int mode)
{
    const unsigned *rounds = rounds_of(lane);
    size_t blocks = ni / 16;
    for (size_t b = 0; b < blocks; b++) {
        __m128i x[8];
        const unsigned char *s = src + b * 16 * lane, *r = ref ? ref + b * 16 * lane : NULL;
        for (unsigned k = 0; k < lane; k++) {
            __m128i sv = _mm_loadu_si128((const __m128i *)(s + 16 * k));
            __m128i rv = r ? _mm_loadu_si128((const __m128i *)(r + 16 * k)) : sv;
            x[k] = code_vec(sv, rv, lane, mode);
        }
        for (unsigned q = 0; q < 4; q++)
            interleave_round(x, lane, rounds[q]);
        for (unsigned j = 0; j < lane; j++)
            _mm_storeu_si128((__m128i *)(out + j * ni + b * 16), x[vec_of_plane(lane, j)]);
    }
    return blocks * 16;
}

static size_t unshuffle_blocks(const unsigned char *in, const unsigned char *ref, size_t ni,
                               unsigned lane, unsigned char *dst)
{
    const unsigned *rounds = rounds_of(lane);
    size_t blocks = ni / 16;
    for (size_t b = 0; b < blocks; b++) {
        __m128i x[8];
        for (unsigned j = 0; j < lane; j++)
            x[vec_of_plane(lane, j)] = _mm_loadu_si128((const __m128i *)(in + j * ni + b * 16));
        for (unsigned q = 4; q-- > 0;)
            deinterleave_round(x, lane, rounds[q]);
        unsigned char *d = dst + b * 16 * lane;
        const unsigned char *r = ref ? ref + b * 16 * lane : NULL;
        for (unsigned k = 0; k < lane; k++) {
            __m128i rv = r ? _mm_loadu_si128((const __m128i *)(r + 16 * k)) : x[k];
            _mm_storeu_si128((__m128i *)(d + 16 * k), uncode_vec(x[k], rv, lane, r != NULL));
        }
    }
    return blocks * 16;
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
