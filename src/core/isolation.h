/* Isolated memory: pages that hold watched data and nothing else.
 *
 * A watched object that shares its pages with the rest of the program pays for its
 * neighbours: every write of theirs to a protected page traps, and the kernel cannot write
 * a system call's result there. When the Python layer can move an object's storage (it
 * proves that nothing else points into it), it moves it here, where the only neighbours
 * are other watched objects.
 *
 * Small objects share pages by size class (16-byte aligned slots); an object of
 * MW_ISOLATION_SMALL_MAX bytes or more gets pages of its own (page-aligned, the tail of its
 * last page unused). Freed pages go back to the kernel.
 *
 * Thread-safe (one mutex); not async-signal-safe. In a forked child the allocator keeps
 * working on its copy of the memory. */
#ifndef MW_ISOLATION_H
#define MW_ISOLATION_H

#include <stddef.h>
#include <stdint.h>

#define MW_ISOLATION_SMALL_MAX 2048

struct mw_isolation_stats {
    size_t objects;        /* live allocations */
    size_t bytes;          /* their sizes */
    size_t pages;          /* pages they occupy */
    size_t objects_peak, pages_peak;
};

/* size bytes of isolated memory (16-byte aligned, page-aligned from
 * MW_ISOLATION_SMALL_MAX), or NULL when out of memory. Its contents are unspecified: the
 * caller fills it with mw_engine_fill (the page may be protected already). */
void *mw_isolation_alloc(size_t size);
/* Gives back what mw_isolation_alloc(size) returned. */
void mw_isolation_free(void *p, size_t size);
void mw_isolation_stats(struct mw_isolation_stats *out);
/* Does [addr, addr+len) overlap the allocator's own bookkeeping (never its data)? */
int mw_isolation_overlaps_meta(uintptr_t addr, size_t len);

#endif
