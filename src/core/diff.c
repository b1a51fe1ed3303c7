/* Changed-byte runs between two buffers: see diff.h. */
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "diff.h"

/* cur is watched memory, which memwatch reads but does not own: a watch_buffer() range is
 * whatever the user named, and may cover another allocation's redzone or be freed while it
 * is watched (then the engine goes on reporting what is written there, as a watchpoint
 * should, until it is unwatched). AddressSanitizer's shadow describes the program's use of
 * that memory, not whether memwatch may read it, so these reads are not instrumented; the
 * memcmp/memcpy of whole pages are left unchecked the same way (replace_intrin=0 and
 * intercept_memcmp=0, cli/launch.c). Every other access of memwatch's stays checked. The
 * helpers carry the attribute too: GCC does not inline a checked function into an
 * unchecked one. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define MW_READS_WATCHED_MEMORY __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef MW_READS_WATCHED_MEMORY
#define MW_READS_WATCHED_MEMORY
#endif

/* Bit i of the result is set when byte i of the 16-byte block differs. */
MW_READS_WATCHED_MEMORY
static inline uint32_t block_diff_mask(const unsigned char *a, const unsigned char *b)
{
#if defined(__SSE2__)
    __m128i va = _mm_loadu_si128((const __m128i *)(const void *)a);
    __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)b);
    return ~(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(va, vb)) & 0xffffu;
#else
    /* Portable path: callers reach here only for blocks that the 8-byte-word skip in
     * equal64 did not rule out, so a byte loop is cheap enough. */
    uint32_t m = 0;
    for (int i = 0; i < 16; i++)
        if (a[i] != b[i])
            m |= 1u << i;
    return m;
#endif
}

/* True when the 64 bytes at a and b are equal: a cheap skip over unchanged stretches. */
MW_READS_WATCHED_MEMORY
static inline int equal64(const unsigned char *a, const unsigned char *b)
{
    uint64_t acc = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t x, y;
        memcpy(&x, a + 8 * i, 8);
        memcpy(&y, b + 8 * i, 8);
        acc |= x ^ y;
    }
    return acc == 0;
}

MW_READS_WATCHED_MEMORY
long mw_diff_ranges(const void *old, const void *cur, size_t len, mw_diff_emit_fn emit,
                    void *ctx)
{
    const unsigned char *a = old, *b = cur;
    long nruns = 0;
    int in_run = 0;
    size_t run_start = 0;
    size_t pos = 0;

    if (len == 0 || memcmp(a, b, len) == 0)
        return 0;

    while (pos < len) {
        if (!in_run && pos + 64 <= len && equal64(a + pos, b + pos)) {
            pos += 64;
            continue;
        }
        uint32_t d;
        size_t width;
        if (pos + 16 <= len) {
            d = block_diff_mask(a + pos, b + pos);
            width = 16;
        } else {
            d = 0;
            width = len - pos;
            for (size_t i = 0; i < width; i++)
                if (a[pos + i] != b[pos + i])
                    d |= 1u << i;
        }
        uint32_t full = width == 16 ? 0xffffu : ((1u << width) - 1);
        /* Walk the block's bits: alternate between looking for the next differing byte
         * (outside a run) and the next equal byte (inside one). */
        size_t bit = 0;
        while (bit < width) {
            uint32_t rest = full & ~((1u << bit) - 1);
            if (!in_run) {
                uint32_t m = d & rest;
                if (!m)
                    break;
                bit = (size_t)__builtin_ctz(m);
                run_start = pos + bit;
                in_run = 1;
            } else {
                uint32_t m = ~d & rest;
                if (!m)
                    break;
                bit = (size_t)__builtin_ctz(m);
                int rc = emit(run_start, pos + bit - run_start, ctx);
                if (rc)
                    return rc;
                nruns++;
                in_run = 0;
            }
        }
        pos += width;
    }
    if (in_run) {
        int rc = emit(run_start, len - run_start, ctx);
        if (rc)
            return rc;
        nruns++;
    }
    return nruns;
}

MW_READS_WATCHED_MEMORY
long mw_diff_ranges_joined(const void *old, const void *cur, size_t len, size_t gap,
                           mw_diff_emit_fn emit, void *ctx)
{
    const unsigned char *a = old, *b = cur;
    long nruns = 0;
    int in_run = 0;
    size_t run_start = 0, run_end = 0;   /* run_end: one past its last differing byte */
    size_t pos = 0;

    if (len == 0 || memcmp(a, b, len) == 0)
        return 0;
    while (pos < len) {
        if (pos + 64 <= len && equal64(a + pos, b + pos)) {
            pos += 64;
            continue;
        }
        uint32_t d;
        size_t width = len - pos < 16 ? len - pos : 16;
        if (width == 16) {
            d = block_diff_mask(a + pos, b + pos);
        } else {
            d = 0;
            for (size_t i = 0; i < width; i++)
                if (a[pos + i] != b[pos + i])
                    d |= 1u << i;
        }
        if (d) {
            /* Only a block's first and last differing bytes matter: a gap inside a block
             * is shorter than 16 bytes, and gap is at least that (see diff.h). */
            size_t first = pos + (size_t)__builtin_ctz(d);
            size_t last = pos + 32 - (size_t)__builtin_clz(d);
            if (in_run && first - run_end > gap) {
                int rc = emit(run_start, run_end - run_start, ctx);
                if (rc)
                    return rc;
                nruns++;
                in_run = 0;
            }
            if (!in_run) {
                run_start = first;
                in_run = 1;
            }
            run_end = last;
        }
        pos += width;
    }
    if (in_run) {
        int rc = emit(run_start, run_end - run_start, ctx);
        if (rc)
            return rc;
        nruns++;
    }
    return nruns;
}
