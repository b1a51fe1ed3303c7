/* Byte-exact comparison of an old copy against current memory.
 *
 * mw_diff_ranges reports the maximal runs of differing bytes of [0, len), in ascending order:
 * two runs are always separated by at least one equal byte, and a byte rewritten with the
 * same value is no change. Equal inputs cost one memcmp. The comparison works on 16-byte
 * blocks (SSE2 where available, 8-byte words otherwise) and only looks at single bytes at
 * the edges of a run. */
#ifndef MW_DIFF_H
#define MW_DIFF_H

#include <stddef.h>

/* Called once per changed run, in ascending order; a non-zero return stops the diff and is
 * returned by mw_diff_ranges. */
typedef int (*mw_diff_emit_fn)(size_t offset, size_t length, void *ctx);

/* Returns the number of runs reported (>= 0), or the emit callback's non-zero return if
 * it stopped the diff (callers return negative statuses from emit). */
long mw_diff_ranges(const void *old, const void *cur, size_t len, mw_diff_emit_fn emit,
                    void *ctx);

/* The same runs, but those at most gap bytes apart (gap >= 16) reported as one, with the
 * equal bytes between them: for a caller that joins them anyway (a dense change is then a
 * few calls, not one per element). */
long mw_diff_ranges_joined(const void *old, const void *cur, size_t len, size_t gap,
                           mw_diff_emit_fn emit, void *ctx);

#endif
