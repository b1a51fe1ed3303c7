/* Moving a watched object's storage to pages of its own, when that provably changes
 * nothing but the address (README "Neighbours"). Needs the GIL. */
#ifndef MW_RELOCATE_H
#define MW_RELOCATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* What a move did, to undo it when the object is no longer watched. */
struct mw_relocation {
    int kind;              /* 0: not moved */
    void *storage;         /* the object's storage now: an arena block or whole pages */
    size_t bytes;          /* its size as the object's allocator knows it */
    size_t page_bytes;     /* what it occupies: the block's size, or whole pages */
    int packed;            /* an arena block (src/core/arena.h), else pages from malloc */
};

/* Moves obj's storage (a bytearray's, an array.array's) to pages that hold only watched
 * objects, when nothing else can point into it and the waste (page_bytes - bytes) is
 * within budget.
 * Returns 1 when moved, 0 when left where it is (not movable, not worth it), never an
 * error: watching in place is always possible. Call before taking the object's buffer. */
int mw_relocate(PyObject *obj, size_t budget, struct mw_relocation *out);
/* Once the object's buffer is released: moves the storage back to the object's own
 * allocator when nothing points into it any more (otherwise it stays, and the object's
 * own deallocator frees it later, through free() or realloc(): see relocate.c). */
void mw_relocate_undo(PyObject *obj, struct mw_relocation *r);

/* Objects moved and the pages they occupy, now and at most. */
struct mw_relocate_stats {
    size_t objects, pages, objects_peak, pages_peak;
};
void mw_relocate_stats(struct mw_relocate_stats *out);

#endif
