/* Isolated memory: see isolation.h.
 *
 * DESIGN
 * - Small objects: size classes of 16-byte multiples. A slab is one page of one class,
 *   with a bitmap of its slots; slabs of a class that have room are linked (partial). Pages
 *   come from chunks of CHUNK_PAGES pages reserved at once; an emptied slab's page is
 *   returned to the kernel (MADV_DONTNEED) and kept for any class.
 * - Large objects: a mapping of their own, so nothing else is ever on their pages.
 * - Bookkeeping lives in memory of our own (scratch vectors, engine.h), never on a page an
 *   object is on: the data pages are watched and protected, and a free slot is never
 *   written by us (no free list threaded through the data). */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "isolation.h"

#define CHUNK_PAGES 256u
#define NO_SLAB UINT32_MAX
#define MAX_SLOTS 256u       /* a 4 KiB page of 16-byte slots */

static const uint32_t class_size[] = {16,  32,  48,  64,  96,   128,  192,
                                      256, 384, 512, 768, 1024, 1536, 2048};
#define NCLASSES (sizeof class_size / sizeof class_size[0])
#define FREE_PAGE NCLASSES   /* slab.cls of a page no class uses */

struct slab {
    uintptr_t page;
    uint32_t cls;
    uint32_t used;
    uint32_t next;           /* next slab of the same list (partial per class, or free) */
    uint64_t bits[MAX_SLOTS / 64];
};

struct chunk {
    uintptr_t base;
    uint32_t first_slab;
};

static struct {
    pthread_mutex_t lock;
    size_t page_size;
    struct svec slabs;       /* struct slab */
    struct svec chunks;      /* struct chunk, in address order of creation */
    uint32_t partial[NCLASSES];
    uint32_t free_pages;
    struct mw_isolation_stats stats;
} iso = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void reinit_in_child(void)
{
    pthread_mutex_init(&iso.lock, NULL);
}

static struct slab *slab_at(uint32_t i)
{
    return &((struct slab *)iso.slabs.p)[i];
}

static int start_locked(void)
{
    if (iso.page_size)
        return 0;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || (size_t)ps / 16 > MAX_SLOTS)
        return -EINVAL;
    iso.page_size = (size_t)ps;
    for (size_t c = 0; c < NCLASSES; c++)
        iso.partial[c] = NO_SLAB;
    iso.free_pages = NO_SLAB;
    pthread_atfork(NULL, NULL, reinit_in_child);
    return 0;
}

/* CHUNK_PAGES new free pages. */
static int add_chunk_locked(void)
{
    size_t bytes = CHUNK_PAGES * iso.page_size;
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    uint32_t first = (uint32_t)(iso.slabs.len / sizeof(struct slab));
    struct chunk ch = { (uintptr_t)base, first };
    if (svec_reserve(&iso.slabs, CHUNK_PAGES * sizeof(struct slab)) != 0 ||
        !svec_push(&iso.chunks, &ch, sizeof ch)) {
        munmap(base, bytes);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < CHUNK_PAGES; i++) {
        struct slab s = { .page = ch.base + i * iso.page_size, .cls = FREE_PAGE,
                          .next = iso.free_pages };
        svec_push(&iso.slabs, &s, sizeof s);
        iso.free_pages = first + i;
    }
    return 0;
}

static uint32_t slots_of(uint32_t cls)
{
    return (uint32_t)(iso.page_size / class_size[cls]);
}

/* A slab of class cls with a free slot, or NO_SLAB. */
static uint32_t slab_with_room_locked(uint32_t cls)
{
    if (iso.partial[cls] != NO_SLAB)
        return iso.partial[cls];
    if (iso.free_pages == NO_SLAB && add_chunk_locked() != 0)
        return NO_SLAB;
    uint32_t i = iso.free_pages;
    struct slab *s = slab_at(i);
    iso.free_pages = s->next;
    s->cls = cls;
    s->used = 0;
    memset(s->bits, 0, sizeof s->bits);
    s->next = NO_SLAB;
    iso.partial[cls] = i;
    iso.stats.pages++;
    return i;
}

static void *alloc_small_locked(size_t size)
{
    uint32_t cls = 0;
    while (class_size[cls] < size)
        cls++;
    uint32_t i = slab_with_room_locked(cls);
    if (i == NO_SLAB)
        return NULL;
    struct slab *s = slab_at(i);
    uint32_t n = slots_of(cls), slot = 0;
    while (slot < n && (s->bits[slot / 64] >> (slot % 64) & 1))
        slot++;
    s->bits[slot / 64] |= (uint64_t)1 << (slot % 64);
    if (++s->used == n) {   /* full: off the partial list (it is its head) */
        iso.partial[cls] = s->next;
        s->next = NO_SLAB;
    }
    return (void *)(s->page + (uintptr_t)slot * class_size[cls]);
}

/* The slab whose page holds p, or NULL. */
static struct slab *slab_of_locked(uintptr_t p)
{
    const struct chunk *c = (const struct chunk *)iso.chunks.p;
    size_t n = iso.chunks.len / sizeof *c, bytes = CHUNK_PAGES * iso.page_size;
    for (size_t k = 0; k < n; k++)
        if (p >= c[k].base && p < c[k].base + bytes)
            return slab_at(c[k].first_slab + (uint32_t)((p - c[k].base) / iso.page_size));
    return NULL;
}

static void unlink_partial_locked(struct slab *s, uint32_t index)
{
    for (uint32_t *at = &iso.partial[s->cls]; *at != NO_SLAB; at = &slab_at(*at)->next)
        if (*at == index) {
            *at = s->next;
            return;
        }
}

static void free_small_locked(uintptr_t p)
{
    struct slab *s = slab_of_locked(p);
    if (!s || s->cls >= NCLASSES)
        return;
    uint32_t index = (uint32_t)(s - slab_at(0)), n = slots_of(s->cls);
    uint32_t slot = (uint32_t)((p - s->page) / class_size[s->cls]);
    s->bits[slot / 64] &= ~((uint64_t)1 << (slot % 64));
    if (s->used-- == n) {   /* it was full: it has room again */
        s->next = iso.partial[s->cls];
        iso.partial[s->cls] = index;
    }
    if (s->used > 0)
        return;
    /* Empty: the page goes back to the kernel and to the free pages. */
    unlink_partial_locked(s, index);
    madvise((void *)s->page, iso.page_size, MADV_DONTNEED);
    s->cls = FREE_PAGE;
    s->next = iso.free_pages;
    iso.free_pages = index;
    iso.stats.pages--;
}

static size_t large_bytes(size_t size)
{
    return (size + iso.page_size - 1) / iso.page_size * iso.page_size;
}

void *mw_isolation_alloc(size_t size)
{
    if (size == 0)
        size = 1;
    pthread_mutex_lock(&iso.lock);
    void *p = NULL;
    if (start_locked() == 0) {
        if (size < MW_ISOLATION_SMALL_MAX) {
            p = alloc_small_locked(size);
        } else {
            p = mmap(NULL, large_bytes(size), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                p = NULL;
            else
                iso.stats.pages += large_bytes(size) / iso.page_size;
        }
    }
    if (p) {
        iso.stats.objects++;
        iso.stats.bytes += size;
        if (iso.stats.objects > iso.stats.objects_peak)
            iso.stats.objects_peak = iso.stats.objects;
        if (iso.stats.pages > iso.stats.pages_peak)
            iso.stats.pages_peak = iso.stats.pages;
    }
    pthread_mutex_unlock(&iso.lock);
    return p;
}

void mw_isolation_free(void *p, size_t size)
{
    if (!p)
        return;
    if (size == 0)
        size = 1;
    pthread_mutex_lock(&iso.lock);
    if (size < MW_ISOLATION_SMALL_MAX) {
        free_small_locked((uintptr_t)p);
    } else {
        munmap(p, large_bytes(size));
        iso.stats.pages -= large_bytes(size) / iso.page_size;
    }
    iso.stats.objects--;
    iso.stats.bytes -= size;
    pthread_mutex_unlock(&iso.lock);
}

void mw_isolation_stats(struct mw_isolation_stats *out)
{
    pthread_mutex_lock(&iso.lock);
    *out = iso.stats;
    pthread_mutex_unlock(&iso.lock);
}

int mw_isolation_overlaps_meta(uintptr_t addr, size_t len)
{
    return svec_overlaps(&iso.slabs, addr, len) || svec_overlaps(&iso.chunks, addr, len);
}
