/* Preallocated storage for old page contents: see page_pool.h for the design.
 * mw_page_pool_alloc and mw_page_pool_free are async-signal-safe: atomics only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "page_pool.h"

struct mw_page_pool {
    unsigned char *data;             /* max_slots * page_size, reserved */
    struct mw_slot_meta *meta;       /* max_slots records, reserved */
    struct mw_acct *accts;
    size_t page_size;
    size_t max_slots;
    size_t data_bytes, meta_bytes;
    _Atomic uint64_t head;           /* (tag << 32) | (slot + 1); 0 index = empty */
    _Atomic uint32_t hwm;            /* slots ever handed out by bumping */
    _Atomic uint32_t committed;      /* usable slots; grows under the caller's lock */
    _Atomic size_t in_use;
};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

int mw_page_pool_create(size_t page_size, size_t max_slots, struct mw_acct *accts,
                        struct mw_page_pool **out)
{
    if (!out || page_size == 0 || max_slots == 0 || max_slots >= UINT32_MAX)
        return -EINVAL;
    /* The pool header is written by fault handlers: keep it in memory of our own. */
    struct mw_page_pool *p = mmap(NULL, round_up(sizeof(*p), page_size),
                                  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    p->accts = accts;
    p->page_size = page_size;
    p->max_slots = max_slots;
    p->data_bytes = max_slots * page_size;
    p->meta_bytes = round_up(max_slots * sizeof(struct mw_slot_meta), page_size);
    p->data = mmap(NULL, p->data_bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p->data == MAP_FAILED) {
        int e = errno;
        munmap(p, round_up(sizeof(*p), page_size));
        return -e;
    }
    p->meta = mmap(NULL, p->meta_bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p->meta == MAP_FAILED) {
        int e = errno;
        munmap(p->data, p->data_bytes);
        munmap(p, round_up(sizeof(*p), page_size));
        return -e;
    }
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
    munmap(p->data, p->data_bytes);
    munmap(p->meta, p->meta_bytes);
    munmap(p, round_up(sizeof(*p), p->page_size));
}

int mw_page_pool_commit(struct mw_page_pool *p, size_t nslots)
{
    size_t have = atomic_load(&p->committed);
    if (nslots > p->max_slots)
        nslots = p->max_slots;
    if (nslots <= have)
        return 0;
    /* Commit whole pages of metadata; the data range is per slot. */
    size_t meta_from = round_up(have * sizeof(struct mw_slot_meta), p->page_size);
    size_t meta_to = round_up(nslots * sizeof(struct mw_slot_meta), p->page_size);
    if (meta_to > meta_from &&
        mprotect((unsigned char *)p->meta + meta_from, meta_to - meta_from,
                 PROT_READ | PROT_WRITE) != 0)
        return -errno;
    if (mprotect(p->data + have * p->page_size, (nslots - have) * p->page_size,
                 PROT_READ | PROT_WRITE) != 0)
        return -errno;
    /* Release: a handler that sees the new capacity sees committed memory. */
    atomic_store_explicit(&p->committed, (uint32_t)nslots, memory_order_release);
    return 0;
}

size_t mw_page_pool_committed(const struct mw_page_pool *p)
{
    return atomic_load_explicit(&p->committed, memory_order_acquire);
}

/* Async-signal-safe. */
uint32_t mw_page_pool_alloc(struct mw_page_pool *p)
{
    uint64_t h = atomic_load_explicit(&p->head, memory_order_acquire);
    while ((uint32_t)h != 0) {
        uint32_t slot = (uint32_t)h - 1;
        uint32_t next = atomic_load_explicit(&p->meta[slot].next, memory_order_relaxed);
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
        atomic_store_explicit(&p->meta[slot].next, (uint32_t)h, memory_order_relaxed);
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
    struct mw_slot_meta *m = &p->meta[slot];
    memset(&m->writer, 0, sizeof m->writer);
    m->fault_ns = 0;
    m->acct = acct;
    atomic_fetch_add_explicit(&a->copies, 1, memory_order_relaxed);
    return slot;
}

/* Async-signal-safe. */
void mw_page_pool_release_copy(struct mw_page_pool *p, uint32_t slot)
{
    struct mw_acct *a = &p->accts[p->meta[slot].acct];
    atomic_fetch_sub_explicit(&a->copies, 1, memory_order_relaxed);
    mw_page_pool_free(p, slot);
    mw_acct_uncharge(a, mw_page_pool_copy_cost(p));
}

void *mw_page_pool_data(const struct mw_page_pool *p, uint32_t slot)
{
    return p->data + (size_t)slot * p->page_size;
}

struct mw_slot_meta *mw_page_pool_meta(const struct mw_page_pool *p, uint32_t slot)
{
    return &p->meta[slot];
}

int mw_page_pool_overlaps(const struct mw_page_pool *p, uintptr_t addr, size_t len)
{
    uintptr_t end = addr + len;
    uintptr_t d = (uintptr_t)p->data, m = (uintptr_t)p->meta, h = (uintptr_t)p;
    return (addr < d + p->data_bytes && end > d) ||
           (addr < m + p->meta_bytes && end > m) ||
           (addr < h + round_up(sizeof(*p), p->page_size) && end > h);
}
