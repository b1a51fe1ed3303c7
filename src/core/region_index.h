/* Page -> page entry index: lock-free lookups from a fault handler, writers under the
 * engine lock.
 *
 * DESIGN
 * - The table is open addressing with linear probing over pointers to page entries. A
 *   slot is NULL (never used), MW_INDEX_TOMB (removed) or an entry. Lookups read the
 *   published table with acquire loads and compare entry->addr; they never lock.
 * - Writers (one at a time, under the engine lock) insert and tombstone in place. Growth
 *   or tombstone clean-up builds a new table, publishes it with one atomic store, and
 *   retires the old one.
 * - Entries live in slabs of memory of our own (mmap, never shared with user data). A
 *   removed entry is retired, not reused, until reclamation.
 * - Reclamation is quiescence-based: handlers bracket their use of the index with
 *   mw_region_index_enter/leave (one atomic counter). When the writer, after retiring
 *   things, observes the counter at zero, no handler can still hold a pointer obtained
 *   before the retirement, so retired tables are unmapped and retired entries reused.
 *   Until then they stay valid (the old table keeps pointing to entries that are still
 *   readable), so a late handler reads stale but safe memory and re-checks entry->addr.
 * - Page entries carry the per-page state machine (see enum mw_page_state) that the
 *   detectors and the checker drive with atomics. */
#ifndef MW_REGION_INDEX_H
#define MW_REGION_INDEX_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Per watched page:
 *   CLEAN     protected; the next write faults
 *   FAULTING  a fault handler owns the page: copying old contents, unprotecting
 *   DIRTY     written since the last check; old contents in a pool slot (or none when the
 *             memory limit was reached); on the detector's dirty list
 *   CHECKING  the checker re-protected it and is comparing; a fault waits for CLEAN
 *   UNTRACKED never protected by us: read-only mapping, or the engine was stopped
 *   REMOVED   leaving the index; a fault on it is stale and retries
 *   OPEN      unprotected for one instruction: a neighbour's write (outside the watched
 *             bytes) runs single-stepped, then the page is protected again (SIGTRAP)
 *   SHADOWED  left unprotected because its neighbours are busy: its watched bytes are
 *             compared with its copy (pool slot) at line boundaries and at every check
 * Transitions: CLEAN->FAULTING (handler CAS), FAULTING->DIRTY|CLEAN (that handler),
 * DIRTY->CHECKING->CLEAN (checker, engine lock), CLEAN|UNTRACKED->REMOVED (engine lock),
 * FAULTING->OPEN->CLEAN|DIRTY (the faulting thread, in its SIGSEGV then SIGTRAP handler),
 * CLEAN->CHECKING->SHADOWED->CHECKING->CLEAN and SHADOWED->REMOVED (engine lock). */
enum mw_page_state {
    MW_PAGE_CLEAN = 0,
    MW_PAGE_FAULTING,
    MW_PAGE_DIRTY,
    MW_PAGE_CHECKING,
    MW_PAGE_UNTRACKED,
    MW_PAGE_REMOVED,
    MW_PAGE_OPEN,
    MW_PAGE_SHADOWED,
};

/* Or'ed into CHECKING by a fault handler that sleeps (futex) until the checker is done
 * with the page; the checker leaves CHECKING with an exchange and wakes the sleepers. */
#define MW_PAGE_WAITERS 0x100u
#define MW_PAGE_STATE(s) ((s) & 0xffu)

/* acct_prot packs the index of the account charged for this page's copies (upper 24
 * bits) and the page's original protection (lower 8 bits), so a handler reads both in
 * one atomic load. */
#define MW_ACCT_PROT(acct, prot) (((uint32_t)(acct) << 8) | ((uint32_t)(prot) & 0xffu))
#define MW_ACCT_OF(ap) ((ap) >> 8)
#define MW_PROT_OF(ap) ((int)((ap) & 0xffu))
/* A span packs watched bytes [lo, hi) of a page in 32 bits: lo and the last watched byte
 * (hi - 1), 16 bits each, which holds any page size up to 64 KiB (MW_SPAN_MAX_PAGE;
 * mw_engine_init refuses a larger one). */
#define MW_SPAN(lo, hi) (((uint32_t)(lo) << 16) | (uint32_t)((hi) - 1))
#define MW_SPAN_LO(s) ((uintptr_t)((s) >> 16))
#define MW_SPAN_HI(s) ((uintptr_t)((s) & 0xffffu) + 1)
#define MW_SPAN_MAX_PAGE ((size_t)1 << 16)

/* The watched bytes of a page shared by several regions: their spans, sorted and merged.
 * Immutable once published; replaced ones are retired through the index
 * (mw_region_index_retire), so a handler may read them without a lock. */
struct mw_spans {
    uint32_t n;
    uint32_t span[];
};

/* struct mw_page.watched: 0 (no watched bytes), one span inline (MW_WATCHED_ONE, bit 0
 * set), or a pointer to a struct mw_spans. */
#define MW_WATCHED_ONE(span) (((uintptr_t)(span) << 1) | 1u)

/* Set in struct mw_page.regions (bit 0) when it points to a vector of regions rather than
 * to one region. */
#define MW_REGIONS_VEC ((uintptr_t)1)

struct mw_xproc_word;

struct mw_page {
    uintptr_t addr;                  /* page address; constant while indexed */
    _Atomic uint32_t state;          /* enum mw_page_state */
    _Atomic uint32_t slot;           /* pool slot of the old contents, MW_SLOT_NONE */
    struct mw_page *_Atomic next;    /* dirty list link (handler, checker) */
    _Atomic uint32_t acct_prot;      /* MW_ACCT_PROT; written under the engine lock */
    _Atomic uint32_t traps;          /* neighbour writes this epoch (fault_path.c) */
    /* The page's watched bytes (MW_WATCHED_ONE or struct mw_spans *): a write elsewhere on
     * the page is a neighbour's (see fault_path.c). Written under the engine lock. */
    _Atomic uintptr_t watched;
    uintptr_t regions;               /* engine lock; owned by page_refs.c (MW_REGIONS_VEC) */
    /* Memory shared with other traced processes: the word that says which one has it open
     * (xproc_page.h), or NULL. Set under the engine lock. */
    struct mw_xproc_word *_Atomic xowner;
};

/* Async-signal-safe: calls fn(lo, hi, ctx) for each span of the page's watched bytes, in
 * address order, until fn returns non-zero; returns that value (0 when none did). */
static inline int mw_page_each_span(const struct mw_page *e,
                                    int (*fn)(uintptr_t lo, uintptr_t hi, void *ctx), void *ctx)
{
    uintptr_t w = atomic_load_explicit(&((struct mw_page *)e)->watched, memory_order_acquire);
    if (w & 1u) {
        uint32_t s = (uint32_t)(w >> 1);
        return fn(MW_SPAN_LO(s), MW_SPAN_HI(s), ctx);
    }
    const struct mw_spans *sp = (const struct mw_spans *)w;
    for (uint32_t i = 0; sp && i < sp->n; i++) {
        int r = fn(MW_SPAN_LO(sp->span[i]), MW_SPAN_HI(sp->span[i]), ctx);
        if (r)
            return r;
    }
    return 0;
}

static inline int mw_span_holds_(uintptr_t lo, uintptr_t hi, void *ctx)
{
    uintptr_t off = *(const uintptr_t *)ctx;
    return off >= lo && off < hi;
}

/* Async-signal-safe: is page offset off one of the page's watched bytes? */
static inline int mw_page_watches(const struct mw_page *e, uintptr_t off)
{
    return mw_page_each_span(e, mw_span_holds_, &off);
}

static inline int mw_span_first_(uintptr_t lo, uintptr_t hi, void *ctx)
{
    (void)hi;
    *(uintptr_t *)ctx = lo;
    return 1;
}

/* Async-signal-safe: the page offset of its first watched byte (0 when none). */
static inline uintptr_t mw_page_first_watched(const struct mw_page *e)
{
    uintptr_t lo = 0;
    mw_page_each_span(e, mw_span_first_, &lo);
    return lo;
}

/* A transition of the page state machine made by the one thread that owns the page in
 * state from (see the transitions above): a release store, and in debug builds a check
 * that the page really was in from. Async-signal-safe. */
static inline void mw_page_set_state(struct mw_page *e, uint32_t from, uint32_t to)
{
    assert(atomic_load_explicit(&e->state, memory_order_relaxed) == from);
    (void)from;
    atomic_store_explicit(&e->state, to, memory_order_release);
}

struct mw_region_index;

int mw_region_index_create(size_t page_size, struct mw_region_index **out);
/* Frees everything, retired memory included. No handler may be running. */
void mw_region_index_destroy(struct mw_region_index *idx);

/* Async-signal-safe, lock-free: the entry for page (page-aligned), or NULL. Call between
 * mw_region_index_enter and mw_region_index_leave. */
struct mw_page *mw_region_index_lookup(const struct mw_region_index *idx, uintptr_t page);
void mw_region_index_enter(struct mw_region_index *idx);   /* async-signal-safe */
void mw_region_index_leave(struct mw_region_index *idx);   /* async-signal-safe */

/* Writers: engine lock held. */
struct mw_page *mw_region_index_page_new(struct mw_region_index *idx, uintptr_t page);
int mw_region_index_insert(struct mw_region_index *idx, struct mw_page *e);
/* Tombstones e and retires it: it stays readable until reclamation. */
void mw_region_index_remove(struct mw_region_index *idx, struct mw_page *e);
/* Frees malloc'd memory p that handlers may still be reading (a struct mw_spans) at the
 * next reclamation that finds no handler inside the index. */
int mw_region_index_retire(struct mw_region_index *idx, void *p);
/* Frees retired tables and recycles retired entries if no handler is inside the index. */
void mw_region_index_reclaim(struct mw_region_index *idx);
size_t mw_region_index_count(const struct mw_region_index *idx);
/* Calls fn for every indexed entry (engine lock held, or single-threaded after fork). */
void mw_region_index_foreach(struct mw_region_index *idx,
                             void (*fn)(struct mw_page *e, void *ctx), void *ctx);
/* Forgets every entry at once (after fork): lookups return NULL afterwards. */
void mw_region_index_forget_all(struct mw_region_index *idx);
/* Does [addr, addr+len) overlap memory the index allocated? */
int mw_region_index_overlaps(const struct mw_region_index *idx, uintptr_t addr, size_t len);
/* Bytes charged per indexed page: the entry plus its share of the table. */
size_t mw_region_index_page_cost(void);

#endif
