/* The trace writer's copy of large objects' values (see held_values.h). */
#include "held_values.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_grow.h"

enum held_state {
    FILLING_BASE,      /* a base's frames are arriving, in order */
    FILLING_CHANGE,    /* a first change's ranges are arriving, in order from byte 0 */
    WHOLE,             /* every byte known: the value after change number count */
};

struct mw_held {
    uint64_t object_id;
    int64_t pid;
    uint64_t size;
    uint64_t count;
    uint64_t filled;           /* FILLING_*: bytes [0, filled) are known */
    enum held_state state;
    int broken;                /* ends when its change ends */
    unsigned char *bytes;
};

struct mw_held_values {
    struct mw_held **e;        /* by object id */
    size_t n, cap;
    uint64_t bytes;
    struct mw_held *busy;      /* the change being stored reads it: dropped at its end */
    struct mw_rec_range *scratch;
    size_t capscratch;
};

int mw_held_create(mw_held_values **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void free_entry(mw_held_values *h, struct mw_held *e)
{
    h->bytes -= e->size;
    free(e->bytes);
    free(e);
}

void mw_held_destroy(mw_held_values *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free_entry(h, h->e[i]);
    free(h->e);
    free(h->scratch);
    free(h);
}

/* Where object_id is or would go in h->e. */
static size_t position(const mw_held_values *h, uint64_t object_id)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->e[mid]->object_id < object_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct mw_held *find(const mw_held_values *h, uint64_t object_id)
{
    size_t at = position(h, object_id);
    return at < h->n && h->e[at]->object_id == object_id ? h->e[at] : NULL;
}

static void drop(mw_held_values *h, struct mw_held *e)
{
    if (e == h->busy) {
        e->broken = 1;   /* its change still reads it */
        return;
    }
    size_t at = position(h, e->object_id);
    memmove(h->e + at, h->e + at + 1, (h->n - at - 1) * sizeof *h->e);
    h->n--;
    free_entry(h, e);
}

/* A new copy of size bytes, not yet filled; NULL when over the writer's bound or out of
 * memory (the changes then say their old bytes are unavailable). */
static struct mw_held *start(mw_held_values *h, int64_t pid, uint64_t object_id, uint64_t size,
                             enum held_state state)
{
    if (size < MW_HELD_MIN || size > MW_HELD_PROCESS_MAX || h->bytes + size > MW_HELD_WRITER_MAX ||
        MW_GROW(h->e, h->cap, h->n + 1) != 0)
        return NULL;
    struct mw_held *e = calloc(1, sizeof *e);
    unsigned char *bytes = e ? malloc((size_t)size) : NULL;
    if (!bytes) {
        free(e);
        return NULL;
    }
    *e = (struct mw_held){.object_id = object_id, .pid = pid, .size = size, .state = state,
                          .bytes = bytes};
    size_t at = position(h, object_id);
    memmove(h->e + at + 1, h->e + at, (h->n - at) * sizeof *h->e);
    h->e[at] = e;
    h->n++;
    h->bytes += size;
    return e;
}

void mw_held_base(mw_held_values *h, int64_t pid, const struct mw_rec_value *v)
{
    struct mw_held *e = find(h, v->object_id);
    if (e && e->pid != pid)
        return;   /* another process's copy */
    if (v->offset == 0) {
        if (e)
            drop(h, e);
        e = v->exact ? start(h, pid, v->object_id, v->size, FILLING_BASE) : NULL;
    } else if (e && (!v->exact || e->state != FILLING_BASE || e->size != v->size ||
                     e->filled != v->offset)) {
        drop(h, e);
        return;
    }
    if (!e || e->state != FILLING_BASE || v->length > e->size - e->filled)
        return;
    memcpy(e->bytes + e->filled, v->bytes, (size_t)v->length);
    e->filled += v->length;
    if (e->filled == e->size)
        e->state = WHOLE;   /* count 0: the value before the object's first change */
}

struct mw_held *mw_held_begin_change(mw_held_values *h, int64_t pid, uint64_t object_id,
                                     uint64_t size, uint64_t ordinal)
{
    struct mw_held *e = find(h, object_id);
    if (e && e->pid != pid)
        return NULL;
    if (e && ordinal && e->state == WHOLE && e->count == ordinal - 1 && e->size == size) {
        h->busy = e;
        return e;
    }
    if (e)
        drop(h, e);   /* a gap, a change not counted, or a base that never finished */
    if (ordinal != 1)
        return NULL;
    h->busy = start(h, pid, object_id, size, FILLING_CHANGE);
    return h->busy;
}

int mw_held_old_bytes(mw_held_values *h, struct mw_held *e, int old_held,
                      const struct mw_rec_range *r, uint32_t n, const struct mw_rec_range **out)
{
    *out = r;
    if (!e || !old_held || e->state != WHOLE || e->broken)
        return 0;
    uint32_t first = 0;
    while (first < n && r[first].old)
        first++;
    if (first == n)
        return 0;
    if (MW_GROW(h->scratch, h->capscratch, n) != 0)
        return -ENOMEM;
    memcpy(h->scratch, r, n * sizeof *r);
    for (uint32_t i = first; i < n; i++) {
        struct mw_rec_range *g = &h->scratch[i];
        if (g->old)
            continue;
        if (g->offset > e->size || g->length > e->size - g->offset) {
            e->broken = 1;   /* not this object's bytes: the stream is wrong */
            *out = r;
            return 0;
        }
        g->old = e->bytes + g->offset;
    }
    *out = h->scratch;
    return 0;
}

void mw_held_apply(mw_held_values *h, struct mw_held *e, const struct mw_rec_range *r,
                   uint32_t n)
{
    (void)h;
    for (uint32_t i = 0; e && !e->broken && i < n; i++) {
        const struct mw_rec_range *g = &r[i];
        if (g->offset > e->size || g->length > e->size - g->offset ||
            (e->state == FILLING_CHANGE && g->offset != e->filled)) {
            e->broken = 1;   /* a first change that does not cover the object in order */
            return;
        }
        memcpy(e->bytes + g->offset, g->new_, (size_t)g->length);
        if (e->state == FILLING_CHANGE)
            e->filled += g->length;
    }
}

void mw_held_end_change(mw_held_values *h, struct mw_held *e, uint64_t ordinal, int complete)
{
    h->busy = NULL;
    if (!e)
        return;
    if (e->broken || !complete || (e->state == FILLING_CHANGE && e->filled != e->size) ||
        e->state == FILLING_BASE) {
        drop(h, e);
        return;
    }
    e->state = WHOLE;
    e->count = ordinal;
}

void mw_held_drop_object(mw_held_values *h, uint64_t object_id)
{
    struct mw_held *e = find(h, object_id);
    if (e)
        drop(h, e);
}

void mw_held_drop_process(mw_held_values *h, int64_t pid)
{
    for (size_t i = h->n; i-- > 0;)
        if (h->e[i]->pid == pid)
            drop(h, h->e[i]);
}

void mw_held_drop_all(mw_held_values *h)
{
    for (size_t i = h->n; i-- > 0;)
        drop(h, h->e[i]);
}

uint64_t mw_held_bytes(const mw_held_values *h)
{
    return h->bytes;
}
