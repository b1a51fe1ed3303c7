/* Write detection with userfaultfd write-protection, in SIGBUS mode.
 *
 * DESIGN (why this mode; the measurements are in notes/uffd-docs.md)
 * - Write-protection is a bit in each page-table entry (UFFDIO_WRITEPROTECT), so
 *   protecting scattered pages never splits a VMA: a million small objects on 20,000
 *   scattered pages stay far below vm.max_map_count, where per-page mprotect() fails
 *   after about 32,000 islands.
 * - UFFD_FEATURE_SIGBUS makes a write to a protected page raise SIGBUS in the writing
 *   thread itself (3.9 us per first write, against 3.4 us for mprotect + SIGSEGV). The
 *   handler runs before the write lands, so, exactly as with mprotect, old contents are
 *   copied lazily (memory grows with the pages written, not with the bytes watched) and
 *   the writer is known (thread, instruction, Python line), which the default
 *   --check=line needs. The other modes lose one of these: WP_ASYNC (0.8 us) tells nobody,
 *   so old contents must be copied for every watched page at watch time and no writer is
 *   known; a handler thread (sync mode, 13-15 us) cannot read the writer's registers.
 * - Kernel writes (read() into a protected page) fail with EFAULT in this mode, as with
 *   mprotect: kwrite_interpose.c prepares the buffers of read/readv/recv... before the
 *   call (see mw_engine_kwrite_begin), which makes them succeed under both mechanisms.
 * - Registration: UFFDIO_REGISTER of a sub-range splits the VMA, so a range is registered
 *   as the whole VMAs that cover it, lazily: protect() tries UFFDIO_WRITEPROTECT first and
 *   registers only when the kernel answers ENOENT (not registered: a new mapping, or one
 *   that was unmapped and mapped again). No cache that munmap could make stale.
 *   UFFD_FEATURE_WP_UNPOPULATED makes protection of never-touched pages stick (a marker
 *   in the page table), so a calloc'd buffer whose pages the kernel has not populated yet
 *   still faults on its first write.
 * - Mappings userfaultfd cannot write-protect (file-backed MAP_SHARED, for instance) fall
 *   back to mprotect, per range: a page is protected by exactly one mechanism, the one
 *   its VMA allows, so the fault path knows which by the signal (SIGBUS: uffd, SIGSEGV:
 *   mprotect) and lifts the protection the same way.
 * - Transparent huge pages do not widen tracking here: write-protecting or lifting 4 KiB
 *   inside a huge page splits it in the kernel, so copies and dirty pages stay 4 KiB.
 *   (They widen WP_ASYNC's written ranges, which is why Wine sets MADV_NOHUGEPAGE.)
 * - The page state machine and its ordering rules are those of detect_mprotect.c: CLEAN
 *   ->FAULTING by CAS, copy, lift, DIRTY, push on a Treiber stack; a fault on CHECKING
 *   sleeps on the state word until the checker is done; REMOVED/stale faults retry once.
 * - Neighbours (a small watched object shares its page with busy, unrelated data): as in
 *   detect_mprotect.c, a fault outside the page's watched bytes (mw_page.span) copies the
 *   page, lifts the protection, sets the x86 trap flag and marks the page OPEN; after that
 *   one instruction the SIGTRAP handler protects the page again and compares the watched
 *   bytes: equal, the page is CLEAN again and the next write to the watched bytes faults
 *   with its own writer (exact attribution); different (another thread wrote them in that
 *   window), DIRTY with writer unknown. After MW_UFFD_NEIGHBOUR_TRAPS such writes between
 *   two checks the page is left DIRTY (writer unknown), which bounds the cost of a hot
 *   page to that many traps per check. The code is this file's own (not shared with
 *   detect_mprotect.c) so that each mechanism's fault path can be read on its own.
 *
 * Async-signal-safety: uffd_claim() and what it calls use only atomics, memcpy, ioctl,
 * mprotect, futex, sched_yield, clock_gettime and gettid, plus the writer hook, which
 * must be async-signal-safe itself. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>

#include "detector.h"
#include "signal_chain.h"

/* Debian 12's kernel headers (6.1) predate these; the kernel is asked at run time. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/* PROCMAP_QUERY (Linux 6.11): the VMA covering an address, one ioctl on /proc/self/maps. */
struct uffd_procmap_query {
    uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
        vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define UFFD_PROCMAP_QUERY _IOWR('f', 17, struct uffd_procmap_query)

/* Written by fault handlers: lives in a mapping of our own (see uffd_init). */
struct hot {
    struct mw_page *_Atomic dirty_head;
    _Atomic(mw_writer_hook) hook;
    _Atomic(void *) hook_ctx;
};

static struct mw_detector_env env;
static struct hot *hot;
static size_t hot_bytes;
static int uffd = -1;
static int maps_fd = -1;
static uint64_t features;          /* what UFFDIO_API granted */
static int availability = -1;      /* -1 not probed yet */

#define MW_UFFD_NEIGHBOUR_TRAPS MW_NEIGHBOUR_BUDGET
#define MW_UFFD_MAX_STORE 64      /* a store may start this far before the bytes it reaches */
#define X86_TRAP_FLAG 0x100

static __thread struct mw_page *open_page __attribute__((tls_model("initial-exec")));
static __thread int open_sig __attribute__((tls_model("initial-exec")));
static struct sigaction previous_trap_action;
static int trap_installed;

static __thread uintptr_t retried_addr __attribute__((tls_model("initial-exec")));
static __thread pid_t cached_tid __attribute__((tls_model("initial-exec")));

static void forget_tid_in_child(void)
{
    cached_tid = 0;
}

/* A userfaultfd with write-protection in SIGBUS mode, or -errno. User-mode-only first:
 * it works without privileges where vm.unprivileged_userfaultfd is 0 (the default), and
 * kernel-mode faults fail with EFAULT in SIGBUS mode anyway. */
static int open_uffd(uint64_t *granted)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0 && errno == EINVAL)
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    const uint64_t need = UFFD_FEATURE_SIGBUS | UFFD_FEATURE_WP_UNPOPULATED;
    uint64_t want[] = { need | UFFD_FEATURE_WP_HUGETLBFS_SHMEM, need };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct uffdio_api api = { .api = UFFD_API, .features = want[i] };
        if (ioctl(fd, UFFDIO_API, &api) == 0) {
            if ((api.features & need) != need ||
                !(api.ioctls & ((uint64_t)1 << _UFFDIO_REGISTER))) {
                close(fd);
                return -ENOSYS;
            }
            *granted = api.features;
            return fd;
        }
        if (errno != EINVAL)
            break;
        /* UFFDIO_API may be called once per descriptor: a refused feature needs a new one. */
        close(fd);
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (fd < 0 && errno == EINVAL)
            fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return -errno;
    }
    int err = errno;
    close(fd);
    return -(err ? err : ENOSYS);
}

/* Proves on a scratch page that protection of an unpopulated page sticks and a write to
 * it raises SIGBUS-mode faults the kernel resolves by our lifting. (Only the ioctls are
 * exercised: no signal is raised here.) */
static int probe(void)
{
    const char *off = getenv("MEMWATCH_DISABLE_UFFD");
    if (off && *off && strcmp(off, "0") != 0)
        return 0;
    uint64_t granted = 0;
    int fd = open_uffd(&granted);
    if (fd < 0)
        return 0;
    long ps = sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok = 0;
    if (m != MAP_FAILED) {
        struct uffdio_register reg = {
            .range = { (uintptr_t)m, (uint64_t)ps }, .mode = UFFDIO_REGISTER_MODE_WP,
        };
        struct uffdio_writeprotect wp = {
            .range = { (uintptr_t)m, (uint64_t)ps }, .mode = UFFDIO_WRITEPROTECT_MODE_WP,
        };
        struct uffdio_writeprotect un = { .range = { (uintptr_t)m, (uint64_t)ps }, .mode = 0 };
        ok = ioctl(fd, UFFDIO_REGISTER, &reg) == 0 &&
             (reg.ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT)) &&
             ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 && ioctl(fd, UFFDIO_WRITEPROTECT, &un) == 0;
        munmap(m, (size_t)ps);
    }
    close(fd);
    return ok;
}

static int uffd_available(void)
{
    if (availability < 0)
        availability = probe();
    return availability;
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

/* Async-signal-safe: one ioctl. 0 or -errno (ENOENT: the range is not registered). */
static int wp_range(uintptr_t start, size_t len, int on)
{
    struct uffdio_writeprotect wp = {
        .range = { start, len }, .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -errno;
}

/* Async-signal-safe: lets writes to the page through by the mechanism that protected it
 * (sig tells which: SIGBUS uffd, SIGSEGV mprotect). */
static int lift(uintptr_t page, int prot, int sig)
{
    if (sig == SIGBUS)
        return wp_range(page, env.page_size, 0);
    return mprotect((void *)page, env.page_size, prot) == 0 ? 0 : -errno;
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

/* Async-signal-safe: the first write to a CLEAN page this thread now owns (FAULTING).
 * Returns 0 when the page was opened, -1 when that failed (state restored). */
static int take_page(struct mw_page *e, uintptr_t page, void *ucontext, int sig, int neighbour)
{
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    struct mw_acct *acct = &env.accts[MW_ACCT_OF(ap)];
    uint32_t slot = MW_SLOT_NONE;

    if (mw_acct_try_charge(acct, env.copy_cost)) {
        slot = mw_page_pool_alloc(env.pool);
        if (slot == MW_SLOT_NONE)
            mw_acct_uncharge(acct, env.copy_cost);
    }
    if (slot != MW_SLOT_NONE) {
        memcpy(mw_page_pool_data(env.pool, slot), (const void *)page, env.page_size);
        struct mw_slot_meta *m = mw_page_pool_meta(env.pool, slot);
        memset(&m->writer, 0, sizeof(m->writer));
        if (!cached_tid)
            cached_tid = (pid_t)syscall(SYS_gettid);
        m->writer.tid = cached_tid;
        m->writer.fault_ip = fault_ip(ucontext);
        m->fault_ns = now_ns();
        m->acct = MW_ACCT_OF(ap);
        atomic_fetch_add_explicit(&acct->copies, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    atomic_fetch_add_explicit(&acct->faults, 1, memory_order_relaxed);

    if (lift(page, MW_PROT_OF(ap), sig) != 0) {
        if (slot != MW_SLOT_NONE) {
            atomic_fetch_sub_explicit(&acct->copies, 1, memory_order_relaxed);
            mw_page_pool_free(env.pool, slot);
            mw_acct_uncharge(acct, env.copy_cost);
        }
        atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
        atomic_store_explicit(&e->state, MW_PAGE_CLEAN, memory_order_release);
        return -1;
    }
    if (slot != MW_SLOT_NONE)
        run_writer_hook(mw_page_pool_meta(env.pool, slot), neighbour);
    /* DIRTY before the push: whoever collects the page sees it DIRTY. */
    atomic_store_explicit(&e->state, MW_PAGE_DIRTY, memory_order_release);
    push_dirty(e);
    return 0;
}

/* Async-signal-safe: opens the FAULTING page e for one neighbour instruction (DESIGN).
 * 0 when open, -1 when it could not be (the caller takes the page instead). */
static int open_for_neighbour(struct mw_page *e, uintptr_t page, void *ucontext, int sig)
{
#if defined(__x86_64__)
    ucontext_t *uc = ucontext;
    if (!trap_installed || !uc || open_page)
        return -1;
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    struct mw_acct *acct = &env.accts[MW_ACCT_OF(ap)];
    if (!mw_acct_try_charge(acct, env.copy_cost))
        return -1;
    uint32_t slot = mw_page_pool_alloc(env.pool);
    if (slot == MW_SLOT_NONE) {
        mw_acct_uncharge(acct, env.copy_cost);
        return -1;
    }
    memcpy(mw_page_pool_data(env.pool, slot), (const void *)page, env.page_size);
    struct mw_slot_meta *m = mw_page_pool_meta(env.pool, slot);
    memset(&m->writer, 0, sizeof(m->writer));
    m->fault_ns = now_ns();
    m->acct = MW_ACCT_OF(ap);
    atomic_fetch_add_explicit(&acct->copies, 1, memory_order_relaxed);
    atomic_store_explicit(&e->slot, slot, memory_order_relaxed);
    atomic_store_explicit(&e->state, MW_PAGE_OPEN, memory_order_release);
    if (lift(page, MW_PROT_OF(ap), sig) != 0) {
        atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
        atomic_fetch_sub_explicit(&acct->copies, 1, memory_order_relaxed);
        mw_page_pool_free(env.pool, slot);
        mw_acct_uncharge(acct, env.copy_cost);
        atomic_store_explicit(&e->state, MW_PAGE_FAULTING, memory_order_release);
        return -1;
    }
    atomic_fetch_add_explicit(&e->traps, 1, memory_order_relaxed);
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

/* Async-signal-safe: the neighbour instruction ran; protect the page again, then compare
 * its watched bytes with the copy (a write racing with us faults and waits for OPEN). */
static void close_neighbour(struct mw_page *e, int sig)
{
    uintptr_t page = e->addr;
    uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_relaxed);
    const unsigned char *copy = mw_page_pool_data(env.pool, slot);
    uint32_t span = atomic_load_explicit(&e->span, memory_order_acquire);
    uintptr_t lo = MW_SPAN_LO(span), hi = MW_SPAN_HI(span);
    int again = sig == SIGBUS
                    ? wp_range(page, env.page_size, 1) == 0
                    : mprotect((void *)page, env.page_size, MW_PROT_OF(ap) & ~PROT_WRITE) == 0;
    if (again && (hi <= lo || memcmp(copy + lo, (const void *)(page + lo), hi - lo) == 0)) {
        struct mw_acct *acct = &env.accts[MW_ACCT_OF(ap)];
        atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
        atomic_fetch_sub_explicit(&acct->copies, 1, memory_order_relaxed);
        mw_page_pool_free(env.pool, slot);
        mw_acct_uncharge(acct, env.copy_cost);
        atomic_store_explicit(&e->state, MW_PAGE_CLEAN, memory_order_release);
        return;
    }
    if (again)
        lift(page, MW_PROT_OF(ap), sig);
    atomic_store_explicit(&e->state, MW_PAGE_DIRTY, memory_order_release);
    push_dirty(e);
}

/* SIGTRAP: ours when this thread has a page open; otherwise the previous handler's. */
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

/* The fault path. Async-signal-safe. 1: ours (or stale), run the instruction again;
 * 0: chain it. */
static int uffd_claim(int sig, siginfo_t *info, void *ucontext)
{
    if (!info || !env.index)
        return 0;
    if (!(sig == SIGBUS && info->si_code == BUS_ADRERR) &&
        !(sig == SIGSEGV && info->si_code == SEGV_ACCERR))
        return 0;
    uintptr_t addr = (uintptr_t)info->si_addr;
    uintptr_t page = addr & ~(uintptr_t)(env.page_size - 1);
    int result = -1;

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
                atomic_store_explicit(&e->state, MW_PAGE_CLEAN, memory_order_release);
                continue;
            }
            uint32_t span = atomic_load_explicit(&e->span, memory_order_acquire);
            uintptr_t off = addr - page;
            int neighbour = off + MW_UFFD_MAX_STORE <= MW_SPAN_LO(span) || off >= MW_SPAN_HI(span);
            if (neighbour &&
                atomic_load_explicit(&e->traps, memory_order_relaxed) < MW_UFFD_NEIGHBOUR_TRAPS &&
                open_for_neighbour(e, page, ucontext, sig) == 0) {
                result = 1;
                break;
            }
            result = take_page(e, page, ucontext, sig, neighbour) == 0 ? 1 : -1;
            break;
        }
        if (MW_PAGE_STATE(s) == MW_PAGE_CHECKING) {
            if (!(s & MW_PAGE_WAITERS) &&
                !atomic_compare_exchange_strong_explicit(&e->state, &s, s | MW_PAGE_WAITERS,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            syscall(SYS_futex, &e->state, FUTEX_WAIT_PRIVATE,
                    MW_PAGE_CHECKING | MW_PAGE_WAITERS, &ts, NULL, 0);
            continue;
        }
        if (s == MW_PAGE_REMOVED && e->addr == page) {
            /* Being unwatched: lift now (the unwatching thread may be the writer). */
            uint32_t ap = atomic_load_explicit(&e->acct_prot, memory_order_acquire);
            lift(page, MW_PROT_OF(ap), sig);
            result = 1;
            break;
        }
        if (s == MW_PAGE_FAULTING || s == MW_PAGE_REMOVED || MW_PAGE_STATE(s) > MW_PAGE_REMOVED) {
            sched_yield();
            result = 1;
            break;
        }
        if (s == MW_PAGE_DIRTY) {
            result = 1;
            break;
        }
        break;               /* UNTRACKED: we never protected it */
    }
    mw_region_index_leave(env.index);

    if (result == 1) {
        retried_addr = 0;
        return 1;
    }
    if (retried_addr != addr) {
        retried_addr = addr;
        return 1;
    }
    retried_addr = 0;
    return 0;
}

static int uffd_init(const struct mw_detector_env *e)
{
    if (!uffd_available())
        return -ENOSYS;
    if (!hot) {
        pthread_atfork(NULL, NULL, forget_tid_in_child);
        hot_bytes = e->page_size;
        void *m = mmap(NULL, hot_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return -errno;
        hot = m;
    }
    if (uffd < 0) {
        int fd = open_uffd(&features);
        if (fd < 0)
            return fd;
        uffd = fd;
    }
    if (maps_fd < 0)
        maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    env = *e;
    install_trap_handler();
    return mw_signal_chain_install(uffd_claim);
}

/* The VMA covering addr: [*start, *end). 0 or -errno. */
static int vma_of(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
    if (maps_fd >= 0) {
        struct uffd_procmap_query q;
        memset(&q, 0, sizeof(q));
        q.size = sizeof(q);
        q.query_addr = addr;
        if (ioctl(maps_fd, UFFD_PROCMAP_QUERY, &q) == 0) {
            *start = q.vma_start;
            *end = q.vma_end;
            return 0;
        }
        if (errno == ENOENT)
            return -ENOENT;
    }
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -errno;
    char line[512];
    int rc = -ENOENT;
    while (fgets(line, sizeof(line), f)) {
        unsigned long s, en;
        if (sscanf(line, "%lx-%lx", &s, &en) != 2)
            continue;
        size_t l = strlen(line);
        while (l > 0 && line[l - 1] != '\n' && fgets(line, sizeof(line), f))
            l = strlen(line);
        if (addr >= s && addr < en) {
            *start = s;
            *end = en;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* Registers the whole VMAs covering [start, start+len) for write-protection (whole VMAs:
 * a sub-range would split them). 0, or -errno when one cannot be registered. */
static int register_vmas(uintptr_t start, size_t len)
{
    uintptr_t a = start, end = start + len;
    while (a < end) {
        uintptr_t vs, ve;
        int rc = vma_of(a, &vs, &ve);
        if (rc)
            return rc;
        struct uffdio_register reg = { .range = { vs, ve - vs }, .mode = UFFDIO_REGISTER_MODE_WP };
        if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
            return -errno;
        a = ve;
    }
    return 0;
}

/* Protects with uffd where the VMA allows it, else mprotect; page by page only when a
 * run straddles mappings of both kinds. */
static int uffd_protect(uintptr_t start, size_t len, int prot)
{
    int rc = wp_range(start, len, 1);
    if (rc == -ENOENT && register_vmas(start, len) == 0)
        rc = wp_range(start, len, 1);
    if (rc == 0)
        return 0;
    if (rc != -ENOENT && rc != -EINVAL)
        return rc;
    /* Partly or wholly unregistrable: find each page's mechanism. */
    for (uintptr_t p = start; p < start + len; p += env.page_size) {
        if (wp_range(p, env.page_size, 1) == 0)
            continue;
        if (mprotect((void *)p, env.page_size, prot & ~PROT_WRITE) != 0)
            return -errno;
    }
    return 0;
}

static int uffd_rearm(uintptr_t start, size_t len, int prot)
{
    int rc = wp_range(start, len, 1);
    if (rc == 0)
        return 0;
    if (rc != -ENOENT && rc != -EINVAL)
        return rc;
    for (uintptr_t p = start; p < start + len; p += env.page_size) {
        if (wp_range(p, env.page_size, 1) == 0)
            continue;
        if (mprotect((void *)p, env.page_size, prot & ~PROT_WRITE) != 0)
            return -errno;
    }
    return 0;
}

static int uffd_unprotect(uintptr_t start, size_t len, int prot)
{
    int rc = wp_range(start, len, 0);
    if (rc == 0)
        return 0;
    if (rc != -ENOENT && rc != -EINVAL)
        return rc;
    for (uintptr_t p = start; p < start + len; p += env.page_size) {
        if (wp_range(p, env.page_size, 0) == 0)
            continue;
        if (mprotect((void *)p, env.page_size, prot) != 0)
            return -errno;
    }
    return 0;
}

static struct mw_page *uffd_collect(void)
{
    return atomic_exchange_explicit(&hot->dirty_head, NULL, memory_order_acquire);
}

static int uffd_has_dirty(void)
{
    return hot && atomic_load_explicit(&hot->dirty_head, memory_order_relaxed) != NULL;
}

static void uffd_set_writer_hook(mw_writer_hook hook, void *ctx)
{
    atomic_store_explicit(&hot->hook, NULL, memory_order_release);
    atomic_store_explicit(&hot->hook_ctx, ctx, memory_order_release);
    atomic_store_explicit(&hot->hook, hook, memory_order_release);
}

static int uffd_overlaps(uintptr_t addr, size_t len)
{
    uintptr_t h = (uintptr_t)hot;
    return hot && addr < h + hot_bytes && addr + len > h;
}

/* In a forked child the VMAs are no longer registered (no UFFD_FEATURE_EVENT_FORK) and the
 * kernel cleared the protection bits in the child's copy: nothing to lift. */
static void uffd_detach(void)
{
    if (hot)
        atomic_store(&hot->dirty_head, NULL);
}

const struct mw_detector_ops mw_detect_uffd = {
    .name = "uffd",
    .backend = MW_BACKEND_UFFD,
    .flags = 0,
    .available = uffd_available,
    .init = uffd_init,
    .protect = uffd_protect,
    .unprotect = uffd_unprotect,
    .rearm = uffd_rearm,
    .collect = uffd_collect,
    .requeue = push_dirty,
    .has_dirty = uffd_has_dirty,
    .set_writer_hook = uffd_set_writer_hook,
    .overlaps = uffd_overlaps,
    .detach = uffd_detach,
};
