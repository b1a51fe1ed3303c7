/* free() and realloc() for the injected library: a block of the arena (arena.c) that the
 * program frees or resizes itself — the storage of an object that was unwatched while a
 * buffer of it was still lent out, so it could not move back — goes back to the arena
 * instead of to the C library, which never handed it out. Every other pointer goes to the
 * C library unchanged, after a compare against the arena's bounds.
 *
 * A block the C library gave its own mapping (a large one: numpy's data) is unmapped or
 * moved by the C library itself when it is freed or resized, with its internal munmap and
 * mremap, which unmap_interpose.c never sees. When watched bytes lie in such a block,
 * memwatch is told first (mw_engine_before_unmap), as for the program's own munmap:
 * what was written is found and those watches end. Otherwise mremap would carry the
 * protected pages to their new place, unknown to memwatch, and the C library's next write
 * there (the block's header) would be a fault nobody owns: a crash under --backend
 * mprotect (numpy's resize(refcheck=False) of a watched array).
 *
 * The C library's own entry points (__libc_free and friends) are called directly: dlsym
 * may itself allocate and free, which would come back here before it had an answer.
 * Linked only into the LD_PRELOAD library (mw_sigchain). */
#include <dlfcn.h>
#include <malloc.h>
#include <stdatomic.h>
#include <string.h>

#include "arena.h"
#include "watcher.h"

extern void __libc_free(void *p);
extern void *__libc_malloc(size_t n);
extern void *__libc_realloc(void *p, size_t n);

/* Set while the constructor asks which free() and realloc() calls reach (see below). */
static int probing, probe_reached;

/* glibc marks a block that has a mapping of its own with this bit of the size word just
 * before it (malloc.c, IS_MMAPPED): such a block is unmapped or mremap'd when it goes. */
#define GLIBC_CHUNK_MMAPPED 0x2

/* Not instrumented: the size word is the allocator's, outside any object, and a sanitized
 * build's runtime frees memory through here before its shadow exists. */
__attribute__((no_sanitize("address", "undefined"))) static void before_c_library_unmaps(void *p)
{
    if (((const size_t *)p)[-1] & GLIBC_CHUNK_MMAPPED)
        mw_engine_before_unmap(p, malloc_usable_size(p));
}

static void arena_aware_free(void *p)
{
    if (probing)
        probe_reached |= 1;
    if (p && mw_arena_owns(p)) {
        mw_arena_free(p);
        return;
    }
    if (p)
        before_c_library_unmaps(p);
    __libc_free(p);
}

static void *arena_aware_realloc(void *p, size_t n)
{
    if (probing)
        probe_reached |= 2;
    if (p && !mw_arena_owns(p))
        before_c_library_unmaps(p);
    if (!p || !mw_arena_owns(p))
        return __libc_realloc(p, n);
    if (n == 0) {              /* as the C library does: freed, and NULL */
        mw_arena_free(p);
        return NULL;
    }
    void *q = __libc_malloc(n);
    if (!q)
        return NULL;           /* p stays valid, as realloc() promises */
    size_t had = mw_arena_usable(p);
    memcpy(q, p, had < n ? had : n);
    mw_arena_free(p);
    return q;
}

__attribute__((no_sanitize("address", "undefined"))) void free(void *p)
{
    arena_aware_free(p);
}

__attribute__((no_sanitize("address", "undefined"))) void *realloc(void *p, size_t n)
{
    return arena_aware_realloc(p, n);
}

/* Are the free() and realloc() the program reaches these? Not when a sanitizer's runtime
 * or another allocator was preloaded ahead of this library. Asked by calling them as the
 * program does, through the global symbols (an executable that takes their address has
 * its own stubs for them, so comparing addresses cannot tell), with arguments that every
 * allocator takes: free(NULL) does nothing, realloc(NULL, 1) allocates. */
__attribute__((constructor)) static void free_interpose_init(void)
{
    void (*global_free)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "free");
    void *(*global_realloc)(void *, size_t) =
        (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "realloc");
    if (!global_free || !global_realloc)
        return;
    probing = 1;
    global_free(NULL);
    void *q = global_realloc(NULL, 1);
    probing = 0;
    global_free(q);
    atomic_store(&mw_arena_free_reached, probe_reached == 3);
}
