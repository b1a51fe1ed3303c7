/* The fault path of the page-protection detectors: what happens when a thread writes to a
 * watched page that detect_mprotect.c or detect_uffd.c protected.
 *
 * DESIGN (ordering rules)
 * - Mechanisms: a page is protected by mprotect (its faults arrive as SIGSEGV, SEGV_ACCERR)
 *   or by userfaultfd write-protection in SIGBUS mode (SIGBUS, BUS_ADRERR); never both.
 *   Each fault is lifted and protected again the way its signal names ("lift" below):
 *   mprotect here, UFFDIO_WRITEPROTECT through the detector's mw_fault_wp_fn. A detector
 *   without a SIGBUS mechanism (detect_mprotect.c) never claims a SIGBUS.
 * - Fault on a CLEAN page: the handler wins CLEAN->FAULTING by CAS, copies the page's old
 *   contents into a pool slot (if the page's account and the pool allow; otherwise no
 *   copy: the check reports "old value unavailable"), records the writer in the slot's
 *   metadata, lifts the page's protection, runs the writer hook (only now: see
 *   run_writer_hook), stores DIRTY, then pushes the page on the dirty list. The faulting
 *   write proceeds when the handler returns.
 * - Fault on FAULTING/DIRTY: another thread got there first; return and let the write
 *   run again (it succeeds once that handler has lifted the protection).
 * - Fault on CHECKING: the checker has re-protected the page and is comparing it; wait
 *   until it is CLEAN (sleeping on a futex on the state word, after setting
 *   MW_PAGE_WAITERS so the checker wakes us; spinning writers would steal the CPU the
 *   checker needs), then handle it as a first write. So the checker
 *   always compares a page no one can modify, and a write racing with a check is in this
 *   check or the next one, never lost.
 * - Fault on REMOVED, or on a page the index no longer knows: the page is being (or was
 *   just) unwatched; the engine unprotects before it forgets, so returning once lets the
 *   write run. A second fault at the same address in a row is not stale: it is chained.
 * - Neighbours: a watched object often shares its page with unrelated, busy data (a small
 *   bytearray in a pymalloc pool next to objects whose reference counts change all the
 *   time). A fault outside the page's watched bytes (struct mw_page.watched, exact even
 *   when several objects share the page) is a neighbour's write: the handler copies the
 *   page, lifts the protection, sets the x86 trap flag and marks it OPEN, so exactly that
 *   instruction runs; the SIGTRAP handler then protects the page again and compares the
 *   watched bytes with the copy. Equal (the usual case): CLEAN again, and the next write
 *   to the watched bytes faults with its own writer. Different: the instruction reached
 *   watched bytes (a wide store that starts before them: the fault address is where a
 *   store starts) or, rarely, another thread wrote them in that window without a trap;
 *   the page becomes DIRTY with the copy as its old contents, writer unknown. A page that
 *   traps MW_BUSY_TRAPS times in an epoch is busy and offered to be left open and
 *   compared instead (count_trap); past MW_NEIGHBOUR_LIMIT single-steps in an epoch, a
 *   page nobody took is left DIRTY (writer unknown), which bounds the cost. Neighbour
 *   writes of memwatch's own work (mw_fault_path_own_work: a check building and
 *   delivering its changes, in the thread that runs it; memwatch's own threads) are always
 *   single-stepped and count only towards making the page busy, not towards the limit:
 *   that work is bounded by the changes it delivers, and counting it left pages DIRTY
 *   with their writer unknown for the program's next write (issue 13).
 * - Sweeps: a write that faults on the page right after two this thread made DIRTY is
 *   taken as a sweep (numpy's `a += 1`, a memcpy into a watched buffer) and the next
 *   SWEEP_AHEAD pages that are CLEAN and wholly watched are taken with it, as if each had
 *   faulted, with one lift for all of them: a 1 MiB array then costs a handful of faults,
 *   not 256. A page taken ahead and not written is found unchanged and protected again by
 *   the check; one another thread writes meanwhile is named after this thread's write.
 * - The dirty list is a Treiber stack: handlers push, the checker takes the whole list
 *   with one exchange. A page is on the list at most once (only the thread that claimed
 *   it CLEAN pushes it, when it becomes DIRTY; the checker requeues only pages it took).
 * - One fault path, one dirty list and one writer hook serve whichever detector the engine
 *   uses: it switches detectors only while no page is indexed or dirty, so a switch only
 *   changes the SIGBUS mechanism.
 *
 * Async-signal-safety: claim(), trap_handler() and what they call use only atomics,
 * memcpy, memcmp, memset, mprotect, the detector's SIGBUS mechanism (one ioctl), futex,
 * sched_yield, clock_gettime and gettid (direct system calls), and the writer hook, which
 * must be async-signal-safe itself. No locks, no allocation, no stdio. errno is saved and
 * restored by the caller (signal_chain.c) and by trap_handler itself. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <linux/futex.h>
#include <unistd.h>

#include "fault_path.h"
#include "signal_chain.h"
#include "xproc_page.h"

/* Written by fault handlers: lives in a mapping of our own (see mw_fault_path_start). */
#define HOT_RING 64
struct hot {
    struct mw_page *_Atomic dirty_head;
    _Atomic(mw_writer_hook) hook;
    _Atomic(void *) hook_ctx;
    _Atomic(mw_hot_hook) hot_hook;       /* NULL: busy pages are never left open */
    _Atomic unsigned hot_queued;         /* pages waiting in ring */
    struct mw_page *_Atomic ring[HOT_RING];
};

/* Written by mw_fault_path_start (engine lock), read by handlers. */
static struct mw_detector_env env;
static struct hot *hot;
static size_t hot_bytes;
static _Atomic(mw_fault_wp_fn) sigbus_wp;

#define X86_TRAP_FLAG 0x100

/* The page this thread opened for one neighbour instruction and the signal of the fault
 * that opened it (how to protect it again), and the trap handler that was installed
 * before ours (for traps that are not ours). */
static __thread struct mw_page *open_page __attribute__((tls_model("initial-exec")));
static __thread int open_sig __attribute__((tls_model("initial-exec")));

static struct sigaction previous_trap_action;
static int trap_installed;

/* Nesting depth of this thread's own work (mw_fault_path_own_work). */
static __thread unsigned own_work __attribute__((tls_model("initial-exec")));

/* mw_fault_path_probe: where this thread goes back to when memory it reads turns out to
 * be unmapped. */
static __thread sigjmp_buf *probe_env __attribute__((tls_model("initial-exec")));

/* The address this thread last let re-execute without owning it (see DESIGN). */
static __thread uintptr_t retried_addr __attribute__((tls_model("initial-exec")));
/* This thread's kernel id, saved by its first fault (a system call less per fault);
 * reset in a forked child, where the thread has a new id. */
static __thread pid_t cached_tid __attribute__((tls_model("initial-exec")));

static void forget_tid_in_child(void)
{
    cached_tid = 0;
}

static void push_dirty(struct mw_page *e)
{
    struct mw_page *h = atomic_load_explicit(&hot->dirty_head, memory_order_relaxed);
    do {
        atomic_store_explicit(&e->next, h, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&hot->dirty_head, &h, e,
                                                    memory_order_release,
                                                    memory_order_relaxed));
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uintptr_t fault_ip(void *ucontext)
{
    const ucontext_t *uc = ucontext;
    if (!uc)
        return 0;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    return 0;
#endif
}

/* Async-signal-safe: the SIGBUS mechanism on one page. The detector cannot have changed
 * to one without it while a page is claimed (see DESIGN); a stale fault on a REMOVED page
 * might see that, and then finds nothing to lift. */
static int sigbus_set(uintptr_t page, int on)
{
    mw_fault_wp_fn wp = atomic_load_explicit(&sigbus_wp, memory_order_acquire);
    return wp ? wp(page, env.page_size, on) : -ENOSYS;
}

/* Async-signal-safe: lets writes to the page through by the mechanism that protected it,
 * which the fault's signal names (see DESIGN). prot is the page's original protection. */
static int lift_range(uintptr_t start, size_t len, int prot, int sig)
{
    if (sig == SIGBUS) {
        mw_fault_wp_fn wp = atomic_load_explicit(&sigbus_wp, memory_order_acquire);
        return wp ? wp(start, len, 0) : -ENOSYS;
    }
    return mprotect((void *)start, len, prot) == 0 ? 0 : -errno;
}

static int lift(uintptr_t page, int prot, int sig)
{
    return lift_range(page, env.page_size, prot, sig);
}

/* Async-signal-safe: the reverse of lift. */
static int protect_again(uintptr_t page, int prot, int sig)
{
    if (sig == SIGBUS)
        return sigbus_set(page, 1);
    return mprotect((void *)page, env.page_size, prot & ~PROT_WRITE) == 0 ? 0 : -errno;
}

/* Async-signal-safe: lets the writer hook describe the write. It runs only once the page
 * is writable again: the hook writes to the writing thread's interpreter state, which may
 * share a page with watched data, even this one (a write to a FAULTING page from its own
 * owner would wait forever). A write of the hook's to another watched page faults into
 * this handler again; that nested fault does not run the hook a second time. */
static __thread int in_writer_hook __attribute__((tls_model("initial-exec")));

static void run_writer_hook(struct mw_slot_meta *m, int neighbour)
{
    mw_writer_hook hook = atomic_load_explicit(&hot->hook, memory_order_acquire);
    if (hook && !in_writer_hook) {
        in_writer_hook = 1;
        hook(&m->writer, atomic_load_explicit(&hot->hook_ctx, memory_order_acquire));
        in_writer_hook = 0;
    }
    /* A neighbour's write opened the page: whoever writes the watched bytes later does so
     * without a fault, so the writer is unknown. (The hook still ran: it also asks for an
     * early check, which protects the page again.) */
    if (neighbour)
        memset(&m->writer, 0, sizeof(m->writer));
}

/* Traps are counted per epoch of about 16 ms (MW_TRAPS_EPOCH_SHIFT) in struct
 * mw_page.traps: epoch in the upper half, count in the lower. A page that reaches
 * MW_BUSY_TRAPS in one epoch is busy — its neighbours write it all the time, or the
 * program writes its watched bytes line after line — and trapping each write costs more
 * than comparing at line boundaries: it is offered to the hot hook, whose owner may leave
 * it open and compare its watched bytes instead (mw_engine_shadow_hot). Until then its
 * neighbour writes keep running single-stepped, up to MW_NEIGHBOUR_LIMIT in an epoch;
 * past that (nobody took the page) the page is left DIRTY, writer unknown, which bounds
 * the cost. A neighbour write of memwatch's own work (own) counts only up to
 * MW_BUSY_TRAPS: it can make a page busy, never use up the program's budget. Returns the
 * count including this write, or 0 for own work on a page already busy. */
static uint32_t count_trap(struct mw_page *e, int own)
{
    uint32_t epoch = (uint32_t)(now_ns() >> MW_TRAPS_EPOCH_SHIFT) & 0xffffu;
    uint32_t old = atomic_load_explicit(&e->traps, memory_order_relaxed), next;
    do {
        uint32_t n = (old >> 16) == epoch ? (old & 0xffffu) : 0;
        if (own && n >= MW_BUSY_TRAPS)
            return 0;
        next = epoch << 16 | (n < 0xffffu ? n + 1 : n);
    } while (!atomic_compare_exchange_weak_explicit(&e->traps, &old, next,
                                                    memory_order_relaxed, memory_order_relaxed));
    return next & 0xffffu;
}

/* Async-signal-safe: offers a busy page to the hot hook (once: when it reaches the budget).
 * The page must be writable by now (DIRTY or OPEN), never FAULTING: a hook that writes to
 * it would wait for itself. */
static void offer_hot(struct mw_page *e)
{
    mw_hot_hook fn = atomic_load_explicit(&hot->hot_hook, memory_order_acquire);
    if (!fn)
        return;
    for (unsigned i = 0; i < HOT_RING; i++) {
        struct mw_page *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&hot->ring[i], &none, e,
                                                    memory_order_release, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&hot->hot_queued, 1, memory_order_release);
            fn();
            return;
        }
    }
}

/* Async-signal-safe: the first write to a CLEAN page this thread now owns (FAULTING).
 * Returns 0 when the protection was lifted, -1 when that failed (state restored). */
static int take_page(struct mw_page *e, uintptr_t page, void *ucontext, int sig, int neighbour)
{
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    struct mw_acct *acct = &env.accts[MW_ACCT_OF(ap)];
    uint32_t slot = mw_page_pool_take_copy(env.pool, MW_ACCT_OF(ap), (const void *)page);
    if (slot != MW_SLOT_NONE) {
        struct mw_slot_meta *m = mw_page_pool_meta(env.pool, slot);
        if (!cached_tid)
            cached_tid = (pid_t)syscall(SYS_gettid);
        m->writer.tid = cached_tid;
        m->writer.fault_ip = fault_ip(ucontext);
        m->fault_ns = now_ns();
    }
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    atomic_fetch_add_explicit(&acct->faults, 1, memory_order_relaxed);

    if (lift(page, MW_PROT_OF(ap), sig) != 0) {
        /* Cannot let the write through (e.g. vm.max_map_count reached): undo. */
        if (slot != MW_SLOT_NONE)
            mw_page_pool_release_copy(env.pool, slot);
        atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
        mw_xproc_release(e);
        mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_CLEAN);
        return -1;
    }
    if (slot != MW_SLOT_NONE)
        run_writer_hook(mw_page_pool_meta(env.pool, slot), neighbour);
    /* DIRTY before the push: whoever collects the page sees it DIRTY. */
    mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_DIRTY);
    push_dirty(e);
    return 0;
}

#define SWEEP_AHEAD 64

/* Async-signal-safe: did this thread make the page at addr DIRTY? */
static int own_dirty(uintptr_t addr)
{
    struct mw_page *e = mw_region_index_lookup(env.index, addr);
    if (!e || e->addr != addr ||
        atomic_load_explicit(&e->state, memory_order_acquire) != MW_PAGE_DIRTY)
        return 0;
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_acquire);
    return slot != MW_SLOT_NONE && mw_page_pool_meta(env.pool, slot)->writer.tid == cached_tid;
}

/* Async-signal-safe: are the two pages before this one this thread's dirty pages (a
 * sweep)? Two, not one: writes scattered over many pages often land next to one of their
 * own, rarely after two in a row. */
static int follows_own_writes(uintptr_t page)
{
    return own_dirty(page - env.page_size) && own_dirty(page - 2 * env.page_size);
}

/* Async-signal-safe: the page at addr, if it is CLEAN, wholly watched and under protection
 * prot, claimed (FAULTING) with a copy of its contents; else NULL. */
static struct mw_page *claim_ahead(uintptr_t addr, uint32_t acct_prot)
{
    struct mw_page *e = mw_region_index_lookup(env.index, addr);
    uint32_t clean = MW_PAGE_CLEAN;
    if (!e || e->addr != addr ||
        atomic_load_explicit(&e->acct_prot, memory_order_acquire) != acct_prot ||
        atomic_load_explicit(&e->watched, memory_order_acquire) !=
            MW_WATCHED_ONE(MW_SPAN(0, env.page_size)) ||
        !atomic_compare_exchange_strong_explicit(&e->state, &clean, MW_PAGE_FAULTING,
                                                 memory_order_acq_rel, memory_order_acquire))
        return NULL;
    /* Recycled after the lookup, or open in another process (xproc_page.h). */
    if (e->addr != addr || !mw_xproc_try(e)) {
        mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_CLEAN);
        return NULL;
    }
    uint32_t slot = mw_page_pool_take_copy(env.pool, MW_ACCT_OF(acct_prot), (const void *)addr);
    if (slot == MW_SLOT_NONE) {   /* no room for its old value: let it fault on its own */
        mw_xproc_release(e);
        mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_CLEAN);
        return NULL;
    }
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    return e;
}

/* Async-signal-safe: after the sweep's write took page (its slot's meta is the writer),
 * the pages after it, with one lift (see DESIGN: sweeps). */
static void take_ahead(struct mw_page *e, uintptr_t page, int sig)
{
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_relaxed);
    if (slot == MW_SLOT_NONE)
        return;
    struct mw_page *ahead[SWEEP_AHEAD];
    size_t n = 0;
    while (n < SWEEP_AHEAD &&
           (ahead[n] = claim_ahead(page + (n + 1) * env.page_size, ap)) != NULL)
        n++;
    if (n == 0)
        return;
    if (lift_range(page + env.page_size, n * env.page_size, MW_PROT_OF(ap), sig) != 0) {
        for (size_t i = 0; i < n; i++) {
            mw_page_pool_release_copy(env.pool, atomic_load_explicit(&ahead[i]->slot,
                                                                     memory_order_relaxed));
            atomic_store_explicit(&ahead[i]->slot, MW_SLOT_NONE, memory_order_relaxed);
            mw_xproc_release(ahead[i]);
            mw_page_set_state(ahead[i], MW_PAGE_FAULTING, MW_PAGE_CLEAN);
        }
        return;
    }
    const struct mw_slot_meta *m = mw_page_pool_meta(env.pool, slot);
    for (size_t i = 0; i < n; i++) {
        struct mw_slot_meta *am = mw_page_pool_meta(env.pool, atomic_load_explicit(
                                                                  &ahead[i]->slot,
                                                                  memory_order_relaxed));
        am->writer = m->writer;
        am->fault_ns = m->fault_ns;
        mw_page_set_state(ahead[i], MW_PAGE_FAULTING, MW_PAGE_DIRTY);
        push_dirty(ahead[i]);
    }
}

/* Async-signal-safe: the FAULTING page e, whose copy is in slot, made OPEN and writable.
 * 0, or -1 when its protection cannot be lifted: the copy is let go and e goes back to
 * state back. */
static int open_with_copy(struct mw_page *e, uintptr_t page, uint32_t ap, uint32_t slot,
                          int sig, uint32_t back)
{
    mw_page_pool_meta(env.pool, slot)->fault_ns = now_ns();
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_OPEN);
    if (lift(page, MW_PROT_OF(ap), sig) == 0)
        return 0;
    atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
    mw_page_pool_release_copy(env.pool, slot);
    mw_page_set_state(e, MW_PAGE_OPEN, back);
    return -1;
}

/* Async-signal-safe: lets one neighbour instruction write the FAULTING page e (see DESIGN).
 * Returns 0 when the page is open, -1 when it could not be (the caller takes the page). */
static int open_for_neighbour(struct mw_page *e, uintptr_t page, void *ucontext, int sig)
{
#if defined(__x86_64__)
    ucontext_t *uc = ucontext;
    if (!trap_installed || !uc || open_page)
        return -1;
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    uint32_t slot = mw_page_pool_take_copy(env.pool, MW_ACCT_OF(ap), (const void *)page);
    if (slot == MW_SLOT_NONE)
        return -1;
    if (open_with_copy(e, page, ap, slot, sig, MW_PAGE_FAULTING) != 0)
        return -1;
    open_page = e;
    open_sig = sig;

    uc->uc_mcontext.gregs[REG_EFL] |= X86_TRAP_FLAG;
    return 0;
#else
    (void)e;
    (void)page;
    (void)ucontext;
    (void)sig;
    return -1;
#endif
}

struct compare_ctx {
    const unsigned char *copy, *page;
};

static int span_differs(uintptr_t lo, uintptr_t hi, void *vctx)
{
    const struct compare_ctx *c = vctx;
    return memcmp(c->copy + lo, c->page + lo, hi - lo) != 0;
}

/* Async-signal-safe: the neighbour instruction ran; close the page again (see DESIGN).
 * sig is that of the fault that opened it. */
static void close_neighbour(struct mw_page *e, int sig)
{
    uintptr_t page = e->addr;
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_relaxed);
    struct compare_ctx cmp = { mw_page_pool_data(env.pool, slot), (const unsigned char *)page };
    /* Protect first, then compare: a write racing with us faults and waits for OPEN to end. */
    int protected_again = protect_again(page, MW_PROT_OF(ap), sig) == 0;
    if (protected_again && !mw_page_each_span(e, span_differs, &cmp)) {
        atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
        mw_page_pool_release_copy(env.pool, slot);
        mw_xproc_release(e);
        mw_page_set_state(e, MW_PAGE_OPEN, MW_PAGE_CLEAN);
        return;
    }
    /* Watched bytes changed while the page was open: another thread wrote them in that
     * window without a trap, or the instruction itself reached them (a wide store that
     * starts before them: the fault address is where a store starts). Which, nothing here
     * can tell, so the writer is unknown rather than perhaps the wrong thread. The page
     * stays writable and DIRTY, with the copy as its old contents (or it cannot be
     * protected). */
    if (protected_again)
        lift(page, MW_PROT_OF(ap), sig);
    mw_page_set_state(e, MW_PAGE_OPEN, MW_PAGE_DIRTY);
    push_dirty(e);
}

/* The page of a CLEAN entry e, claimed (FAULTING): copied and opened for memwatch's own
 * write, which then runs, and closed again as after a neighbour's write. */
static int write_claimed(struct mw_page *e, uintptr_t page, int sig, void *dst,
                         const void *src, size_t len)
{
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    uint32_t slot = mw_page_pool_take_copy(env.pool, MW_ACCT_OF(ap), (const void *)page);
    if (slot == MW_SLOT_NONE) {
        /* No copy to compare with: take the page as a first write would (DIRTY until the
         * next check, writer unknown). */
        if (take_page(e, page, NULL, sig, 1) != 0)
            return -1;
        memcpy(dst, src, len);
        return 0;
    }
    if (open_with_copy(e, page, ap, slot, sig, MW_PAGE_CLEAN) != 0)
        return -1;
    memcpy(dst, src, len);
    close_neighbour(e, sig);
    return 0;
}

int mw_fault_path_write(void *dst, const void *src, size_t len)
{
    /* The mechanism that protects pages now: a fault of it would arrive as this signal. */
    int sig = atomic_load_explicit(&sigbus_wp, memory_order_acquire) ? SIGBUS : SIGSEGV;
    uintptr_t page = (uintptr_t)dst & ~(uintptr_t)(env.page_size - 1);
    int rc = 0;
    if (!env.index) {
        memcpy(dst, src, len);
        return 0;
    }
    mw_region_index_enter(env.index);
    for (;;) {
        struct mw_page *e = mw_region_index_lookup(env.index, page);
        uint32_t s = e ? atomic_load_explicit(&e->state, memory_order_acquire)
                       : MW_PAGE_UNTRACKED;
        if (s == MW_PAGE_CLEAN) {
            if (!atomic_compare_exchange_strong_explicit(&e->state, &s, MW_PAGE_FAULTING,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;
            if (e->addr != page) {
                mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_CLEAN);
                continue;
            }
            rc = write_claimed(e, page, sig, dst, src, len);
            break;
        }
        if (s == MW_PAGE_FAULTING || s == MW_PAGE_OPEN) {
            sched_yield();   /* a handler in another thread finishes without any lock */
            continue;
        }
        memcpy(dst, src, len);   /* writable already (DIRTY, SHADOWED), or not protected */
        break;
    }
    mw_region_index_leave(env.index);
    return rc;
}

/* The SIGTRAP handler: ours when this thread has a page open, otherwise the previous
 * handler's. Async-signal-safe; saves and restores errno. */
static void trap_handler(int sig, siginfo_t *info, void *ucontext)
{
    int saved_errno = errno;
    struct mw_page *e = open_page;
    if (e) {
        open_page = NULL;
#if defined(__x86_64__)
        ((ucontext_t *)ucontext)->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)X86_TRAP_FLAG;
#endif
        close_neighbour(e, open_sig);
        errno = saved_errno;
        return;
    }
    /* Not ours: behave as the handler installed before us would. */
    struct sigaction prev = previous_trap_action;
    if (prev.sa_flags & SA_SIGINFO) {
        prev.sa_sigaction(sig, info, ucontext);
    } else if (prev.sa_handler != SIG_IGN && prev.sa_handler != SIG_DFL) {
        prev.sa_handler(sig);
    } else if (prev.sa_handler == SIG_DFL) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        mw_signal_chain_real_sigaction(SIGTRAP, &dfl, NULL);
        raise(SIGTRAP);
    }
    errno = saved_errno;
}

static void install_trap_handler(void)
{
#if defined(__x86_64__)
    if (trap_installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = trap_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (mw_signal_chain_real_sigaction(SIGTRAP, &sa, &previous_trap_action) == 0)
        trap_installed = 1;
#endif
}

/* The fault path, called by signal_chain.c's handler. Async-signal-safe. Returns 1 when
 * the fault was memwatch's (or stale) and the instruction should run again, 0 to chain
 * it. */
static int claim(int sig, siginfo_t *info, void *ucontext)
{
    if (probe_env && info && (sig == SIGBUS || (sig == SIGSEGV && info->si_code == SEGV_MAPERR))) {
        /* A read of mw_fault_path_probe's found no memory: back out of the handler, with
         * the fault signals unblocked again (sigsetjmp did not save the mask: that costs
         * a system call on every probe). */
        sigjmp_buf *back = probe_env;
        probe_env = NULL;
        sigset_t faults;
        sigemptyset(&faults);
        sigaddset(&faults, SIGSEGV);
        sigaddset(&faults, SIGBUS);
        syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &faults, NULL, (size_t)(_NSIG / 8));
        siglongjmp(*back, 1);
    }
    if (!info || !env.index)
        return 0;
    if (!(sig == SIGSEGV && info->si_code == SEGV_ACCERR) &&
        !(sig == SIGBUS && info->si_code == BUS_ADRERR &&
          atomic_load_explicit(&sigbus_wp, memory_order_acquire)))
        return 0;
    uintptr_t addr = (uintptr_t)info->si_addr;
    uintptr_t page = addr & ~(uintptr_t)(env.page_size - 1);
    int result = -1;     /* -1: not ours, 1: handled or retry */

    mw_region_index_enter(env.index);
    for (;;) {
        struct mw_page *e = mw_region_index_lookup(env.index, page);
        if (!e)
            break;
        uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (s == MW_PAGE_CLEAN) {
            if (!atomic_compare_exchange_strong_explicit(&e->state, &s, MW_PAGE_FAULTING,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;
            if (e->addr != page) {
                /* The entry was recycled for another page after our lookup. */
                mw_page_set_state(e, MW_PAGE_FAULTING, MW_PAGE_CLEAN);
                continue;
            }
            /* Memory shared with other processes: one of them at a time has it open. */
            mw_xproc_acquire(e);
            int neighbour = !mw_page_watches(e, addr - page);
            uint32_t traps = count_trap(e, neighbour && own_work);
            if (neighbour && traps <= MW_NEIGHBOUR_LIMIT &&
                open_for_neighbour(e, page, ucontext, sig) == 0) {
                result = 1;
            } else {
                int sweep = !neighbour && page >= 2 * env.page_size && follows_own_writes(page);
                result = take_page(e, page, ucontext, sig, neighbour) == 0 ? 1 : -1;
                if (result == 1 && sweep)
                    take_ahead(e, page, sig);
            }
            /* Offered only now that the page is writable: the hook writes to the thread's
             * interpreter state, which may share this very page (as run_writer_hook). */
            if (traps == MW_BUSY_TRAPS && !mw_xproc_shared(e))
                offer_hot(e);   /* not a shared page: left open, it would keep others waiting */
            break;
        }
        if (MW_PAGE_STATE(s) == MW_PAGE_CHECKING) {
            if (!(s & MW_PAGE_WAITERS) &&
                !atomic_compare_exchange_strong_explicit(&e->state, &s, s | MW_PAGE_WAITERS,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;
            /* Sleeps while the state is still CHECKING|WAITERS; the timeout only bounds
             * the wait should a wake ever be missed. */
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            syscall(SYS_futex, &e->state, FUTEX_WAIT_PRIVATE,
                    MW_PAGE_CHECKING | MW_PAGE_WAITERS, &ts, NULL, 0);
            continue;
        }
        if (s == MW_PAGE_REMOVED && e->addr == page) {
            /* Being unwatched: its protection is about to be lifted anyway. Lift it now,
             * because the thread unwatching it may be the one writing (its own allocator
             * memory can share the page) and would otherwise wait for itself. */
            uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
            lift(page, MW_PROT_OF(ap), sig);
            result = 1;
            break;
        }
        if (s == MW_PAGE_FAULTING || s == MW_PAGE_REMOVED || s == MW_PAGE_OPEN) {
            sched_yield();
            result = 1;
            break;
        }
        if (s == MW_PAGE_DIRTY || s == MW_PAGE_SHADOWED) {
            result = 1;      /* unprotected already: run the write again */
            break;
        }
        break;               /* UNTRACKED: we never protected it */
    }
    mw_region_index_leave(env.index);

    if (result == 1) {
        retried_addr = 0;
        return 1;
    }
    /* Not a page we own. Let it run once more in case the page was unwatched between
     * the fault and our lookup; the second time in a row, it is real. */
    if (retried_addr != addr) {
        retried_addr = addr;
        return 1;
    }
    retried_addr = 0;
    return 0;
}

void mw_fault_path_own_work(int on)
{
    if (on)
        own_work++;
    else if (own_work)
        own_work--;
}

int mw_fault_path_probe(void (*fn)(void *ctx), void *ctx)
{
    sigjmp_buf back;
    if (sigsetjmp(back, 0) != 0)
        return -EFAULT;
    probe_env = &back;
    fn(ctx);
    probe_env = NULL;
    return 0;
}

int mw_fault_path_start(const struct mw_detector_env *e, mw_fault_wp_fn wp)
{
    if (!hot) {
        pthread_atfork(NULL, NULL, forget_tid_in_child);
        hot_bytes = e->page_size;
        void *m = mmap(NULL, hot_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return -errno;
        hot = m;
    }
    /* A handler may be reading env (a stale fault) while the engine switches detectors;
     * the engine's env never changes, so it is written only when it differs. */
    if (memcmp(&env, e, sizeof(env)) != 0)
        env = *e;
    atomic_store_explicit(&sigbus_wp, wp, memory_order_release);
    int rc = mw_signal_chain_install(claim);
    if (rc == 0)
        install_trap_handler();   /* after the chain resolved the real sigaction */
    return rc;
}

struct mw_page *mw_fault_path_collect(void)
{
    return atomic_exchange_explicit(&hot->dirty_head, NULL, memory_order_acquire);
}

void mw_fault_path_requeue(struct mw_page *e)
{
    push_dirty(e);
}

int mw_fault_path_has_dirty(void)
{
    return hot && atomic_load_explicit(&hot->dirty_head, memory_order_relaxed) != NULL;
}

void mw_fault_path_set_hot_hook(mw_hot_hook hook)
{
    atomic_store_explicit(&hot->hot_hook, hook, memory_order_release);
}

size_t mw_fault_path_take_hot(struct mw_page **out, size_t max)
{
    size_t n = 0;
    if (!hot || !atomic_load_explicit(&hot->hot_queued, memory_order_acquire))
        return 0;
    for (unsigned i = 0; i < HOT_RING && n < max; i++) {
        struct mw_page *e = atomic_exchange_explicit(&hot->ring[i], NULL, memory_order_acquire);
        if (e) {
            out[n++] = e;
            atomic_fetch_sub_explicit(&hot->hot_queued, 1, memory_order_relaxed);
        }
    }
    return n;
}

void mw_fault_path_set_writer_hook(mw_writer_hook hook, void *ctx)
{
    atomic_store_explicit(&hot->hook, NULL, memory_order_release);
    atomic_store_explicit(&hot->hook_ctx, ctx, memory_order_release);
    atomic_store_explicit(&hot->hook, hook, memory_order_release);
}

int mw_fault_path_overlaps(uintptr_t addr, size_t len)
{
    uintptr_t h = (uintptr_t)hot;
    return hot && addr < h + hot_bytes && addr + len > h;
}

void mw_fault_path_detach(void)
{
    if (!hot)
        return;
    atomic_store(&hot->dirty_head, NULL);
    atomic_store(&hot->hot_hook, NULL);
    for (unsigned i = 0; i < HOT_RING; i++)
        atomic_store(&hot->ring[i], NULL);
    atomic_store(&hot->hot_queued, 0);
}
