/* detect_uffd.c with real faults: userfaultfd write-protection in SIGBUS mode catches the
 * first write to a page once (old contents kept, writer noted, page on the dirty list),
 * protects never-touched pages too (WP_UNPOPULATED), never splits VMAs (scattered pages
 * beyond what mprotect can protect), keeps 4 KiB tracking inside transparent huge pages,
 * falls back to mprotect for mappings userfaultfd cannot protect, and is reported
 * unavailable under MEMWATCH_DISABLE_UFFD=1. Skips (passes) where the kernel lacks it. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "detector_fixture.h"
#include "signal_chain.h"
#include "unit.h"

static const struct mw_detector_ops *det = &mw_detect_uffd;

static void hook(struct mw_writer *w, void *ctx)
{
    strcpy(w->file, (const char *)ctx);
    w->line = 7;
}

static size_t vma_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_first_write_is_caught(void)
{
    unsigned char *buf = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < 3 * ps; i++)       /* the fourth page is never touched */
        buf[i] = (unsigned char)(i * 7);
    struct mw_page *pages[4];
    for (int i = 0; i < 4; i++)
        pages[i] = watch_page((uintptr_t)buf + i * ps, 0);
    CHECK_EQ_INT(det->protect((uintptr_t)buf, 4 * ps, PROT_READ | PROT_WRITE), 0);
    mw_fault_path_set_writer_hook(hook, "script.py");
    CHECK(!mw_fault_path_has_dirty());
    uint64_t f0 = atomic_load(&accts[0].faults);

    buf[ps + 10] = 0xAB;                       /* SIGBUS once */
    buf[ps + 11] = 0xCD;                       /* writable now */
    CHECK_EQ_INT(buf[ps + 10], 0xAB);
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    struct mw_page *l = mw_fault_path_collect();
    CHECK(l == pages[1]);
    CHECK_EQ_INT(list_len(l), 1);
    CHECK_EQ_INT(atomic_load(&pages[1]->state), MW_PAGE_DIRTY);
    uint32_t slot = atomic_load(&pages[1]->slot);
    CHECK(slot != MW_SLOT_NONE);
    if (slot != MW_SLOT_NONE) {
        const unsigned char *old = mw_page_pool_data(pool, slot);
        CHECK_EQ_INT(old[10], (unsigned char)((ps + 10) * 7));
        const struct mw_slot_meta *m = mw_page_pool_meta(pool, slot);
        CHECK_EQ_INT(m->writer.tid, syscall(SYS_gettid));
        CHECK(m->writer.fault_ip != 0);
        CHECK(strcmp(m->writer.file, "script.py") == 0);
        CHECK_EQ_INT(m->writer.line, 7);
    }
    CHECK_EQ_INT(settle(det, pages[1]), 0);
    buf[ps + 12] = 1;                          /* re-armed: faults again */
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);

    /* A page the kernel never populated is protected too (WP_UNPOPULATED). */
    buf[3 * ps + 1] = 5;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 3);
    l = mw_fault_path_collect();
    CHECK_EQ_INT(list_len(l), 2);
    CHECK_EQ_INT(settle(det, pages[1]), 0);
    CHECK_EQ_INT(settle(det, pages[3]), 0);
    CHECK_EQ_INT(det->unprotect((uintptr_t)buf, 4 * ps, PROT_READ | PROT_WRITE), 0);
    buf[0] = 1;                                /* no fault once unprotected */
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 3);
}

/* Every other page of 40,000: mprotect would need 40,000 VMAs and fail near 32,000
 * (vm.max_map_count); write-protect bits add none. */
static void test_scattered_pages_do_not_split_vmas(void)
{
    size_t n = 80000;
    unsigned char *b = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t before = vma_count();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += 2)
        rc = det->protect((uintptr_t)b + i * ps, ps, PROT_READ | PROT_WRITE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_EQ_INT(rc, 0);
    CHECK(vma_count() <= before + 1);
    fprintf(stderr, "   %zu scattered protects: %.2f us each, VMAs %zu -> %zu\n", n / 2,
            ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / (n / 2),
            before, vma_count());
    CHECK_EQ_INT(det->unprotect((uintptr_t)b, n * ps, PROT_READ | PROT_WRITE), 0);
    munmap(b, n * ps);
}

/* A huge page protected and written in one 4 KiB page reports that page only. */
static void test_huge_pages_do_not_widen(void)
{
    size_t huge = 2u << 20;
    unsigned char *raw = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *b = (unsigned char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(b, huge, MADV_HUGEPAGE);
    memset(b, 1, huge);
    size_t n = huge / ps;
    struct mw_page **pages = calloc(n, sizeof(*pages));
    for (size_t i = 0; i < n; i++)
        pages[i] = watch_page((uintptr_t)b + i * ps, 0);
    uint64_t f0 = atomic_load(&accts[0].faults);
    CHECK_EQ_INT(det->protect((uintptr_t)b, huge, PROT_READ | PROT_WRITE), 0);
    b[5 * ps + 3] = 2;
    b[5 * ps + 4] = 2;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    struct mw_page *l = mw_fault_path_collect();
    CHECK_EQ_INT(list_len(l), 1);
    CHECK(l == pages[5]);
    /* Settled first: a write right after this thread's own dirty page would be a sweep,
     * which takes the pages after it on purpose (fault_path.c). */
    CHECK_EQ_INT(settle(det, pages[5]), 0);
    b[6 * ps] = 2;                             /* the neighbouring 4 KiB is still protected */
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);
    l = mw_fault_path_collect();
    CHECK_EQ_INT(list_len(l), 1);
    CHECK_EQ_INT(settle(det, pages[6]), 0);
    det->unprotect((uintptr_t)b, huge, PROT_READ | PROT_WRITE);
    for (size_t i = 0; i < n; i++)
        mw_region_index_remove(idx, pages[i]);
    free(pages);
    munmap(raw, 2 * huge);
}

/* A kernel write (read() into a protected page) fails with EFAULT in SIGBUS mode: the
 * reason kwrite_interpose.c exists. This documents the mechanism's limit. */
static void test_kernel_write_is_efault_without_interposition(void)
{
    unsigned char *b = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b[0] = 1;
    struct mw_page *e = watch_page((uintptr_t)b, 0);
    CHECK_EQ_INT(det->protect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    int fd = open("/proc/self/exe", O_RDONLY);
    ssize_t r = read(fd, b, 16);
    CHECK(r < 0);
    close(fd);
    CHECK_EQ_INT(det->unprotect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    mw_region_index_remove(idx, e);
    munmap(b, ps);
}

/* A file-backed shared mapping cannot be write-protected by userfaultfd: mprotect is used
 * for it, behind the same interface. */
static void test_fallback_to_mprotect(void)
{
    char path[] = "/tmp/mw-uffd-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_EQ_INT(ftruncate(fd, (off_t)ps), 0);
    unsigned char *b = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    b[0] = 4;
    struct mw_page *e = watch_page((uintptr_t)b, 0);
    uint64_t f0 = atomic_load(&accts[0].faults);
    CHECK_EQ_INT(det->protect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    b[1] = 5;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    CHECK(mw_fault_path_collect() == e);
    CHECK_EQ_INT(settle(det, e), 0);
    b[2] = 6;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);
    CHECK(mw_fault_path_collect() == e);
    CHECK_EQ_INT(settle(det, e), 0);
    CHECK_EQ_INT(det->unprotect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    b[3] = 7;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);
    mw_region_index_remove(idx, e);
    munmap(b, ps);
}

static void test_disable_env(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MEMWATCH_DISABLE_UFFD", "1", 1);
        /* Probed afresh in this process image: exec ourselves in "probe" mode. */
        execl("/proc/self/exe", "test_detect_uffd", "--probe", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);   /* 3: unavailable */
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--probe") == 0)
        return det->available() ? 2 : 3;
    if (!det->available()) {
        fprintf(stderr, "userfaultfd write-protection unavailable here: skipped\n");
        RUN(test_disable_env);
        return UNIT_DONE();
    }
    CHECK_EQ_INT(fixture_start(det), 0);
    CHECK(det->backend == MW_BACKEND_UFFD);
    RUN(test_first_write_is_caught);
    RUN(test_scattered_pages_do_not_split_vmas);
    RUN(test_huge_pages_do_not_widen);
    RUN(test_kernel_write_is_efault_without_interposition);
    RUN(test_fallback_to_mprotect);
    RUN(test_disable_env);
    return UNIT_DONE();
}
