/* Pages for small watched objects, packed together by size.
 *
 * DESIGN
 * - Why: a small object moved to pages of its own (src/python/relocate.c) shares them with
 *   nothing the program writes behind its back, so watching it costs nothing else; but a
 *   whole page for each 64-byte object made 100,000 watched objects cost 400 MB and a
 *   page fault, a zeroed page and a protection call each. Packing them by size class, many
 *   to a page, keeps the isolation (a page holds only watched objects, and every write to
 *   it is a write to watched bytes or to a free block nobody uses) at 1/64th of the memory.
 * - The catch: an object may outlive its move. When it is unwatched while a buffer of it is
 *   still lent out, its storage cannot move back, and later the object's allocator frees
 *   or resizes it by handing it to free() or realloc(), which would take a block in the
 *   middle of our page for one of its own. free_interpose.c catches exactly those
 *   pointers (mw_arena_owns, a few loads) and gives them back here. So the arena is used
 *   only where that interposition is what the program's free() reaches
 *   (mw_arena_usable_here): not under a sanitizer or another preloaded allocator.
 * - Memory: chunks of CHUNK_BYTES, aligned to their size and never unmapped, so that a
 *   chunk is found from any pointer by its aligned base in a fixed, insert-only hash table
 *   read without a lock. Each page holds blocks of one size class; the bookkeeping (which
 *   blocks are used) lives in ordinary malloc'd memory, never in the page, because the
 *   page is usually write-protected. A page whose last block goes back returns to the free
 *   pages for any class.
 * - One mutex; pthread_atfork keeps it usable in a child. */
#include "arena.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_SHIFT 21
#define CHUNK_BYTES ((uintptr_t)1 << CHUNK_SHIFT)
/* Chunks the table can find: 2048 of 2 MiB, 4 GiB of small objects. Half full at most. */
#define MAX_CHUNKS 2048
#define TABLE_SLOTS (2 * MAX_CHUNKS)
#define MAX_BLOCKS_PER_PAGE 256

/* Block sizes: fine steps where small objects are common, coarser above. */
static const uint16_t class_size[] = {16,  32,  48,  64,  80,  96,   112,  128,  160,
                                      192, 224, 256, 320, 384, 448,  512,  640,  768,
                                      1024, 1360, 2048};
#define NCLASSES (sizeof class_size / sizeof class_size[0])

struct arena_page {
    uint16_t size;                 /* block size; 0: the page holds no block */
    uint16_t nblocks, used;
    uint8_t cls;
    uintptr_t addr;                            /* the page itself */
    uint64_t bits[MAX_BLOCKS_PER_PAGE / 64];   /* blocks in use */
    struct arena_page *prev, *next;            /* in its class's pages with a free block,
                                                  or (next only) in the free pages */
    int listed;                                /* in its class's list */
};

struct arena_chunk {
    uintptr_t base;
    size_t fresh;                  /* pages [fresh, npages) never used yet */
    struct arena_page pages[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct arena_chunk *_Atomic table[TABLE_SLOTS];
static _Atomic uintptr_t lowest = UINTPTR_MAX, highest;
static struct arena_chunk *current;          /* the chunk fresh pages come from */
static size_t nchunks;
static struct arena_page *partial[NCLASSES];  /* pages with a free block, per class */
static struct arena_page *free_pages;         /* pages whose blocks all came back */
static size_t page_bytes, pages_per_chunk, min_block;
static struct mw_arena_stats stats;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void lock_before_fork(void) { pthread_mutex_lock(&lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&lock); }

static void init(void)
{
    page_bytes = (size_t)sysconf(_SC_PAGESIZE);
    pages_per_chunk = CHUNK_BYTES / page_bytes;
    /* A page's bitmap holds MAX_BLOCKS_PER_PAGE blocks: larger pages take larger blocks. */
    min_block = page_bytes / MAX_BLOCKS_PER_PAGE;
    pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork);
}

static size_t slot_of(uintptr_t base)
{
    uint64_t h = (uint64_t)(base >> CHUNK_SHIFT) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 40) % TABLE_SLOTS;
}

static struct arena_chunk *chunk_of(uintptr_t p)
{
    uintptr_t base = p & ~(CHUNK_BYTES - 1);
    for (size_t i = slot_of(base), n = 0; n < TABLE_SLOTS; i = (i + 1) % TABLE_SLOTS, n++) {
        struct arena_chunk *c = atomic_load_explicit(&table[i], memory_order_acquire);
        if (!c)
            return NULL;
        if (c->base == base)
            return c;
    }
    return NULL;
}

int mw_arena_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a < atomic_load_explicit(&lowest, memory_order_relaxed) ||
        a >= atomic_load_explicit(&highest, memory_order_relaxed))
        return 0;
    return chunk_of(a) != NULL;
}

/* A new chunk, aligned to its size: mapped twice as large, the rest given back. */
static struct arena_chunk *new_chunk_locked(void)
{
    if (nchunks == MAX_CHUNKS)
        return NULL;
    struct arena_chunk *c = calloc(1, sizeof(*c) + pages_per_chunk * sizeof(struct arena_page));
    if (!c)
        return NULL;
    void *m = mmap(NULL, 2 * CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) {
        free(c);
        return NULL;
    }
    uintptr_t start = (uintptr_t)m, base = (start + CHUNK_BYTES - 1) & ~(CHUNK_BYTES - 1);
    if (base > start)
        munmap(m, base - start);
    if (start + 2 * CHUNK_BYTES > base + CHUNK_BYTES)
        munmap((void *)(base + CHUNK_BYTES), start + 2 * CHUNK_BYTES - (base + CHUNK_BYTES));
    /* Protection works on small pages; a huge page would be split at the first watch. */
    madvise((void *)base, CHUNK_BYTES, MADV_NOHUGEPAGE);
    c->base = base;
    size_t i = slot_of(base);
    while (atomic_load_explicit(&table[i], memory_order_relaxed))
        i = (i + 1) % TABLE_SLOTS;
    atomic_store_explicit(&table[i], c, memory_order_release);
    if (base < atomic_load(&lowest))
        atomic_store(&lowest, base);
    if (base + CHUNK_BYTES > atomic_load(&highest))
        atomic_store(&highest, base + CHUNK_BYTES);
    nchunks++;
    return c;
}

static struct arena_page *take_page_locked(void)
{
    struct arena_page *pg = free_pages;
    if (pg) {
        free_pages = pg->next;
        return pg;
    }
    if (!current || current->fresh == pages_per_chunk)
        if (!(current = new_chunk_locked()))
            return NULL;
    pg = &current->pages[current->fresh];
    pg->addr = current->base + current->fresh++ * page_bytes;
    return pg;
}

static void unlist(struct arena_page *pg)
{
    if (pg->prev)
        pg->prev->next = pg->next;
    else
        partial[pg->cls] = pg->next;
    if (pg->next)
        pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
    pg->listed = 0;
}

static void list(struct arena_page *pg)
{
    pg->prev = NULL;
    pg->next = partial[pg->cls];
    if (pg->next)
        pg->next->prev = pg;
    partial[pg->cls] = pg;
    pg->listed = 1;
}

void *mw_arena_alloc(size_t bytes, size_t *usable)
{
    pthread_once(&once, init);
    size_t cls = 0;
    while (cls < NCLASSES && (class_size[cls] < bytes || class_size[cls] < min_block))
        cls++;
    if (bytes == 0 || cls == NCLASSES || class_size[cls] > page_bytes)
        return NULL;
    pthread_mutex_lock(&lock);
    struct arena_page *pg = partial[cls];
    if (!pg && (pg = take_page_locked()) != NULL) {
        uintptr_t addr = pg->addr;
        memset(pg, 0, sizeof *pg);
        pg->addr = addr;
        pg->size = class_size[cls];
        pg->cls = (uint8_t)cls;
        pg->nblocks = (uint16_t)(page_bytes / pg->size);
        if (pg->nblocks > MAX_BLOCKS_PER_PAGE)
            pg->nblocks = MAX_BLOCKS_PER_PAGE;
        list(pg);
        stats.pages++;
    }
    void *p = NULL;
    if (pg) {
        size_t b = 0;
        while (pg->bits[b / 64] == UINT64_MAX)
            b += 64;
        b += (size_t)__builtin_ctzll(~pg->bits[b / 64]);
        pg->bits[b / 64] |= 1ull << (b % 64);
        if (++pg->used == pg->nblocks)
            unlist(pg);
        p = (void *)(pg->addr + b * pg->size);
        *usable = pg->size;
        stats.blocks++;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

/* The page entry and block index of p; NULL when p is not the start of a block. */
static struct arena_page *locate(uintptr_t p, size_t *block)
{
    struct arena_chunk *c = chunk_of(p);
    if (!c)
        return NULL;
    struct arena_page *pg = &c->pages[(p - c->base) / page_bytes];
    uintptr_t off = (p - c->base) % page_bytes;
    if (!pg->size || off % pg->size != 0 || off / pg->size >= pg->nblocks)
        return NULL;
    *block = off / pg->size;
    return pg;
}

void mw_arena_free(void *p)
{
    size_t b;
    pthread_mutex_lock(&lock);
    struct arena_page *pg = locate((uintptr_t)p, &b);
    if (pg && (pg->bits[b / 64] & (1ull << (b % 64)))) {
        pg->bits[b / 64] &= ~(1ull << (b % 64));
        stats.blocks--;
        if (pg->used-- == pg->nblocks)
            list(pg);
        if (pg->used == 0) {
            unlist(pg);
            pg->size = 0;
            pg->next = free_pages;
            free_pages = pg;
            stats.pages--;
        }
    }
    /* Anything else (not a block start, a block already free) is a caller's bug that the
     * C library would have aborted on; the arena's own state stays consistent. */
    pthread_mutex_unlock(&lock);
}

size_t mw_arena_usable(const void *p)
{
    size_t b;
    pthread_mutex_lock(&lock);
    struct arena_page *pg = locate((uintptr_t)p, &b);
    size_t n = pg ? pg->size : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

void mw_arena_stats(struct mw_arena_stats *out)
{
    pthread_mutex_lock(&lock);
    *out = stats;
    pthread_mutex_unlock(&lock);
}

_Atomic int mw_arena_free_reached;
int mw_arena_usable_here(void)
{
    return atomic_load(&mw_arena_free_reached);
}
