/* Phase 1 of a check (check.c, DESIGN): what the engine found, copied out of its scratch
 * while it holds its lock, into plain C memory and in the shape routing wants.
 *
 * DESIGN: a contiguous object's change is copied once, as the trace's SEGMENTS: the
 * engine's ranges, which hold whole elements and the few unchanged bytes between changed
 * runs of a page (mw_engine_set_coalesce_gap), joined where they touch, with their old and
 * new bytes in one allocation per change: a small change's (and its ranges) carved from
 * the check's arena, mappings kept from check to check (harvest.c), a large one's in record
 * frames. A dense update of a large array is then one
 * segment and two copies of its bytes, whatever its elements; segments of at most
 * MW_SEGMENT_EXACT bytes are cut back to exact ranges (of whole items), which costs
 * nothing there. Every byte comes from the engine's comparison, made while the page could
 * not change: never from memory read later, which another thread may have written since
 * (the trace codes later bytes against these: they must be what the next check's old
 * bytes will be). When a callback looks at the change, its exact runs are kept too, for
 * its Change. A strided view's ranges (re-derived in the view's own coordinates by
 * check.c) are the exact runs alone. No Python here: it runs under the engine lock. */
#ifndef MW_PY_HARVEST_H
#define MW_PY_HARVEST_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "registry.h"
#include "watcher.h"

/* Changed runs of a page at most this far apart are one range of the engine's (and one
 * segment)... */
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
    /* The exact changed runs, for a callback's Change (segments) or a view's routing:
     * pointers into bytes; the same array as ranges when these are exact. NULL when no
     * callback looks at a segmented change. */
    struct mw_rec_range *exact;
    size_t nexact;
    unsigned char *bytes;         /* their old and new bytes (one allocation)... */
    size_t bytes_size;
    /* A small change's bytes are the check's arena's (harvest.c), freed all at once after
     * routing; its ranges follow them there (room for ranges_cap) until split further. */
    int in_arena, ranges_in_bytes;
    size_t ranges_cap;
    /* ...or, for a large change, in record frames ready for the pipe: ranges are then
     * pieces of at most a frame (whole elements), their bytes in frames.buf */
    int framed;
    struct mw_rec_frames frames;
    /* Its old bytes were left out: the trace writer holds the object's value (held.h). */
    int old_held;
};

struct harvest {
    struct harvested *items;      /* a mapping of its own, of items_bytes bytes */
    size_t n, cap, items_bytes;
    /* Memory ran out (check.c, DESIGN): changes harvested with less than usual (no old
     * bytes, or no exact runs for a callback) and changes lost. */
    uint64_t short_of_memory, lost;
    /* When the check found its changes: read once for a run of small ones, again after a
     * large one (whose copy takes a while). 0: not yet read. */
    uint64_t time_ns;
};

/* A check's harvest, empty, with the item array the last check left (checks run one at a
 * time): a check of many changes then writes into pages already there instead of growing
 * a fresh array and faulting its pages in. The array is a mapping, never heap memory a
 * watched object shares a page with. mw_harvest_end keeps it for the next (up to
 * 16 MiB), after its items were freed. */
void mw_harvest_begin(struct harvest *h);
void mw_harvest_end(struct harvest *h);
/* The engine's callback (mw_change_fn): appends c to the struct harvest at ctx. */
void mw_harvest_collect(const struct mw_change *c, void *ctx);
void mw_harvest_free_item(struct harvested *it);

#endif
