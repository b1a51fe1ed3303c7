/* Growable arrays: one way to make room in a malloc'd array, instead of a hand-written
 * realloc at every site (the shape of git's ALLOC_GROW, but returning a status: src/ never
 * dies on a failed allocation).
 *
 *     struct item *items = NULL;
 *     size_t n = 0, cap = 0;
 *     if (MW_GROW(items, cap, n + 1) != 0)
 *         return -ENOMEM;
 *     items[n++] = x;
 *
 * Capacity doubles (from 8), so appends cost amortized O(1). On failure the array and its
 * capacity are left as they were. Not for memory a signal handler touches. */
#ifndef MW_GROW_H
#define MW_GROW_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ptr: an lvalue pointer to the array; cap: an lvalue size_t, its capacity in elements;
 * need: the elements it must hold. 0 or -ENOMEM. */
#define MW_GROW(ptr, cap, need) mw_grow_array((void *)&(ptr), &(cap), (need), sizeof(*(ptr)))

static inline int mw_grow_array(void *ptr_addr, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t grown = *cap ? *cap : 8;
    while (grown < need) {
        if (grown > SIZE_MAX / 2)
            return -ENOMEM;
        grown *= 2;
    }
    if (elem_size && grown > SIZE_MAX / elem_size)
        return -ENOMEM;
    void *old;
    memcpy(&old, ptr_addr, sizeof old);
    void *p = realloc(old, grown * elem_size);
    if (!p)
        return -ENOMEM;
    memcpy(ptr_addr, &p, sizeof p);
    *cap = grown;
    return 0;
}

#endif
