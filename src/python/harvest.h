/* Phase 1 of a check (check.c, DESIGN): what the engine found, copied out of its scratch
 * while it holds its lock, into plain C memory and in the shape routing wants.
 *
 * DESIGN: most changes only go to the trace (nothing in the script looks at them): those
 * are copied once, as the trace's SEGMENTS: the engine's ranges widened to whole elements
 * and joined where less than MW_SEGMENT_GAP bytes apart (the unchanged bytes between them
 * included), with their old and new bytes in one allocation per change. A dense update of
 * a large array is then one segment and two copies of its bytes, whatever its elements;
 * segments of at most MW_SEGMENT_EXACT bytes are cut back to exact ranges (of whole items),
 * which cost nothing there.
 * Changes a callback will see (its Change has exact ranges and may have whole values), and
 * those of strided views (re-derived in the view's own coordinates), keep the engine's
 * ranges cut back to the exact changed runs, for check.c's full routing. No Python here:
 * it runs under the engine lock. */
#ifndef MW_PY_HARVEST_H
#define MW_PY_HARVEST_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "registry.h"
#include "watcher.h"

/* Changed bytes at most this far apart are one segment of the trace... */
#define MW_SEGMENT_GAP 64
/* ...unless the segment is this small: then it keeps exact ranges (of whole items). */
#define MW_SEGMENT_EXACT 4096

struct harvested {
    struct mw_watched *watched;   /* held until the change is routed */
    struct mw_writer writer;
    uint64_t time_ns;
    int segments;                 /* ranges are the trace's segments, else exact ranges */
    size_t nranges;
    struct mw_rec_range *ranges;  /* offset order; old NULL: unavailable */
    unsigned char *bytes;         /* their old and new bytes (one allocation) */
};

struct harvest {
    struct harvested *items;
    size_t n, cap;
    int failed;                   /* out of memory: what was harvested is still routed */
};

/* The engine's callback (mw_change_fn): appends c to the struct harvest at ctx. */
void mw_harvest_collect(const struct mw_change *c, void *ctx);
void mw_harvest_free_item(struct harvested *it);

#endif
