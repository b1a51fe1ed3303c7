/* Write detection with userfaultfd write-protection, in SIGBUS mode.
 *
 * DESIGN (why this mode: README "Backends"; bench/bench_backends.c measures it)
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
 * - The fault path is detect_mprotect.c's, shared in fault_path.c (the page state machine
 *   and its ordering rules, neighbour writes single-stepped, the dirty list): this file
 *   gives it wp_range as the SIGBUS mechanism, and keeps feature probing, registration
 *   and the protect/unprotect/rearm operations.
 *
 * Async-signal-safety: wp_range, the only function here a fault handler calls, is one
 * ioctl. */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "detector.h"
#include "fault_path.h"
#include "own_fds.h"
#include "memory_map.h"
#include "mw_error.h"

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

/* The kernel's ioctl directly: the injected library interposes ioctl() (kwrite_interpose.c),
 * and wp_range runs inside the fault handler. */
static int uffd_ioctl(int fd, unsigned long request, void *arg)
{
    return (int)syscall(SYS_ioctl, fd, request, arg);
}

static size_t page_size;
/* The context's descriptor; memwatch's own (own_fds.h): the script's close() and
 * close_range() leave it open, dup2() onto it moves it first. */
static _Atomic int uffd = -1;
static uint64_t features;          /* what UFFDIO_API granted */
static int availability = -1;      /* -1 not probed yet */

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
        if (uffd_ioctl(fd, UFFDIO_API, &api) == 0) {
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
        ok = uffd_ioctl(fd, UFFDIO_REGISTER, &reg) == 0 &&
             (reg.ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT)) &&
             uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 && uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &un) == 0;
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

/* Async-signal-safe: one ioctl. 0 or -errno (ENOENT: the range is not registered). */
static int wp_range(uintptr_t start, size_t len, int on)
{
    struct uffdio_writeprotect wp = {
        .range = { start, len }, .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    return uffd_ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -errno;
}

static int uffd_init(const struct mw_detector_env *e)
{
    if (!uffd_available())
        return -ENOSYS;
    if (uffd < 0) {
        int fd = open_uffd(&features);
        if (fd < 0)
            return fd;
        uffd = fd;
        static int registered;
        if (!registered)
            registered = mw_own_fd_add(&uffd) == 0;
    }
    page_size = e->page_size;
    return mw_fault_path_start(e, wp_range);
}

/* Registers the whole VMAs covering [start, start+len) for write-protection (whole VMAs:
 * a sub-range would split them). 0, or -errno when one cannot be registered. */
static int register_vmas(uintptr_t start, size_t len)
{
    uintptr_t a = start, end = start + len;
    while (a < end) {
        uintptr_t vs, ve;
        int prot;
        int rc = mw_vma_query(a, &vs, &ve, &prot);
        if (rc)
            return rc == MW_EUNMAPPED ? -ENOENT : rc;
        struct uffdio_register reg = { .range = { vs, ve - vs }, .mode = UFFDIO_REGISTER_MODE_WP };
        if (uffd_ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
            return -errno;
        a = ve;
    }
    return 0;
}

/* The whole range failed with rc. ENOENT or EINVAL: part of it is not registered or
 * cannot be (a mapping userfaultfd does not write-protect), so find each page's mechanism;
 * any other error is final. on: protect (1) or lift (0). */
static int page_by_page(int rc, uintptr_t start, size_t len, int on, int prot)
{
    if (rc != -ENOENT && rc != -EINVAL)
        return rc;
    for (uintptr_t p = start; p < start + len; p += page_size) {
        if (wp_range(p, page_size, on) == 0)
            continue;
        if (mprotect((void *)p, page_size, on ? prot & ~PROT_WRITE : prot) != 0)
            return -errno;
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
    return rc == 0 ? 0 : page_by_page(rc, start, len, 1, prot);
}

/* 0 or -errno; -ENOMEM when part of the range is no longer mapped. UFFDIO_WRITEPROTECT
 * skips unmapped pages silently, and the check must not read what the program unmapped;
 * mprotect reports it the same way on its own. One mincore per vector's worth of pages. */
static int uffd_rearm(uintptr_t start, size_t len, int prot)
{
    int rc = wp_range(start, len, 1);
    if (rc != 0 && (rc = page_by_page(rc, start, len, 1, prot)) != 0)
        return rc;
    static unsigned char vec[4096];   /* the checker holds the engine lock */
    size_t chunk = sizeof vec * page_size;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (mincore((void *)(start + off), n, vec) != 0 && errno == ENOMEM)
            return -ENOMEM;
    }
    return 0;
}

static int uffd_unprotect(uintptr_t start, size_t len, int prot)
{
    int rc = wp_range(start, len, 0);
    return rc == 0 ? 0 : page_by_page(rc, start, len, 0, prot);
}

/* In a forked child the VMAs are no longer registered (no UFFD_FEATURE_EVENT_FORK) and
 * the kernel cleared the protection bits in the child's copy. The descriptor still names
 * the parent's context: an ioctl on it would act on the parent's memory, so the child
 * closes its copy and opens its own at its next init. */
static void uffd_after_fork(void)
{
    int fd = atomic_exchange(&uffd, -1);
    if (fd >= 0)
        syscall(SYS_close, fd);   /* memwatch's own: the script's close() would not */
}

const struct mw_detector_ops mw_detect_uffd = {
    .backend = MW_BACKEND_UFFD,
    .available = uffd_available,
    .init = uffd_init,
    .protect = uffd_protect,
    .unprotect = uffd_unprotect,
    .rearm = uffd_rearm,
    .after_fork = uffd_after_fork,
};
