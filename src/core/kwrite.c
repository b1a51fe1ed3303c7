/* Kernel writes into watched memory.
 *
 * DESIGN
 * A system call that writes into a protected page (read() into a watched buffer) fails
 * with EFAULT: the kernel does not take the fault on the program's behalf. The
 * interposed read-family calls (kwrite_interpose.c) open the buffer's watched pages
 * first, from the calling thread, by an atomic no-op write to a watched byte of each (the
 * ordinary fault path: old copy, writer, DIRTY), and pin the buffer so that a check on
 * another thread compares those pages but leaves them writable (the "could not re-arm"
 * path of check_page) until the call returns. Pins are a small lock-free table; when it
 * is full the call goes unpinned and the interposer retries once on EFAULT. */
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <string.h>

#include "engine.h"
#include "fault_path.h"

#define KWRITE_PINS 64
static struct {
    _Atomic uintptr_t lo, hi;
} kwrite_pins[KWRITE_PINS];

int kwrite_pinned(uintptr_t start, size_t len)
{
    for (size_t i = 0; i < KWRITE_PINS; i++) {
        uintptr_t lo = atomic_load_explicit(&kwrite_pins[i].lo, memory_order_seq_cst);
        if (!lo)
            continue;
        uintptr_t hi = atomic_load_explicit(&kwrite_pins[i].hi, memory_order_seq_cst);
        if (start < hi && start + len > lo)
            return 1;
    }
    return 0;
}

static int engine_watches_anything(void)
{
    struct mw_region_index *idx = engine.index;
    return idx && !engine.detached && !engine.stopped && mw_region_index_count(idx) > 0;
}

int mw_engine_owns_range(const void *addr, size_t len)
{
    if (!engine_watches_anything() || len == 0)
        return 0;
    size_t ps = engine.page_size;
    uintptr_t first = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    uintptr_t last = ((uintptr_t)addr + len - 1) & ~(uintptr_t)(ps - 1);
    for (uintptr_t p = first;; p += ps) {
        if (mw_engine_owns_address((const void *)p))
            return 1;
        if (p == last)
            break;
    }
    return 0;
}

/* Is any page of [addr, addr+len) watched, in whatever state? */
static int watches_range(uintptr_t a, size_t len)
{
    if (a + len <= atomic_load(&engine.watched_lo) || a >= atomic_load(&engine.watched_hi))
        return 0;
    size_t ps = engine.page_size;
    struct mw_region_index *idx = engine.index;
    int found = 0;
    mw_region_index_enter(idx);
    for (uintptr_t p = a & ~(uintptr_t)(ps - 1); p < a + len && !found; p += ps) {
        struct mw_page *e = mw_region_index_lookup(idx, p);
        found = e && MW_PAGE_STATE(atomic_load(&e->state)) != MW_PAGE_REMOVED;
    }
    mw_region_index_leave(idx);
    return found;
}

void mw_engine_set_unmap_hook(void (*hook)(const void *addr, size_t len))
{
    engine.unmap_hook = hook;
}

void mw_engine_before_unmap(const void *addr, size_t len)
{
    void (*hook)(const void *, size_t) = engine.unmap_hook;
    if (hook && len && engine_watches_anything() && watches_range((uintptr_t)addr, len))
        hook(addr, len);
}

static void (*_Atomic map_hook)(void *addr, size_t len);

void mw_engine_set_map_hook(void (*hook)(void *addr, size_t len))
{
    atomic_store(&map_hook, hook);
}

void mw_engine_after_shared_map(void *addr, size_t len)
{
    void (*hook)(void *, size_t) = atomic_load(&map_hook);
    if (hook && addr != MAP_FAILED && len)
        hook(addr, len);
}

int mw_engine_kwrite_begin(const void *addr, size_t len)
{
    if (!engine_watches_anything() || len == 0 || (uintptr_t)addr + len < (uintptr_t)addr)
        return 0;
    size_t ps = engine.page_size;
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    uintptr_t hi = (((uintptr_t)addr + len - 1) & ~(uintptr_t)(ps - 1)) + ps;
    int token = 0;
    for (size_t i = 0; i < KWRITE_PINS && !token; i++) {
        uintptr_t zero = 0;
        if (atomic_compare_exchange_strong(&kwrite_pins[i].lo, &zero, (uintptr_t)1)) {
            atomic_store(&kwrite_pins[i].hi, hi);
            atomic_store(&kwrite_pins[i].lo, lo);
            token = (int)i + 1;
        }
    }
    kwrite_order_point();
    struct mw_region_index *idx = engine.index;
    for (uintptr_t p = lo; p < hi; p += ps) {
        mw_region_index_enter(idx);
        struct mw_page *e = mw_region_index_lookup(idx, p);
        uint32_t s = e ? atomic_load_explicit(&e->state, memory_order_seq_cst)
                       : MW_PAGE_UNTRACKED;
        uintptr_t first = e ? mw_page_first_watched(e) : 0;
        mw_region_index_leave(idx);
        s = MW_PAGE_STATE(s);
        if (s != MW_PAGE_CLEAN && s != MW_PAGE_CHECKING)
            continue;
        /* A watched byte of the page, so that the fault path takes the page for good
         * rather than treating it as a neighbour's write; the atomic no-op cannot lose
         * a concurrent store. The fault (if the page is still protected) runs here. */
        volatile unsigned char *b = (volatile unsigned char *)(p + first);
        __atomic_fetch_or((unsigned char *)b, 0, __ATOMIC_SEQ_CST);
    }
    return token;
}

void mw_engine_kwrite_end(int token)
{
    if (token <= 0 || token > KWRITE_PINS)
        return;
    /* hi first: a pin claimed again in between must not lose its new hi. */
    atomic_store(&kwrite_pins[token - 1].hi, 0);
    atomic_store(&kwrite_pins[token - 1].lo, 0);
}


int mw_engine_write(void *dst, const void *src, size_t len)
{
    if (len == 0)
        return 0;
    if (!engine_watches_anything()) {
        memcpy(dst, src, len);
        return 0;
    }
    size_t ps = engine.page_size;
    int rc = 0;
    engine_lock();
    for (size_t done = 0; done < len && rc == 0;) {
        uintptr_t at = (uintptr_t)dst + done;
        size_t room = ps - (at & (ps - 1));
        size_t n = len - done < room ? len - done : room;
        rc = mw_fault_path_write((void *)at, (const unsigned char *)src + done, n);
        done += n;
    }
    engine_unlock();
    return rc == 0 ? 0 : -EFAULT;
}
