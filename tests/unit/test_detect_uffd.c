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

#include "detector.h"
#include "signal_chain.h"
#include "unit.h"

static size_t ps;
static struct mw_region_index *idx;
static struct mw_page_pool *pool;
static struct mw_acct *accts;
static const struct mw_detector_ops *det = &mw_detect_uffd;

static void hook(struct mw_writer *w, void *ctx)
{
    strcpy(w->file, (const char *)ctx);
    w->line = 7;
}

static struct mw_page *watch_page(uintptr_t page)
{
    struct mw_page *e = mw_region_index_page_new(idx, page);
    atomic_store(&e->acct_prot, MW_ACCT_PROT(0, PROT_READ | PROT_WRITE));
    atomic_store(&e->span, MW_SPAN(0, ps));
    e->nregions = 1;
    mw_region_index_insert(idx, e);
    return e;
}

static void settle(struct mw_page *e)
{
    atomic_store(&e->state, MW_PAGE_CHECKING);
    CHECK_EQ_INT(det->rearm(e->addr, ps, PROT_READ | PROT_WRITE), 0);
    uint32_t slot = atomic_load(&e->slot);
    if (slot != MW_SLOT_NONE) {
        mw_page_pool_free(pool, slot);
        mw_acct_uncharge(&accts[0], ps + sizeof(struct mw_slot_meta));
        atomic_store(&e->slot, MW_SLOT_NONE);
    }
    atomic_store(&e->state, MW_PAGE_CLEAN);
}

static size_t list_len(struct mw_page *l)
{
    size_t n = 0;
    for (; l; l = atomic_load(&l->next))
        n++;
    return n;
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
        pages[i] = watch_page((uintptr_t)buf + i * ps);
    CHECK_EQ_INT(det->protect((uintptr_t)buf, 4 * ps, PROT_READ | PROT_WRITE), 0);
    det->set_writer_hook(hook, "script.py");
    CHECK(!det->has_dirty());
    uint64_t f0 = atomic_load(&accts[0].faults);

    buf[ps + 10] = 0xAB;                       /* SIGBUS once */
    buf[ps + 11] = 0xCD;                       /* writable now */
    CHECK_EQ_INT(buf[ps + 10], 0xAB);
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    struct mw_page *l = det->collect();
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
    settle(pages[1]);
    buf[ps + 12] = 1;                          /* re-armed: faults again */
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);

    /* A page the kernel never populated is protected too (WP_UNPOPULATED). */
    buf[3 * ps + 1] = 5;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 3);
    l = det->collect();
    CHECK_EQ_INT(list_len(l), 2);
    settle(pages[1]);
    settle(pages[3]);
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
        pages[i] = watch_page((uintptr_t)b + i * ps);
    uint64_t f0 = atomic_load(&accts[0].faults);
    CHECK_EQ_INT(det->protect((uintptr_t)b, huge, PROT_READ | PROT_WRITE), 0);
    b[5 * ps + 3] = 2;
    b[5 * ps + 4] = 2;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    struct mw_page *l = det->collect();
    CHECK_EQ_INT(list_len(l), 1);
    CHECK(l == pages[5]);
    b[6 * ps] = 2;                             /* the neighbouring 4 KiB is still protected */
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);
    l = det->collect();
    CHECK_EQ_INT(list_len(l), 1);
    settle(pages[5]);
    settle(pages[6]);
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
    struct mw_page *e = watch_page((uintptr_t)b);
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
    struct mw_page *e = watch_page((uintptr_t)b);
    uint64_t f0 = atomic_load(&accts[0].faults);
    CHECK_EQ_INT(det->protect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    b[1] = 5;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 1);
    CHECK(det->collect() == e);
    settle(e);
    b[2] = 6;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), f0 + 2);
    CHECK(det->collect() == e);
    settle(e);
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
    ps = (size_t)sysconf(_SC_PAGESIZE);
    if (!det->available()) {
        fprintf(stderr, "userfaultfd write-protection unavailable here: skipped\n");
        RUN(test_disable_env);
        return UNIT_DONE();
    }
    CHECK_EQ_INT(mw_region_index_create(ps, &idx), 0);
    CHECK_EQ_INT(mw_page_pool_create(ps, 1024, &pool), 0);
    CHECK_EQ_INT(mw_page_pool_commit(pool, 1024), 0);
    accts = calloc(4, sizeof(*accts));
    atomic_store(&accts[0].limit, (size_t)1 << 30);
    struct mw_detector_env env = {
        .index = idx, .pool = pool, .accts = accts, .page_size = ps,
        .copy_cost = ps + sizeof(struct mw_slot_meta),
    };
    CHECK_EQ_INT(det->init(&env), 0);
    CHECK(det->backend == MW_BACKEND_UFFD);
    RUN(test_first_write_is_caught);
    RUN(test_scattered_pages_do_not_split_vmas);
    RUN(test_huge_pages_do_not_widen);
    RUN(test_kernel_write_is_efault_without_interposition);
    RUN(test_fallback_to_mprotect);
    RUN(test_disable_env);
    return UNIT_DONE();
}
