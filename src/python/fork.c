/* DESIGN: after fork() the child has the parent's watched objects at the same addresses,
 * but only memory mapped shared (an anonymous MAP_SHARED mapping, a SharedMemory block, an
 * mmap of a file) is still the parent's memory: a write there by the child is a write to
 * what the parent watches, and must be recorded, named as the child's. Private memory is
 * a copy-on-write copy: the child's writes there change only its own copy, which nobody
 * watched, so the child lets those watches go, and with them the buffer exports that pin
 * the objects (a bytearray can be resized and freed as under python3).
 *
 * The engine starts afresh in the child (mw_engine_reset_after_fork, from the
 * pthread_atfork handler, which unprotects everything and drops the parent's state); here,
 * with the GIL, after CPython's own after-fork work (os.register_at_fork), each watcher
 * gets a new engine watcher and the shared watches are registered again under their
 * object ids, which the trace maps to the parent's objects (serve.c). */
#include "fork.h"

#include <stdint.h>

#include "memory_map.h"
#include "watcher.h"

/* Whether every byte of [start, start + len) lies in mappings the kernel marks shared. */
static int range_is_shared(const void *start, size_t len)
{
    uintptr_t at = (uintptr_t)start, end = at + len;
    while (at < end) {
        struct mw_vma_identity v;
        if (mw_vma_identify(at, &v) != 0 || !v.shared)
            return 0;
        at = v.end;
    }
    return 1;
}

void mw_fork_rewatch(struct mw_owner *o, const struct mw_watcher_config *config)
{
    mw_watcher *core = NULL;
    if (mw_watcher_create(config, &core) < 0)
        core = NULL;
    o->core = core;
    struct mw_watched *w = o->watched;
    while (w) {
        struct mw_watched *next = w->next;
        if (!core || !range_is_shared(w->buf.start, w->buf.span) ||
            mw_registry_rewatch_in_child(o, w) < 0)
            mw_registry_drop_in_child(o, w);
        w = next;
    }
}

static volatile int pending;

void mw_fork_happened(void)
{
    pending = 1;
}

int mw_fork_pending(void)
{
    int was = pending;
    pending = 0;
    return was;
}
