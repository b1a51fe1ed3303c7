/* Zeroed buffers as large as an object, for readers that rebuild objects' values
 * (value_read.c, cli/diff_stream.c). From 1 MiB up they are anonymous mappings that
 * reserve nothing: a reader that looks at a few changes of a huge object touches only
 * the pages those changes cover, and a hostile size in a trace costs address space, not
 * memory. Free with the size they were allocated with. */
#ifndef MW_TRACE_BIG_ALLOC_H
#define MW_TRACE_BIG_ALLOC_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MW_BIG_ALLOC_MIN ((size_t)1 << 20)

static inline void *mw_big_zalloc(size_t n)
{
    if (n < MW_BIG_ALLOC_MIN)
        return calloc(1, n ? n : 1);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline void mw_big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < MW_BIG_ALLOC_MIN)
        free(p);
    else
        munmap(p, n);
}

/* Zeroes p: a private anonymous mapping reads as zeros again once its pages are dropped. */
static inline void mw_big_clear(void *p, size_t n)
{
    if (n < MW_BIG_ALLOC_MIN || madvise(p, n, MADV_DONTNEED) != 0)
        memset(p, 0, n);
}

#endif
