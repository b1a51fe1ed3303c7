/* Writing on the program's behalf into pages the engine protects (mw_engine_fill): moving
 * an object's storage next to other watched objects (isolation.h).
 *
 * DESIGN
 * A CLEAN page is taken the way a check takes one: CHECKING (a writer that faults now
 * waits), its old contents copied, protection lifted, our bytes written, protection back,
 * then the old copy compared with the page outside our bytes. Between the lift and the
 * re-protection another thread may have written without a fault; such a write shows as a
 * difference, and the page stays DIRTY with the old copy (writer unknown) for the next
 * check to report. Otherwise the copy is released and the page is CLEAN again. Pages that
 * are not protected (DIRTY, unwatched) are written directly. Engine lock held: no check
 * runs meanwhile. */
#include <sched.h>
#include <string.h>

#include "engine.h"
#include "fault_path.h"
#include "mw_error.h"

/* Did anything on the page change, outside [skip_lo, skip_hi) (page offsets)? */
static int changed_outside(const unsigned char *old, const unsigned char *page, size_t skip_lo,
                           size_t skip_hi)
{
    return memcmp(old, page, skip_lo) != 0 ||
           memcmp(old + skip_hi, page + skip_hi, engine.page_size - skip_hi) != 0;
}

/* Writes src into [dst, dst+len), all on the page of entry e (or on no watched page). */
static int fill_page_locked(struct mw_page *e, unsigned char *dst, const unsigned char *src,
                            size_t len)
{
    if (e && atomic_load(&e->state) == MW_PAGE_SHADOWED) {
        /* Open, compared with its copy: our bytes go into both, so they are no change. */
        memcpy(dst, src, len);
        memcpy((unsigned char *)mw_page_pool_data(engine.pool, atomic_load(&e->slot)) +
                   ((uintptr_t)dst - e->addr), src, len);
        return 0;
    }
    uint32_t s = MW_PAGE_CLEAN;
    while (e && !atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_CHECKING)) {
        if (s != MW_PAGE_FAULTING && s != MW_PAGE_OPEN)
            e = NULL;                  /* not protected: an ordinary write */
        else
            sched_yield();             /* a fault handler owns it for a moment */
        s = MW_PAGE_CLEAN;
    }
    if (!e) {
        memcpy(dst, src, len);
        return 0;
    }
    uint32_t ap = atomic_load(&e->acct_prot);
    int prot = MW_PROT_OF(ap);
    uint32_t slot = mw_page_pool_take_copy(engine.pool, MW_ACCT_OF(ap), (const void *)e->addr);
    int rc = engine.det->unprotect(e->addr, engine.page_size, prot);
    if (rc != 0) {
        if (slot != MW_SLOT_NONE)
            mw_page_pool_release_copy(engine.pool, slot);
        page_leave_checking(e, MW_PAGE_CLEAN);
        return rc;
    }
    memcpy(dst, src, len);
    /* As in check.c: a kernel write pinned on the page keeps it open. */
    atomic_thread_fence(memory_order_seq_cst);
    int rearmed = !kwrite_pinned(e->addr, engine.page_size) &&
                  engine.det->rearm(e->addr, engine.page_size, prot) == 0;
    size_t lo = (uintptr_t)dst - e->addr;
    if (rearmed && slot != MW_SLOT_NONE &&
        !changed_outside(mw_page_pool_data(engine.pool, slot), (const unsigned char *)e->addr,
                         lo, lo + len)) {
        mw_page_pool_release_copy(engine.pool, slot);
        page_leave_checking(e, MW_PAGE_CLEAN);
        return 0;
    }
    /* Someone may have written meanwhile (or the page could not be protected again): the
     * next check compares it against the old copy, with our bytes in it (they are no
     * change of the program's). DIRTY pages are writable. */
    if (slot != MW_SLOT_NONE)
        memcpy((unsigned char *)mw_page_pool_data(engine.pool, slot) + lo, src, len);
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    if (rearmed)
        engine.det->unprotect(e->addr, engine.page_size, prot);
    page_leave_checking(e, MW_PAGE_DIRTY);
    mw_fault_path_requeue(e);
    return 0;
}

int mw_engine_fill(void *dst, const void *src, size_t len)
{
    engine_lock();
    int rc = 0;
    if (!engine_live_locked()) {
        memcpy(dst, src, len);
    } else {
        uintptr_t at = (uintptr_t)dst, end = at + len;
        const unsigned char *from = src;
        while (at < end && rc == 0) {
            uintptr_t page = at & ~(uintptr_t)(engine.page_size - 1);
            size_t n = end - at < page + engine.page_size - at ? end - at
                                                               : page + engine.page_size - at;
            struct mw_page *e = mw_region_index_lookup(engine.index, page);
            rc = fill_page_locked(e, (unsigned char *)at, from, n);
            at += n;
            from += n;
        }
    }
    engine_unlock();
    return rc;
}
