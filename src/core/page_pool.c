/* Storage for old page contents: see page_pool.h for the design.
 * mw_page_pool_alloc, _free, _take_copy and _release_copy are async-signal-safe: atomics
 * and memcpy only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "page_pool.h"

#define SEG_SHIFT 12
#define SEG_MASK (MW_POOL_SEGMENT_SLOTS - 1u)
_Static_assert(MW_POOL_SEGMENT_SLOTS == 1u << SEG_SHIFT, "segment size is 1 << SEG_SHIFT");

struct segment {
    unsigned char *data;             /* MW_POOL_SEGMENT_SLOTS * page_size */
    struct mw_slot_meta *meta;       /* MW_POOL_SEGMENT_SLOTS records */
};

struct mw_page_pool {
    struct mw_acct *accts;
    size_t page_size;
    size_t max_slots;
    size_t data_bytes, meta_bytes;   /* of one segment */
    size_t self_bytes;
    _Atomic uint64_t head;           /* (tag << 32) | (slot + 1); 0 index = empty */
    _Atomic uint32_t hwm;            /* slots ever handed out by bumping */
    _Atomic uint32_t committed;      /* usable slots; grows under the caller's lock */
    _Atomic size_t in_use;
    uint32_t nsegments;              /* the caller's lock */
    struct segment seg[];            /* published before committed covers them */
};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static uint32_t max_segments(const struct mw_page_pool *p)
{
    return (uint32_t)((p->max_slots + MW_POOL_SEGMENT_SLOTS - 1) / MW_POOL_SEGMENT_SLOTS);
}

int mw_page_pool_create(size_t page_size, size_t max_slots, struct mw_acct *accts,
                        struct mw_page_pool **out)
{
    if (!out || page_size == 0 || max_slots == 0 || max_slots >= UINT32_MAX)
        return -EINVAL;
    size_t nseg = (max_slots + MW_POOL_SEGMENT_SLOTS - 1) / MW_POOL_SEGMENT_SLOTS;
    size_t bytes = round_up(sizeof(struct mw_page_pool) + nseg * sizeof(struct segment),
                            page_size);
    /* The header is written by fault handlers: memory of our own. */
    struct mw_page_pool *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    p->accts = accts;
    p->page_size = page_size;
    p->max_slots = max_slots;
    p->data_bytes = (size_t)MW_POOL_SEGMENT_SLOTS * page_size;
    p->meta_bytes = round_up((size_t)MW_POOL_SEGMENT_SLOTS * sizeof(struct mw_slot_meta),
                             page_size);
    p->self_bytes = bytes;
    atomic_init(&p->head, 0);
    atomic_init(&p->hwm, 0);
    atomic_init(&p->committed, 0);
    atomic_init(&p->in_use, 0);
    *out = p;
    return 0;
}

void mw_page_pool_destroy(struct mw_page_pool *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nsegments; i++) {
        munmap(p->seg[i].data, p->data_bytes);
        munmap(p->seg[i].meta, p->meta_bytes);
    }
    munmap(p, p->self_bytes);
}

static int map_segment(struct mw_page_pool *p)
{
    struct segment s;
    s.data = mmap(NULL, p->data_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s.data == MAP_FAILED)
        return -errno;
    s.meta = mmap(NULL, p->meta_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s.meta == MAP_FAILED) {
        int e = errno;
        munmap(s.data, p->data_bytes);
        return -e;
    }
    p->seg[p->nsegments++] = s;
    return 0;
}

int mw_page_pool_commit(struct mw_page_pool *p, size_t nslots)
{
    if (nslots > p->max_slots)
        nslots = p->max_slots;
    while ((size_t)p->nsegments * MW_POOL_SEGMENT_SLOTS < nslots &&
           p->nsegments < max_segments(p)) {
        int rc = map_segment(p);
        if (rc)
            return rc;
        size_t cap = (size_t)p->nsegments * MW_POOL_SEGMENT_SLOTS;
        /* Release: a handler that sees the new capacity sees the segment. */
        atomic_store_explicit(&p->committed, (uint32_t)(cap < p->max_slots ? cap : p->max_slots),
                              memory_order_release);
    }
    return 0;
}

size_t mw_page_pool_committed(const struct mw_page_pool *p)
{
    return atomic_load_explicit(&p->committed, memory_order_acquire);
}

/* Async-signal-safe. */
static struct mw_slot_meta *meta_of(const struct mw_page_pool *p, uint32_t slot)
{
    return &p->seg[slot >> SEG_SHIFT].meta[slot & SEG_MASK];
}

/* Async-signal-safe. */
uint32_t mw_page_pool_alloc(struct mw_page_pool *p)
{
    uint64_t h = atomic_load_explicit(&p->head, memory_order_acquire);
    while ((uint32_t)h != 0) {
        uint32_t slot = (uint32_t)h - 1;
        uint32_t next = atomic_load_explicit(&meta_of(p, slot)->next, memory_order_relaxed);
        uint64_t nh = (((h >> 32) + 1) << 32) | next;
        if (atomic_compare_exchange_weak_explicit(&p->head, &h, nh, memory_order_acquire,
                                                  memory_order_acquire)) {
            atomic_fetch_add_explicit(&p->in_use, 1, memory_order_relaxed);
            return slot;
        }
    }
    uint32_t n = atomic_load_explicit(&p->hwm, memory_order_relaxed);
    for (;;) {
        uint32_t cap = atomic_load_explicit(&p->committed, memory_order_acquire);
        if (n >= cap)
            return MW_SLOT_NONE;
        if (atomic_compare_exchange_weak_explicit(&p->hwm, &n, n + 1, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            atomic_fetch_add_explicit(&p->in_use, 1, memory_order_relaxed);
            return n;
        }
    }
}

/* Async-signal-safe. */
void mw_page_pool_free(struct mw_page_pool *p, uint32_t slot)
{
    uint64_t h = atomic_load_explicit(&p->head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(&meta_of(p, slot)->next, (uint32_t)h, memory_order_relaxed);
        uint64_t nh = (((h >> 32) + 1) << 32) | (uint64_t)(slot + 1);
        if (atomic_compare_exchange_weak_explicit(&p->head, &h, nh, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    atomic_fetch_sub_explicit(&p->in_use, 1, memory_order_relaxed);
}

size_t mw_page_pool_in_use(const struct mw_page_pool *p)
{
    return atomic_load_explicit(&p->in_use, memory_order_relaxed);
}

size_t mw_page_pool_copy_cost(const struct mw_page_pool *p)
{
    return p->page_size + sizeof(struct mw_slot_meta);
}

/* Async-signal-safe. */
uint32_t mw_page_pool_take_copy(struct mw_page_pool *p, uint32_t acct, const void *page)
{
    struct mw_acct *a = &p->accts[acct];
    size_t cost = mw_page_pool_copy_cost(p);
    if (!mw_acct_try_charge(a, cost))
        return MW_SLOT_NONE;
    uint32_t slot = mw_page_pool_alloc(p);
    if (slot == MW_SLOT_NONE) {
        mw_acct_uncharge(a, cost);
        return MW_SLOT_NONE;
    }
    memcpy(mw_page_pool_data(p, slot), page, p->page_size);
    struct mw_slot_meta *m = meta_of(p, slot);
    memset(&m->writer, 0, sizeof m->writer);
    m->fault_ns = 0;
    m->acct = acct;
    atomic_fetch_add_explicit(&a->copies, 1, memory_order_relaxed);
    return slot;
}

/* Async-signal-safe. */
void mw_page_pool_release_copy(struct mw_page_pool *p, uint32_t slot)
{
    struct mw_acct *a = &p->accts[meta_of(p, slot)->acct];
    atomic_fetch_sub_explicit(&a->copies, 1, memory_order_relaxed);
    mw_page_pool_free(p, slot);
    mw_acct_uncharge(a, mw_page_pool_copy_cost(p));
}

void *mw_page_pool_data(const struct mw_page_pool *p, uint32_t slot)
{
    return p->seg[slot >> SEG_SHIFT].data + (size_t)(slot & SEG_MASK) * p->page_size;
}

struct mw_slot_meta *mw_page_pool_meta(const struct mw_page_pool *p, uint32_t slot)
{
    return meta_of(p, slot);
}

static int overlaps(uintptr_t a, size_t alen, const void *b, size_t blen)
{
    uintptr_t bb = (uintptr_t)b;
    return a < bb + blen && a + alen > bb;
}

int mw_page_pool_overlaps(const struct mw_page_pool *p, uintptr_t addr, size_t len)
{
    if (overlaps(addr, len, p, p->self_bytes))
        return 1;
    for (uint32_t i = 0; i < p->nsegments; i++)
        if (overlaps(addr, len, p->seg[i].data, p->data_bytes) ||
            overlaps(addr, len, p->seg[i].meta, p->meta_bytes))
            return 1;
    return 0;
}
