/* The engine's costs next to the seed README's claims, plus a same-run baseline.
 *
 * 1. Baselines timed in this run, before the engine installs its handler: a bare SIGSEGV
 *    handler that unprotects (what FACTS.md's 3.4 us floor measures), a bare mprotect of
 *    a populated 1 MiB block (the kernel's share of a registration) and a bare re-protect
 *    of one written page (the kernel's share of checking one dirty page).
 * 2. The seed's benchmark: 100 objects x 1 MiB (malloc'd, populated), first 100 bytes of
 *    each modified, one check: registration, modification and check time per object and
 *    memory overhead (memwatch's accounted bytes / tracked bytes).
 * 3. Check cost with 10,000 watched objects (1 KiB each, four per page) and 10 or 100 of
 *    them dirty, next to 100 watched objects with 10 dirty: the cost follows the dirty
 *    pages, not the watched objects.
 * Every figure is the median of several runs. Usage: bench_engine [runs] */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_timing.h"
#include "run_settings.h"
#include "watcher.h"

static size_t ps;

static void bare_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(ps - 1);
    mprotect((void *)page, ps, PROT_READ | PROT_WRITE);
}

/* Per-page cost of fault + unprotect with a bare handler, over n separate pages. */
static double baseline_us(size_t n)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = bare_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    unsigned char *b = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    memset(b, 1, n * ps);
    mprotect(b, n * ps, PROT_READ);
    double t0 = now();
    for (size_t i = 0; i < n; i += 2)      /* every other page, like scattered objects */
        b[i * ps] = 2;
    double t = (now() - t0) / (double)((n + 1) / 2);
    munmap(b, n * ps);
    sigaction(SIGSEGV, &old, NULL);
    return t * 1e6;
}

/* Bare mprotect costs: (a) protect a populated 1 MiB block, (b) re-protect one page
 * inside a protected area. */
static void bare_mprotect_us(double *block_us, double *page_us)
{
    enum { N = 20 };
    const size_t size = 1u << 20;
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(size);
        memset(b[i], 1, size);
    }
    double t0 = now();
    for (int i = 0; i < N; i++)
        mprotect((void *)((uintptr_t)b[i] & ~(uintptr_t)(ps - 1)), size, PROT_READ);
    *block_us = (now() - t0) / N * 1e6;
    for (int i = 0; i < N; i++)
        mprotect((void *)((uintptr_t)b[i] & ~(uintptr_t)(ps - 1)), size, PROT_READ | PROT_WRITE);
    for (int i = 0; i < N; i++)
        free(b[i]);
    size_t n = 400;
    unsigned char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    memset(p, 1, n * ps);
    mprotect(p, n * ps, PROT_READ);
    for (size_t i = 0; i < n; i += 4)
        mprotect(p + i * ps, ps, PROT_READ | PROT_WRITE);
    t0 = now();
    for (size_t i = 0; i < n; i += 4)
        mprotect(p + i * ps, ps, PROT_READ);
    *page_us = (now() - t0) / (double)(n / 4) * 1e6;
    munmap(p, n * ps);
}

struct seed_run {
    double reg_us, mod_us, check_us, overhead_pct;
};

static int seed_once(struct seed_run *out)
{
    enum { NOBJ = 100 };
    const size_t size = 1u << 20;
    unsigned char *obj[NOBJ];
    for (int i = 0; i < NOBJ; i++) {
        obj[i] = malloc(size);
        if (!obj[i])
            return -1;
        memset(obj[i], i, size);
    }
    struct mw_watcher_config cfg = { .max_memory_bytes = (size_t)1 << 30 };
    mw_watcher *w;
    if (mw_watcher_create(&cfg, &w) != 0)
        return -1;
    uint64_t ids[NOBJ];
    double t0 = now();
    for (int i = 0; i < NOBJ; i++)
        if (mw_watcher_watch(w, obj[i], size, NULL, &ids[i]) != 0)
            return -1;
    double t1 = now();
    for (int i = 0; i < NOBJ; i++)
        memset(obj[i], 0xEE, 100);
    double t2 = now();
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);                  /* copies still held: the peak */
    double t3 = now();
    int n = mw_engine_check(NULL, NULL);
    double t4 = now();
    if (n != NOBJ)
        fprintf(stderr, "bench: expected %d changes, got %d\n", NOBJ, n);
    out->reg_us = (t1 - t0) / NOBJ * 1e6;
    out->mod_us = (t2 - t1) / NOBJ * 1e6;
    out->check_us = (t4 - t3) / NOBJ * 1e6;
    out->overhead_pct = 100.0 * (double)st.memory_used_bytes / (double)st.tracked_bytes;
    mw_watcher_destroy(w);
    for (int i = 0; i < NOBJ; i++)
        free(obj[i]);
    return 0;
}

/* Median check time (us) with `dirty` objects written among `nobj` watched 1 KiB objects. */
static double check_cost_us(size_t nobj, size_t dirty, int runs)
{
    const size_t osz = 1024;
    size_t bytes = (nobj * osz + ps - 1) / ps * ps;
    unsigned char *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    memset(b, 0, bytes);
    mw_watcher *w;
    mw_watcher_create(NULL, &w);
    for (size_t i = 0; i < nobj; i++)
        mw_watcher_watch(w, b + i * osz, osz, NULL, NULL);
    size_t per_page = ps / osz, pages = nobj / per_page;
    double t[64];
    for (int r = 0; r < runs; r++) {
        for (size_t i = 0; i < dirty; i++) {   /* distinct pages, spread out */
            size_t page = (i * (pages / dirty)) % pages;
            b[page * ps + 8] = (unsigned char)(r + 1);
        }
        double t0 = now();
        mw_engine_check(NULL, NULL);
        t[r] = (now() - t0) * 1e6;
    }
    mw_watcher_destroy(w);
    munmap(b, bytes);
    return median(t, runs);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1 || runs > 64)
        runs = 7;
    ps = (size_t)sysconf(_SC_PAGESIZE);

    double base[64], blk[64], pg[64];
    for (int r = 0; r < runs; r++) {
        base[r] = baseline_us(2000);
        bare_mprotect_us(&blk[r], &pg[r]);
    }
    double base_us = median(base, runs), blk_us = median(blk, runs), pg_us = median(pg, runs);

    if (mw_engine_init() != 0) {
        fprintf(stderr, "bench: engine init failed\n");
        return 1;
    }
    double reg[64], mod[64], chk[64], ovh[64];
    /* Warm-up runs, not counted: the first ones touch the pool and scratch for the first
     * time (page faults of memwatch's own memory, 3x the steady cost). */
    for (int r = 0; r < 3; r++) {
        struct seed_run s;
        seed_once(&s);
    }
    for (int r = 0; r < runs; r++) {
        struct seed_run s;
        if (seed_once(&s) != 0) {
            fprintf(stderr, "bench: seed run failed\n");
            return 1;
        }
        reg[r] = s.reg_us;
        mod[r] = s.mod_us;
        chk[r] = s.check_us;
        ovh[r] = s.overhead_pct;
    }

    printf("memwatch engine benchmark (backend %s, median of %d runs)\n\n",
           mw_backend_name(mw_engine_default_backend()), runs);
    printf("100 objects x 1 MiB, first 100 bytes of each modified, one check\n");
    printf("  %-26s %12s %12s\n", "", "memwatch", "seed claim");
    printf("  %-26s %9.1f us %9.1f us\n", "registration / object", median(reg, runs), 4.2);
    printf("  %-26s %9.1f us %9.1f us\n", "modification / object", median(mod, runs), 12.3);
    printf("  %-26s %9.1f us %9.1f us\n", "check / object", median(chk, runs), 8.9);
    printf("  %-26s %10.2f %% %10.1f %%\n", "memory overhead", median(ovh, runs), 2.1);
    printf("\n  same-run kernel baselines (memwatch / baseline):\n");
    printf("  %-44s %8.1f us  (%.2fx)\n", "bare mprotect of a populated 1 MiB block",
           blk_us, median(reg, runs) / blk_us);
    printf("  %-44s %8.1f us  (%.2fx)  FACTS.md: 3.4 us\n",
           "bare SIGSEGV + unprotect round trip", base_us, median(mod, runs) / base_us);
    printf("  %-44s %8.1f us  (%.2fx)\n\n", "bare re-protect of one written page", pg_us,
           median(chk, runs) / pg_us);

    double c10 = check_cost_us(10000, 10, runs), c100 = check_cost_us(10000, 100, runs);
    double s10 = check_cost_us(100, 10, runs);
    printf("check cost (1 KiB objects, 4 per page)\n");
    printf("  10,000 watched,  10 dirty: %8.1f us\n", c10);
    printf("  10,000 watched, 100 dirty: %8.1f us  (%.1fx the 10-dirty cost)\n", c100,
           c100 / c10);
    printf("     100 watched,  10 dirty: %8.1f us  (10,000 watched costs %.2fx this)\n", s10,
           c10 / s10);
    return 0;
}
