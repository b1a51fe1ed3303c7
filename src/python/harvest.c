/* Phase 1 of a check: the engine's changes copied out (see harvest.h). */
#include "harvest.h"

#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "diff.h"
#include "held.h"
#include "map_cache.h"
#include "mw_grow.h"

/* The bytes of a change: a mapping of their own when large, never heap memory next to a
 * watched object (see record.c, MAPPED_MIN). Their size is kept to free them. */
#define BYTES_MAPPED_MIN ((size_t)64 << 10)

static unsigned char *bytes_alloc(struct harvested *it, size_t n)
{
    it->bytes_size = n ? n : 1;
    if (it->bytes_size < BYTES_MAPPED_MIN)
        return malloc(it->bytes_size);
    return mw_map_take(it->bytes_size, &it->bytes_size);
}

/* A check's small changes (their bytes and ranges) are carved out of mappings kept from
 * one check to the next and reset after routing (mw_harvest_end): no malloc and free per
 * change, no fresh pages faulted in per check, and never heap memory, which may share a
 * page with a watched object (the harvest writes while the engine checks). Chunks are
 * linked from the newest; a new one is twice the last. */
struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;        /* of the whole mapping, header included */
};
#define ARENA_FIRST ((size_t)64 << 10)
static struct arena_chunk *arena;

static void *arena_alloc(size_t n)
{
    n = (n + 15) / 16 * 16;
    if (!arena || arena->size - arena->used < n) {
        size_t want = arena ? 2 * arena->size : ARENA_FIRST, hdr = (sizeof *arena + 15) / 16 * 16;
        while (want < n + hdr)
            want *= 2;
        struct arena_chunk *c = mw_map_take(want, &want);
        if (!c)
            return NULL;
        *c = (struct arena_chunk){.next = arena, .size = want, .used = hdr};
        arena = c;
    }
    void *p = (unsigned char *)arena + arena->used;
    arena->used += n;
    return p;
}

/* Empties the arena, keeping its newest (largest) chunk when not over KEPT_MAX. */
static void arena_reset(size_t kept_max)
{
    while (arena && (arena->next || arena->size > kept_max)) {
        struct arena_chunk *c = arena->next ? arena->next : arena;
        if (c == arena)
            arena = NULL;
        else
            arena->next = c->next;
        mw_map_give(c, c->size);
    }
    if (arena)
        arena->used = (sizeof *arena + 15) / 16 * 16;
}

static void bytes_free(struct harvested *it)
{
    if (it->in_arena) {
        it->bytes = NULL;
        return;
    }
    if (!it->bytes)
        return;
    if (it->bytes_size < BYTES_MAPPED_MIN)
        free(it->bytes);
    else
        mw_map_give(it->bytes, it->bytes_size);
    it->bytes = NULL;
}

/* A segment before its bytes are copied. */
struct seg {
    size_t lo, hi;
    int old_known;
};

/* The engine's ranges widened to whole items of is bytes and joined across gaps of at most
 * gap bytes, into segs (room for c->nranges); returns how many. */
static size_t plan_segments(const struct mw_change *c, size_t is, size_t span, size_t gap,
                            struct seg *segs)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nranges; i++) {
        const struct mw_range *r = &c->ranges[i];
        size_t lo = r->offset / is * is, hi = (r->offset + r->length + is - 1) / is * is;
        if (hi > span)
            hi = span;
        if (n && lo <= segs[n - 1].hi + gap) {
            if (hi > segs[n - 1].hi)
                segs[n - 1].hi = hi;
            segs[n - 1].old_known &= r->old != NULL;
            continue;
        }
        segs[n++] = (struct seg){lo, hi, r->old != NULL};
    }
    return n;
}

/* Runs a splitter holds before it allocates: a small change's few. */
#define SPLIT_LOCAL 16

/* Splitting a small segment back into its changed items. out starts as local (no
 * allocation for the common few runs) and moves to the heap when they outgrow it. */
struct splitter {
    const struct mw_rec_range *seg;
    size_t is;
    struct mw_rec_range *out;
    size_t n, cap;
    int oom;
    struct mw_rec_range local[SPLIT_LOCAL];
};

static void splitter_init(struct splitter *x, size_t is)
{
    x->seg = NULL;
    x->is = is;
    x->out = x->local;
    x->n = 0;
    x->cap = SPLIT_LOCAL;
    x->oom = 0;
}

/* Room for one more run in x->out. 0, or -1 (x->oom set). */
static int splitter_room(struct splitter *x)
{
    if (x->n < x->cap)
        return 0;
    if (x->out == x->local) {
        struct mw_rec_range *heap = malloc(2 * x->cap * sizeof *heap);
        if (heap) {
            memcpy(heap, x->local, x->n * sizeof *heap);
            x->out = heap;
            x->cap *= 2;
            return 0;
        }
    } else if (MW_GROW(x->out, x->cap, x->n + 1) == 0) {
        return 0;
    }
    x->oom = 1;
    return -1;
}

static void splitter_free(struct splitter *x)
{
    if (x->out != x->local)
        free(x->out);
}

/* The split runs as it->ranges: copied over the segments when they fit there, else an
 * array of their own. 0, or -1 (it unchanged). */
static int splitter_take(struct splitter *x, struct harvested *it)
{
    if (x->n <= it->ranges_cap) {
        memcpy(it->ranges, x->out, x->n * sizeof *x->out);
        it->nranges = x->n;
        splitter_free(x);
        return 0;
    }
    struct mw_rec_range *own = x->out;
    if (own == x->local) {
        own = malloc(x->n * sizeof *own);
        if (!own)
            return -1;
        memcpy(own, x->local, x->n * sizeof *own);
    }
    if (!it->ranges_in_bytes)
        free(it->ranges);
    it->ranges_in_bytes = 0;
    it->ranges = own;
    it->nranges = it->ranges_cap = x->n;
    return 0;
}

static int split_run(size_t off, size_t len, void *ctx)
{
    struct splitter *x = ctx;
    size_t lo = off / x->is * x->is, hi = (off + len + x->is - 1) / x->is * x->is;
    if (hi > x->seg->length)
        hi = x->seg->length;
    struct mw_rec_range *last = x->n ? &x->out[x->n - 1] : NULL;
    if (last && last->offset + last->length >= x->seg->offset + lo) {
        last->length = x->seg->offset + hi - last->offset;
        return 0;
    }
    if (splitter_room(x) != 0)
        return 1;
    x->out[x->n++] = (struct mw_rec_range){x->seg->offset + lo, hi - lo, x->seg->old + lo,
                                           x->seg->new_ + lo};
    return 0;
}

/* Segments of at most MW_SEGMENT_EXACT bytes are cut back to their changed items (whole
 * items of is bytes, as the trace wants them): small changes keep exact ranges, which cost
 * nothing; large ones keep the few unchanged bytes between changed ones, which spares the
 * trace a range per item. The bytes stay where they are. 0, or -1. */
static int exact_small_segments(struct harvested *it, size_t is)
{
    int any = 0;
    for (size_t k = 0; k < it->nranges; k++)
        any |= it->ranges[k].length <= MW_SEGMENT_EXACT && it->ranges[k].old;
    if (!any)
        return 0;
    struct splitter x;
    splitter_init(&x, is);
    for (size_t k = 0; k < it->nranges && !x.oom; k++) {
        const struct mw_rec_range *g = &it->ranges[k];
        if (g->length > MW_SEGMENT_EXACT || !g->old) {
            if (splitter_room(&x) == 0)
                x.out[x.n++] = *g;
            continue;
        }
        x.seg = g;
        mw_diff_ranges(g->old, g->new_, (size_t)g->length, split_run, &x);
    }
    /* Out of memory: the segments as they are, still right, only coarser. */
    if (x.oom || splitter_take(&x, it) != 0)
        splitter_free(&x);
    return 0;
}

/* Fills old (when not NULL) and new with the bytes [lo, lo + len) of the object: those of
 * the engine's ranges from *i on (advanced past the ones that end here), and the few the
 * ranges do not hold (a range widened to whole elements) from src. */
static void fill(const struct mw_change *c, size_t *i, const unsigned char *src, size_t lo,
                 size_t len, unsigned char *old, unsigned char *new_)
{
    size_t at = lo, end = lo + len;
    while (at < end) {
        while (*i < c->nranges && c->ranges[*i].offset + c->ranges[*i].length <= at)
            (*i)++;
        const struct mw_range *r = *i < c->nranges ? &c->ranges[*i] : NULL;
        size_t next = r && r->offset < end ? (r->offset > at ? r->offset : at) : end;
        if (next > at) {   /* not the engine's: from memory */
            memcpy(new_ + (at - lo), src + at, next - at);
            if (old)
                memcpy(old + (at - lo), src + at, next - at);
            at = next;
            continue;
        }
        size_t stop = r->offset + r->length < end ? r->offset + r->length : end;
        memcpy(new_ + (at - lo), r->new_ + (at - r->offset), stop - at);
        if (old)
            memcpy(old + (at - lo), r->old + (at - r->offset), stop - at);
        at = stop;
    }
}

/* Segments of at least this many bytes in all are built straight into record frames
 * (record.h, mw_rec_frames): the channel takes them to the pipe without another copy. */
#define FRAMES_MIN ((size_t)64 << 10)

/* The segments' bytes in frames, a piece per frame when large (harvest.h): it->ranges
 * are the pieces. 0, or -1 with nothing allocated. */
static int harvest_into_frames(const struct mw_change *c, const struct seg *segs, size_t n,
                               size_t bytes, const unsigned char *src, struct harvested *it)
{
    size_t cap = n + bytes / ((size_t)8 << 20) + 2, count = 0, i = 0;
    it->ranges = malloc(cap * sizeof *it->ranges);
    if (!it->ranges || mw_rec_frames_begin(&it->frames, bytes, cap) != 0) {
        free(it->ranges);
        it->ranges = NULL;
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        for (size_t lo = segs[k].lo; lo < segs[k].hi;) {
            unsigned char *old, *new_;
            uint64_t got = mw_rec_frames_add(&it->frames, lo, segs[k].hi - lo,
                                             segs[k].old_known, &old, &new_);
            if (got == 0 || (count == cap && MW_GROW(it->ranges, cap, count + 1) != 0)) {
                mw_rec_frames_free(&it->frames);
                free(it->ranges);
                it->ranges = NULL;
                return -1;
            }
            fill(c, &i, src, lo, (size_t)got, old, new_);
            it->ranges[count++] = (struct mw_rec_range){lo, got, old, new_};
            lo += (size_t)got;
        }
    }
    it->nranges = count;
    it->framed = 1;
    return 0;
}

/* Room for this many more ranges than segments in a small change's allocation: what
 * exact_small_segments may cut them into without another allocation. */
#define RANGES_SPARE 4

/* The segments' bytes in one allocation of the arena, their ranges after them. 0, or -1
 * with nothing allocated. */
static int harvest_into_bytes(const struct mw_change *c, const struct seg *segs, size_t n,
                              size_t bytes, const unsigned char *src, struct harvested *it)
{
    size_t align = _Alignof(struct mw_rec_range);
    size_t ranges_at = (bytes + align - 1) / align * align, cap = n + RANGES_SPARE;
    it->bytes = arena_alloc(ranges_at + cap * sizeof *it->ranges);
    if (!it->bytes)
        return -1;
    it->bytes_size = bytes;
    it->ranges = (struct mw_rec_range *)(void *)(it->bytes + ranges_at);
    it->in_arena = it->ranges_in_bytes = 1;
    it->ranges_cap = cap;
    unsigned char *at = it->bytes;
    size_t i = 0;   /* engine ranges, in offset order like the segments */
    for (size_t k = 0; k < n; k++) {
        size_t lo = segs[k].lo, len = segs[k].hi - lo;
        unsigned char *old = segs[k].old_known ? at : NULL, *new_ = at + (old ? len : 0);
        fill(c, &i, src, lo, len, old, new_);
        it->ranges[k] = (struct mw_rec_range){lo, len, old, new_};
        at += len * (old ? 2 : 1);
    }
    it->nranges = n;
    return 0;
}

/* The trace's segments of c (see harvest.h), with their bytes: those the engine gave, and
 * the few around them a widening to whole elements needs from memory. 0, or -1 with
 * nothing allocated. */
static int harvest_segments(const struct mw_change *c, struct mw_watched *w, struct harvested *it,
                            int without_old, int held)
{
    const struct mw_buffer *b = &w->buf;
    size_t is = b->has_view && b->view.itemsize > 1 ? (size_t)b->view.itemsize : 1;
    const unsigned char *src = w->shadow ? w->shadow : b->start;
    struct seg local[SPLIT_LOCAL];
    struct seg *segs = c->nranges <= SPLIT_LOCAL ? local : malloc(c->nranges * sizeof *segs);
    if (!segs)
        return -1;
    /* Ranges are joined only where they touch: the bytes between others would have to be
     * read from memory (see harvest.h). */
        size_t n = plan_segments(c, is, b->span, 0, segs), new_bytes = 0, bytes = 0;
    for (size_t k = 0; k < n; k++)
        new_bytes += segs[k].hi - segs[k].lo;
    /* A large change of an object whose value the writer holds goes without its old bytes
     * (held.h); a small one keeps them, to split its segments back into the items that
     * changed (exact_small_segments). */
    if (held && (without_old || new_bytes >= FRAMES_MIN)) {
        without_old = 1;
        it->old_held = 1;
    }
    for (size_t k = 0; k < n; k++) {
        segs[k].old_known &= !without_old;
        bytes += (segs[k].hi - segs[k].lo) * (segs[k].old_known ? 2 : 1);
    }
    int rc = bytes >= FRAMES_MIN ? harvest_into_frames(c, segs, n, bytes, src, it)
                                 : harvest_into_bytes(c, segs, n, bytes, src, it);
    if (segs != local)
        free(segs);
    if (rc)
        return -1;
    /* The shadow follows what the checks saw (registry.h). */
    for (size_t j = 0; w->shadow && j < c->nranges; j++)
        memcpy(w->shadow + c->ranges[j].offset, c->ranges[j].new_, c->ranges[j].length);
    it->segments = 1;
    return it->framed ? 0 : exact_small_segments(it, is);
}

/* The exact changed runs inside the segments, for a callback's Change: pointers into the
 * segments' bytes. 0, or -1. */
static int exact_runs_of_segments(struct harvested *it)
{
    struct splitter x;
    splitter_init(&x, 1);
    for (size_t k = 0; k < it->nranges && !x.oom; k++) {
        const struct mw_rec_range *g = &it->ranges[k];
        if (!g->old) {
            if (splitter_room(&x) == 0)
                x.out[x.n++] = *g;
            continue;
        }
        x.seg = g;
        mw_diff_ranges(g->old, g->new_, (size_t)g->length, split_run, &x);
    }
    if (x.oom) {
        splitter_free(&x);
        return -1;
    }
    if (x.out == x.local) {
        it->exact = malloc((x.n ? x.n : 1) * sizeof *it->exact);
        if (it->exact)
            memcpy(it->exact, x.local, x.n * sizeof *it->exact);
    } else {
        it->exact = x.out;
    }
    it->nexact = x.n;
    return it->exact ? 0 : -1;
}

/* Exact changed runs of the engine's ranges (which may carry unchanged bytes between
 * runs: mw_engine_set_coalesce_gap), counted or copied. */
struct runs {
    const struct mw_range *r;
    struct mw_rec_range *out;     /* NULL: count only */
    unsigned char **at;
    size_t n, bytes;
};

static int one_run(size_t off, size_t len, void *ctx)
{
    struct runs *x = ctx;
    if (x->out) {
        unsigned char *old = *x->at, *new_ = old + len;
        memcpy(old, x->r->old + off, len);
        memcpy(new_, x->r->new_ + off, len);
        x->out[x->n] = (struct mw_rec_range){x->r->offset + off, len, old, new_};
        *x->at += 2 * len;
    }
    x->n++;
    x->bytes += 2 * len;
    return 0;
}

/* The engine's ranges cut back to exact runs, for a Change (see harvest.h). */
static int harvest_exact(const struct mw_change *c, struct harvested *it)
{
    struct runs count = {0};
    for (size_t i = 0; i < c->nranges; i++) {
        count.r = &c->ranges[i];
        if (c->ranges[i].old)
            mw_diff_ranges(count.r->old, count.r->new_, count.r->length, one_run, &count);
        else {
            count.n++;
            count.bytes += c->ranges[i].length;
        }
    }
    it->ranges = malloc((count.n ? count.n : 1) * sizeof *it->ranges);
    it->bytes = bytes_alloc(it, count.bytes);
    if (!it->ranges || !it->bytes) {
        free(it->ranges);
        bytes_free(it);
        it->ranges = NULL;
        return -1;
    }
    unsigned char *at = it->bytes;
    struct runs fill = {.out = it->ranges, .at = &at};
    for (size_t i = 0; i < c->nranges; i++) {
        const struct mw_range *r = &c->ranges[i];
        fill.r = r;
        if (r->old) {
            mw_diff_ranges(r->old, r->new_, r->length, one_run, &fill);
            continue;
        }
        memcpy(at, r->new_, r->length);
        it->ranges[fill.n++] = (struct mw_rec_range){r->offset, r->length, NULL, at};
        at += r->length;
    }
    it->nranges = fill.n;
    it->exact = it->ranges;
    it->nexact = it->nranges;
    return 0;
}

/* A contiguous object's change: its segments, or when memory is short, its segments
 * without old bytes (half the memory; the trace then says the old value is unavailable),
 * and its exact runs when a callback looks (without them it gets no Change). 0, 1 (with
 * less than usual) or -1 (nothing: lost). */
static int harvest_contiguous(const struct mw_change *c, struct mw_watched *w,
                              struct harvested *it)
{
    int has_callback = w->owner && mw_owner_has_callback(w->owner);
    int held = mw_held_by_writer(w) && !has_callback;
    int rc = harvest_segments(c, w, it, 0, held), short_of_memory = 0;
    if (rc != 0) {
        mw_harvest_free_item(it);
        memset(it, 0, sizeof *it);
        if (harvest_segments(c, w, it, 1, held) != 0)
            return -1;
        short_of_memory = !it->old_held;   /* the writer has them, or nobody does */
    }
    if (has_callback && exact_runs_of_segments(it) != 0) {
        it->exact = NULL;
        it->nexact = 0;
        short_of_memory = 1;
    }
    return short_of_memory;
}

/* The item array kept between checks (mw_harvest_begin), and the most it keeps. */
#define KEPT_ITEMS_MAX ((size_t)16 << 20)
static struct harvested *kept_items;
static size_t kept_bytes;

void mw_harvest_begin(struct harvest *h)
{
    memset(h, 0, sizeof *h);
    h->items = kept_items;
    h->items_bytes = kept_bytes;
    h->cap = kept_bytes / sizeof *h->items;
    kept_items = NULL;
    kept_bytes = 0;
}

void mw_harvest_end(struct harvest *h)
{
    arena_reset(KEPT_ITEMS_MAX);
    if (h->items_bytes <= KEPT_ITEMS_MAX && !kept_items) {
        kept_items = h->items;
        kept_bytes = h->items_bytes;
    } else {
        mw_map_give(h->items, h->items_bytes);
    }
    h->items = NULL;
    h->n = h->cap = h->items_bytes = 0;
}

/* Room for one more item: a larger mapping when full. 0, or -1. */
static int items_room(struct harvest *h)
{
    if (h->n < h->cap)
        return 0;
    size_t want = (h->cap ? 2 * h->cap : 64) * sizeof *h->items, got;
    struct harvested *bigger = mw_map_take(want, &got);
    if (!bigger)
        return -1;
    if (h->n)
        memcpy(bigger, h->items, h->n * sizeof *h->items);
    mw_map_give(h->items, h->items_bytes);
    h->items = bigger;
    h->items_bytes = got;
    h->cap = got / sizeof *h->items;
    return 0;
}

void mw_harvest_collect(const struct mw_change *c, void *ctx)
{
    struct harvest *h = ctx;
    if (items_room(h) != 0) {
        h->lost++;
        mw_held_end(c->region_user);
        return;
    }
    struct harvested *it = &h->items[h->n];
    memset(it, 0, sizeof *it);
    struct mw_watched *w = c->region_user;
    int rc = w->buf.contiguous ? harvest_contiguous(c, w, it) : harvest_exact(c, it);
    if (rc < 0) {
        mw_harvest_free_item(it);
        memset(it, 0, sizeof *it);
        h->lost++;
        mw_held_end(w);   /* the writer's copy would miss this change */
        return;
    }
    h->short_of_memory += (uint64_t)rc;
    it->watched = w;
    mw_registry_hold(w);
    it->writer = *c->writer;
    if (!h->time_ns)
        h->time_ns = mw_channel_now_ns();
    it->time_ns = h->time_ns;
    if (it->framed)
        h->time_ns = 0;
    h->n++;
}

void mw_harvest_free_item(struct harvested *it)
{
    if (it->exact != it->ranges)
        free(it->exact);
    if (!it->ranges_in_bytes)
        free(it->ranges);
    bytes_free(it);
    if (it->framed)
        mw_rec_frames_free(&it->frames);   /* when routing did not hand them over */
    if (it->watched)
        mw_registry_release(it->watched);
}
