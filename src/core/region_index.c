/* Page -> page entry index: see region_index.h for the design and its ordering rules.
 * mw_region_index_lookup/enter/leave are async-signal-safe: atomics and plain reads of
 * memory that stays mapped until reclamation proves no handler can read it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "page_pool.h"
#include "region_index.h"

#define TOMB ((struct mw_page *)(uintptr_t)1)
#define INITIAL_CAP 1024u
#define SLAB_BYTES (256u * 1024u)

struct table {
    size_t cap;                  /* power of two */
    unsigned shift;              /* 64 - log2(cap) */
    size_t used;                 /* live + tombstones */
    size_t live;
    size_t bytes;                /* mapping size */
    struct table *retired_next;
    struct mw_page *_Atomic slot[];
};

struct mw_region_index {
    /* Written by fault handlers: lives in this mapping of our own. */
    _Atomic long in_flight;
    size_t page_size;
    unsigned page_shift;
    size_t self_bytes;
    /* The rest is written under the engine lock only. */
    struct table *_Atomic cur;
    struct table *retired;       /* replaced tables, unmapped at reclamation */
    struct mw_page *limbo;       /* removed entries, linked through ->next */
    struct mw_page *free_list;   /* reusable entries, linked through ->next */
    void **slabs;                /* slab addresses, in a mapping of our own */
    size_t nslabs, slabs_cap;
    void **retired_aux;          /* mw_region_index_retire'd memory, freed at reclamation */
    size_t naux, aux_cap;
};

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static inline size_t hash_page(const struct mw_region_index *idx, const struct table *t,
                               uintptr_t page)
{
    uint64_t k = (uint64_t)(page >> idx->page_shift) * 0x9E3779B97F4A7C15ull;
    return (size_t)(k >> t->shift);
}

static struct table *table_new(const struct mw_region_index *idx, size_t cap)
{
    size_t bytes = round_up(sizeof(struct table) + cap * sizeof(struct mw_page *),
                            idx->page_size);
    /* Fresh anonymous memory is zero: every slot starts NULL. */
    struct table *t = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    t->cap = cap;
    t->shift = (unsigned)(64 - __builtin_ctzll((unsigned long long)cap));
    t->bytes = bytes;
    return t;
}

int mw_region_index_create(size_t page_size, struct mw_region_index **out)
{
    if (!out || page_size == 0 || (page_size & (page_size - 1)))
        return -EINVAL;
    size_t bytes = round_up(sizeof(struct mw_region_index), page_size);
    struct mw_region_index *idx = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (idx == MAP_FAILED)
        return -errno;
    idx->page_size = page_size;
    idx->page_shift = (unsigned)__builtin_ctzll((unsigned long long)page_size);
    idx->self_bytes = bytes;
    atomic_init(&idx->in_flight, 0);
    struct table *t = table_new(idx, INITIAL_CAP);
    if (!t) {
        munmap(idx, bytes);
        return -ENOMEM;
    }
    atomic_init(&idx->cur, t);
    *out = idx;
    return 0;
}

void mw_region_index_destroy(struct mw_region_index *idx)
{
    if (!idx)
        return;
    struct table *t = atomic_load(&idx->cur);
    if (t)
        munmap(t, t->bytes);
    while (idx->retired) {
        struct table *n = idx->retired->retired_next;
        munmap(idx->retired, idx->retired->bytes);
        idx->retired = n;
    }
    for (size_t i = 0; i < idx->nslabs; i++)
        munmap(idx->slabs[i], SLAB_BYTES);
    if (idx->slabs)
        munmap(idx->slabs, idx->slabs_cap * sizeof(void *));
    for (size_t i = 0; i < idx->naux; i++)
        free(idx->retired_aux[i]);
    if (idx->retired_aux)
        munmap(idx->retired_aux, idx->aux_cap * sizeof(void *));
    munmap(idx, idx->self_bytes);
}

/* Async-signal-safe. */
void mw_region_index_enter(struct mw_region_index *idx)
{
    atomic_fetch_add_explicit(&idx->in_flight, 1, memory_order_seq_cst);
}

/* Async-signal-safe. */
void mw_region_index_leave(struct mw_region_index *idx)
{
    atomic_fetch_sub_explicit(&idx->in_flight, 1, memory_order_release);
}

/* Async-signal-safe. */
struct mw_page *mw_region_index_lookup(const struct mw_region_index *idx, uintptr_t page)
{
    const struct table *t = atomic_load_explicit(&((struct mw_region_index *)idx)->cur,
                                                 memory_order_acquire);
    if (!t)
        return NULL;
    size_t mask = t->cap - 1;
    size_t i = hash_page(idx, t, page);
    for (size_t n = 0; n < t->cap; n++, i = (i + 1) & mask) {
        struct mw_page *e = atomic_load_explicit(&((struct table *)t)->slot[i],
                                                 memory_order_acquire);
        if (!e)
            return NULL;
        if (e != TOMB && e->addr == page)
            return e;
    }
    return NULL;
}

/* Room for one more pointer in *vec (n used of *cap), in a mapping of our own. */
static int grow_pointers(const struct mw_region_index *idx, void ***vec, size_t n, size_t *cap)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : idx->page_size / sizeof(void *);
    void **v = *vec ? mremap(*vec, *cap * sizeof(void *), ncap * sizeof(void *), MREMAP_MAYMOVE)
                    : mmap(NULL, ncap * sizeof(void *), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED)
        return -ENOMEM;
    *vec = v;
    *cap = ncap;
    return 0;
}

static int add_slab(struct mw_region_index *idx)
{
    if (grow_pointers(idx, &idx->slabs, idx->nslabs, &idx->slabs_cap) != 0)
        return -ENOMEM;
    struct mw_page *s = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return -errno;
    idx->slabs[idx->nslabs++] = s;
    size_t n = SLAB_BYTES / sizeof(struct mw_page);
    for (size_t i = n; i-- > 0;) {
        atomic_store_explicit(&s[i].next, idx->free_list, memory_order_relaxed);
        idx->free_list = &s[i];
    }
    return 0;
}

struct mw_page *mw_region_index_page_new(struct mw_region_index *idx, uintptr_t page)
{
    if (!idx->free_list) {
        mw_region_index_reclaim(idx);
        if (!idx->free_list && add_slab(idx) != 0)
            return NULL;
    }
    struct mw_page *e = idx->free_list;
    idx->free_list = atomic_load_explicit(&e->next, memory_order_relaxed);
    e->addr = page;
    atomic_store_explicit(&e->state, MW_PAGE_CLEAN, memory_order_relaxed);
    atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    atomic_store_explicit(&e->acct_prot, 0, memory_order_relaxed);
    atomic_store_explicit(&e->traps, 0, memory_order_relaxed);
    atomic_store_explicit(&e->watched, 0, memory_order_relaxed);
    atomic_store_explicit(&e->xowner, NULL, memory_order_relaxed);
    e->regions = 0;
    return e;
}

static void put_slot(struct mw_region_index *idx, struct table *t, struct mw_page *e,
                     int publish)
{
    size_t mask = t->cap - 1;
    size_t i = hash_page(idx, t, e->addr);
    for (;;) {
        struct mw_page *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (!s || s == TOMB) {
            if (!s)
                t->used++;
            t->live++;
            atomic_store_explicit(&t->slot[i], e,
                                  publish ? memory_order_release : memory_order_relaxed);
            return;
        }
        i = (i + 1) & mask;
    }
}

static int rebuild(struct mw_region_index *idx, size_t cap)
{
    struct table *old = atomic_load_explicit(&idx->cur, memory_order_relaxed);
    struct table *t = table_new(idx, cap);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < old->cap; i++) {
        struct mw_page *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (e && e != TOMB)
            put_slot(idx, t, e, 0);
    }
    /* Publish: handlers that enter from now on use t; the old table stays mapped (and
     * keeps pointing at valid entries) until reclamation. */
    atomic_store_explicit(&idx->cur, t, memory_order_seq_cst);
    old->retired_next = idx->retired;
    idx->retired = old;
    return 0;
}

int mw_region_index_insert(struct mw_region_index *idx, struct mw_page *e)
{
    struct table *t = atomic_load_explicit(&idx->cur, memory_order_relaxed);
    if (!t)
        return -EINVAL;      /* forgotten after fork */
    int rc = 0;
    if ((t->live + 1) * 2 > t->cap)
        rc = rebuild(idx, t->cap * 2);
    else if ((t->used + 1) * 4 > t->cap * 3)
        rc = rebuild(idx, t->cap);       /* too many tombstones */
    if (rc)
        return rc;
    put_slot(idx, atomic_load_explicit(&idx->cur, memory_order_relaxed), e, 1);
    return 0;
}

void mw_region_index_remove(struct mw_region_index *idx, struct mw_page *e)
{
    struct table *t = atomic_load_explicit(&idx->cur, memory_order_relaxed);
    if (t) {
        size_t mask = t->cap - 1;
        size_t i = hash_page(idx, t, e->addr);
        for (size_t n = 0; n < t->cap; n++, i = (i + 1) & mask) {
            struct mw_page *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
            if (!s)
                break;
            if (s == e) {
                atomic_store_explicit(&t->slot[i], TOMB, memory_order_release);
                t->live--;
                break;
            }
        }
    }
    atomic_store_explicit(&e->state, MW_PAGE_REMOVED, memory_order_release);
    atomic_store_explicit(&e->next, idx->limbo, memory_order_relaxed);
    idx->limbo = e;
}

int mw_region_index_retire(struct mw_region_index *idx, void *p)
{
    if (!p)
        return 0;
    if (grow_pointers(idx, &idx->retired_aux, idx->naux, &idx->aux_cap) != 0)
        return -ENOMEM;
    idx->retired_aux[idx->naux++] = p;
    return 0;
}

void mw_region_index_reclaim(struct mw_region_index *idx)
{
    if (!idx->retired && !idx->limbo && !idx->naux)
        return;
    /* Orders the publications and tombstones above before the read of in_flight; pairs
     * with the seq_cst increment in mw_region_index_enter. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&idx->in_flight, memory_order_seq_cst) != 0)
        return;
    while (idx->retired) {
        struct table *n = idx->retired->retired_next;
        munmap(idx->retired, idx->retired->bytes);
        idx->retired = n;
    }
    for (size_t i = 0; i < idx->naux; i++)
        free(idx->retired_aux[i]);
    idx->naux = 0;
    while (idx->limbo) {
        struct mw_page *e = idx->limbo;
        idx->limbo = atomic_load_explicit(&e->next, memory_order_relaxed);
        e->addr = 0;
        atomic_store_explicit(&e->next, idx->free_list, memory_order_relaxed);
        idx->free_list = e;
    }
}

size_t mw_region_index_count(const struct mw_region_index *idx)
{
    const struct table *t = atomic_load(&((struct mw_region_index *)idx)->cur);
    return t ? t->live : 0;
}

void mw_region_index_foreach(struct mw_region_index *idx,
                             void (*fn)(struct mw_page *e, void *ctx), void *ctx)
{
    struct table *t = atomic_load_explicit(&idx->cur, memory_order_acquire);
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        struct mw_page *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (e && e != TOMB)
            fn(e, ctx);
    }
}

void mw_region_index_forget_all(struct mw_region_index *idx)
{
    /* The old table and entries are leaked on purpose: this runs in a forked child whose
     * copy of them may be mid-update. */
    atomic_store_explicit(&idx->cur, NULL, memory_order_seq_cst);
}

static int overlaps(uintptr_t a, size_t alen, const void *b, size_t blen)
{
    uintptr_t bb = (uintptr_t)b;
    return a < bb + blen && a + alen > bb;
}

int mw_region_index_overlaps(const struct mw_region_index *idx, uintptr_t addr, size_t len)
{
    if (overlaps(addr, len, idx, idx->self_bytes))
        return 1;
    const struct table *t = atomic_load(&((struct mw_region_index *)idx)->cur);
    if (t && overlaps(addr, len, t, t->bytes))
        return 1;
    for (const struct table *r = idx->retired; r; r = r->retired_next)
        if (overlaps(addr, len, r, r->bytes))
            return 1;
    for (size_t i = 0; i < idx->nslabs; i++)
        if (overlaps(addr, len, idx->slabs[i], SLAB_BYTES))
            return 1;
    if (idx->slabs && overlaps(addr, len, idx->slabs, idx->slabs_cap * sizeof(void *)))
        return 1;
    if (idx->retired_aux && overlaps(addr, len, idx->retired_aux, idx->aux_cap * sizeof(void *)))
        return 1;
    return 0;
}

size_t mw_region_index_page_cost(void)
{
    /* The table stays at most half full: two slots per entry. */
    return sizeof(struct mw_page) + 2 * sizeof(struct mw_page *);
}
