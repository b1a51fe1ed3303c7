/* Growable scratch vectors in anonymous memory of the engine's own (see engine.h: the
 * checker must not touch the heap while pages are CHECKING, and memory of our own can
 * never share a page with watched data). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"

#define SVEC_FIRST ((size_t)64 << 10)
#define SVEC_KEEP ((size_t)16 << 20)

int svec_reserve(struct svec *v, size_t add)
{
    if (v->len + add <= v->cap)
        return 0;
    size_t need = v->len + add, cap = v->cap ? v->cap : SVEC_FIRST;
    while (cap < need)
        cap *= 2;
    void *p = v->p ? mremap(v->p, v->cap, cap, MREMAP_MAYMOVE)
                   : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    v->p = p;
    v->cap = cap;
    return 0;
}

void *svec_push(struct svec *v, const void *item, size_t n)
{
    if (svec_reserve(v, n))
        return NULL;
    void *dst = v->p + v->len;
    if (item)
        memcpy(dst, item, n);
    v->len += n;
    return dst;
}

/* Shrinks scratch that a big check left behind. */
void svec_trim(struct svec *v)
{
    v->len = 0;
    if (v->cap > SVEC_KEEP) {
        munmap(v->p, v->cap);
        v->p = NULL;
        v->cap = 0;
    }
}

int svec_overlaps(const struct svec *v, uintptr_t a, size_t len)
{
    uintptr_t p = (uintptr_t)v->p;
    return v->p && a < p + v->cap && a + len > p;
}
