/* mmap(), munmap() and mremap() for the injected library.
 *
 * mmap: a shared mapping of a file descriptor (MAP_SHARED: a SharedMemory block by name,
 * an mmap of a file) may be memory another traced process watches; memwatch is told
 * after the call (mw_engine_after_shared_map) so that the new view is watched too before
 * the program writes through it (shared_watch.c). Other mappings pass straight through.
 *
 * munmap() and mremap(): before the program unmaps (or moves)
 * memory that holds watched pages — closing a watched mmap, a SharedMemory block, a
 * watch_buffer range it manages itself — memwatch is told (mw_engine_before_unmap), so
 * that what was written there before is found and the watch ends, instead of the pages
 * vanishing under a check. Nothing else changes: the call then goes to the C library.
 *
 * Cost when nothing watched is in the range: a compare against the span of every page ever
 * watched. Linked only into the LD_PRELOAD library (mw_sigchain). */
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/mman.h>

#include "watcher.h"

static __typeof__(mmap) *real_mmap;
static __typeof__(munmap) *real_munmap;
static __typeof__(mremap) *real_mremap;

/* Resolved by the constructor, or at first use when a library loaded ahead of this one
 * calls them from its own constructor (see kwrite_interpose.c). */
static __typeof__(munmap) *munmap_fn(void)
{
    if (!real_munmap)
        real_munmap = (__typeof__(real_munmap))dlsym(RTLD_NEXT, "munmap");
    return real_munmap;
}

static __typeof__(mmap) *mmap_fn(void)
{
    if (!real_mmap)
        real_mmap = (__typeof__(real_mmap))dlsym(RTLD_NEXT, "mmap");
    return real_mmap;
}

static __typeof__(mremap) *mremap_fn(void)
{
    if (!real_mremap)
        real_mremap = (__typeof__(real_mremap))dlsym(RTLD_NEXT, "mremap");
    return real_mremap;
}

static int ready;

__attribute__((constructor)) static void unmap_interpose_init(void)
{
    mmap_fn();
    munmap_fn();
    mremap_fn();
    ready = 1;
}

__attribute__((no_sanitize("address", "undefined"))) void *mmap(void *addr, size_t len, int prot,
                                                                 int flags, int fd, off_t off)
{
    void *p = mmap_fn()(addr, len, prot, flags, fd, off);
    if (ready && fd >= 0 && (flags & MAP_SHARED) && (prot & PROT_WRITE) && p != MAP_FAILED)
        mw_engine_after_shared_map(p, len);
    return p;
}

/* The same function under its large-file name (one symbol on 64-bit glibc, two names). */
__attribute__((no_sanitize("address", "undefined"))) void *mmap64(void *addr, size_t len,
                                                                   int prot, int flags, int fd,
                                                                   off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

__attribute__((no_sanitize("address", "undefined"))) int munmap(void *addr, size_t len)
{
    if (ready)
        mw_engine_before_unmap(addr, len);
    return munmap_fn()(addr, len);
}

__attribute__((no_sanitize("address", "undefined"))) void *mremap(void *old, size_t old_len,
                                                                   size_t new_len, int flags, ...)
{
    void *fixed = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        fixed = va_arg(ap, void *);
        va_end(ap);
    }
    if (ready)
        mw_engine_before_unmap(old, old_len);
    return mremap_fn()(old, old_len, new_len, flags, fixed);
}
