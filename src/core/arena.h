/* Pages for small watched objects, packed together by size (arena.c). */
#ifndef MW_ARENA_H
#define MW_ARENA_H

#include <stdatomic.h>
#include <stddef.h>

/* The largest block the arena hands out; larger objects take whole pages of their own. */
#define MW_ARENA_MAX_BLOCK 2048

/* A block of at least bytes (1..MW_ARENA_MAX_BLOCK), 16-byte aligned, on a page that
 * holds only other arena blocks; its usable size in *usable. NULL when bytes is out of
 * range or no memory can be had. Thread-safe. */
void *mw_arena_alloc(size_t bytes, size_t *usable);
/* Gives back a block mw_arena_alloc returned. Thread-safe; touches only the arena's own
 * bookkeeping, never the block's page (which may be protected). */
void mw_arena_free(void *p);
/* Is p inside the arena's memory? Lock-free, a few loads: free() asks it of every
 * pointer (free_interpose.c). */
int mw_arena_owns(const void *p);
/* The usable size of the block at p, which the arena owns. */
size_t mw_arena_usable(const void *p);

struct mw_arena_stats {
    size_t blocks;   /* handed out and not given back */
    size_t pages;    /* pages holding at least one of them */
};
void mw_arena_stats(struct mw_arena_stats *out);

/* Whether free() and realloc() in this process reach free_interpose.c, so that a block
 * the program frees itself comes back to the arena (see arena.c, DESIGN). Without that
 * (a sanitizer or another allocator interposed first) nothing may use the arena. */
int mw_arena_usable_here(void);
/* Set by free_interpose.c when it finds itself the free() the program reaches. */
extern _Atomic int mw_arena_free_reached;

#endif
