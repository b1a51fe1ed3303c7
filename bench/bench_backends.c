/* Both detection backends side by side, same run, one table (issue 6).
 *
 * Each backend runs in a forked child (the mechanism is process-wide) that selects it
 * with mw_engine_set_backend before the engine starts; the parent prints the table.
 * Rows (medians of several runs):
 *   first write      per first write to a protected page (20,000 pages, one byte each)
 *   watch / object   registering 1,000,000 objects of 64 bytes, 51 to a page like a
 *                    pymalloc pool of 80-byte blocks (about 19,600 pages)
 *   memory / object  memwatch's accounted bytes / objects, with those 1,000,000 watched
 *   check 1M/1000    one check with 1,000,000 watched and 1,000 random ones written
 *   check 1M/0       one check with nothing written (the fixed cost)
 *   scattered        watching one object on every other page of 80,000 pages (40,000
 *                    islands): mprotect runs into vm.max_map_count
 *   seed: register / modify / check per object and memory overhead for 100 x 1 MiB
 *                    (seed claims 4.2 us, 12.3 us, 8.9 us, 2.1 %)
 * and the floors of FACTS.md measured in this run: bare SIGSEGV+mprotect round trip.
 * Usage: bench_backends [objects (default 1000000)] [runs (default 5)] */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_timing.h"
#include "run_settings.h"
#include "watcher.h"

static size_t ps;
static size_t nobj = 1000000;
static int runs = 5;

enum { R_FIRST, R_WATCH, R_MEM, R_CHECK1000, R_CHECK0, R_SCATTER, R_SEED_REG, R_SEED_MOD,
       R_SEED_CHECK, R_SEED_MEM, NROWS };
static const char *row_name[NROWS] = {
    "first write (us/page)", "watch (us/object)", "memory (bytes/object)",
    "check 1M watched, 1000 dirty (ms)", "check 1M watched, none dirty (ms)",
    "40,000 scattered pages: watch (us/obj)", "seed: register (us/object)",
    "seed: modify (us/object)", "seed: check (us/object)", "seed: memory overhead (%)",
};
static const char *seed_claim[NROWS] = {
    "", "", "", "", "", "", "4.2", "12.3", "8.9", "2.1",
};

static unsigned char *map(size_t bytes)
{
    unsigned char *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    return b == MAP_FAILED ? NULL : b;
}

static double first_write_us(mw_watcher *w)
{
    size_t n = 20000;
    unsigned char *b = map(n * ps);
    memset(b, 1, n * ps);
    uint64_t id;
    if (mw_watcher_watch(w, b, n * ps, NULL, &id) != 0)
        return -1;
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        b[i * ps] = 2;
    double t = (now() - t0) / (double)n * 1e6;
    /* Unwatch without a callback leaves the pages dirty: check first, so that the next
     * run's pages (often at the same addresses) are clean and fault again. */
    mw_engine_check(NULL, NULL);
    mw_watcher_unwatch(w, id, NULL, NULL);
    munmap(b, n * ps);
    return t;
}

/* 1M objects of 64 bytes at an 80-byte stride, 51 per page. */
static void many_objects(mw_watcher *w, double *out)
{
    size_t per_page = ps / 80, pages = (nobj + per_page - 1) / per_page;
    unsigned char *b = map(pages * ps);
    memset(b, 0, pages * ps);
    uint64_t *ids = malloc(nobj * sizeof(*ids));
    struct mw_watcher_stats st0, st;
    mw_watcher_stats(w, &st0);
    double t0 = now();
    for (size_t i = 0; i < nobj; i++) {
        unsigned char *o = b + (i / per_page) * ps + (i % per_page) * 80;
        if (mw_watcher_watch(w, o, 64, NULL, &ids[i]) != 0) {
            fprintf(stderr, "bench: watch %zu failed\n", i);
            break;
        }
    }
    out[R_WATCH] = (now() - t0) / (double)nobj * 1e6;
    mw_watcher_stats(w, &st);
    out[R_MEM] = (double)(st.memory_used_bytes - st0.memory_used_bytes) / (double)nobj;
    double t1000[16], t0s[16];
    unsigned seed = 1;
    for (int r = 0; r < runs && r < 16; r++) {
        for (int k = 0; k < 1000; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t i = (seed >> 4) % nobj;
            b[(i / per_page) * ps + (i % per_page) * 80 + (size_t)(r % 64)] ^= 0x5a;
        }
        double a = now();
        int n = mw_engine_check(NULL, NULL);
        t1000[r] = (now() - a) * 1e3;
        if (n < 990)
            fprintf(stderr, "bench: expected ~1000 changes, got %d\n", n);
        a = now();
        mw_engine_check(NULL, NULL);
        t0s[r] = (now() - a) * 1e3;
    }
    out[R_CHECK1000] = median(t1000, runs < 16 ? runs : 16);
    out[R_CHECK0] = median(t0s, runs < 16 ? runs : 16);
    double a = now();
    for (size_t i = 0; i < nobj; i++)
        mw_watcher_unwatch(w, ids[i], NULL, NULL);
    fprintf(stderr, "   (%s: unwatch %.2f us/object)\n", mw_backend_name(mw_engine_backend()),
            (now() - a) / (double)nobj * 1e6);
    free(ids);
    munmap(b, pages * ps);
}

static double scattered(mw_watcher *w)
{
    size_t n = 80000;
    unsigned char *b = map(n * ps);
    memset(b, 1, n * ps);
    uint64_t *ids = calloc(n / 2, sizeof(*ids));
    double t0 = now();
    size_t ok = 0;
    for (size_t i = 0; i < n; i += 2, ok++)
        if (mw_watcher_watch(w, b + i * ps, 64, NULL, &ids[ok]) != 0)
            break;
    double t = (now() - t0) / (double)(ok ? ok : 1) * 1e6;
    for (size_t i = 0; i < ok; i++)
        mw_watcher_unwatch(w, ids[i], NULL, NULL);
    munmap(b, n * ps);
    free(ids);
    return ok == n / 2 ? t : -(double)ok;    /* negative: failed after that many */
}

static void seed(mw_watcher *w, double *out)
{
    enum { N = 100 };
    const size_t size = 1u << 20;
    double reg[16], mod[16], chk[16], mem[16];
    for (int r = 0; r < runs && r < 16; r++) {
        unsigned char *obj[N];
        uint64_t ids[N];
        for (int i = 0; i < N; i++) {
            obj[i] = malloc(size);
            memset(obj[i], i, size);
        }
        struct mw_watcher_stats st0, st;
        mw_watcher_stats(w, &st0);
        double t0 = now();
        for (int i = 0; i < N; i++)
            mw_watcher_watch(w, obj[i], size, NULL, &ids[i]);
        double t1 = now();
        for (int i = 0; i < N; i++)
            memset(obj[i], 0xEE, 100);
        double t2 = now();
        mw_watcher_stats(w, &st);
        double t3 = now();
        mw_engine_check(NULL, NULL);
        double t4 = now();
        reg[r] = (t1 - t0) / N * 1e6;
        mod[r] = (t2 - t1) / N * 1e6;
        chk[r] = (t4 - t3) / N * 1e6;
        mem[r] = 100.0 * (double)(st.memory_used_bytes - st0.memory_used_bytes) / (double)(N * size);
        for (int i = 0; i < N; i++) {
            mw_watcher_unwatch(w, ids[i], NULL, NULL);
            free(obj[i]);
        }
    }
    int n = runs < 16 ? runs : 16;
    out[R_SEED_REG] = median(reg, n);
    out[R_SEED_MOD] = median(mod, n);
    out[R_SEED_CHECK] = median(chk, n);
    out[R_SEED_MEM] = median(mem, n);
}

static int run_backend(enum mw_backend b, double *out)
{
    if (mw_engine_set_backend(b) != 0 || mw_engine_init() != 0)
        return -1;
    struct mw_watcher_config cfg = { .max_memory_bytes = (size_t)4 << 30 };
    mw_watcher *w;
    if (mw_watcher_create(&cfg, &w) != 0)
        return -1;
    double fw[16];
    for (int r = 0; r < runs && r < 16; r++)
        fw[r] = first_write_us(w);
    out[R_FIRST] = median(fw, runs < 16 ? runs : 16);
    many_objects(w, out);
    out[R_SCATTER] = scattered(w);
    seed(w, out);
    mw_watcher_destroy(w);
    return 0;
}

static void bare_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(ps - 1);
    mprotect((void *)page, ps, PROT_READ | PROT_WRITE);
}

static double bare_floor_us(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = bare_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    size_t n = 20000;
    unsigned char *b = map(n * ps);
    memset(b, 1, n * ps);
    mprotect(b, n * ps, PROT_READ);
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        b[i * ps] = 2;
    double t = (now() - t0) / (double)n * 1e6;
    munmap(b, n * ps);
    sigaction(SIGSEGV, &old, NULL);
    return t;
}

int main(int argc, char **argv)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    if (argc > 1)
        nobj = strtoul(argv[1], NULL, 10);
    if (argc > 2)
        runs = atoi(argv[2]);
    enum mw_backend which[2] = { MW_BACKEND_UFFD, MW_BACKEND_MPROTECT };
    double res[2][NROWS];
    int ok[2] = { 0, 0 };
    double floor = bare_floor_us();
    for (int k = 0; k < 2; k++) {
        if (!mw_engine_backend_available(which[k]))
            continue;
        int fds[2];
        if (pipe(fds) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            double out[NROWS] = { 0 };
            int rc = run_backend(which[k], out);
            if (rc == 0 && write(fds[1], out, sizeof(out)) != (ssize_t)sizeof(out))
                rc = -1;
            _exit(rc == 0 ? 0 : 1);
        }
        close(fds[1]);
        ok[k] = read(fds[0], res[k], sizeof(res[k])) == (ssize_t)sizeof(res[k]);
        close(fds[0]);
        waitpid(pid, NULL, 0);
    }
    printf("memwatch backends, %zu objects, median of %d runs (page %zu bytes)\n", nobj, runs, ps);
    printf("floor this run: bare SIGSEGV + mprotect round trip %.2f us/page\n", floor);
    printf("%-40s %12s %12s %10s\n", "", "uffd", "mprotect", "seed");
    for (int r = 0; r < NROWS; r++) {
        printf("%-40s", row_name[r]);
        for (int k = 0; k < 2; k++) {
            if (!ok[k])
                printf(" %12s", "n/a");
            else if (r == R_SCATTER && res[k][r] < 0)
                printf(" %5s@%-6.0f", "FAIL", -res[k][r]);
            else
                printf(" %12.2f", res[k][r]);
        }
        printf(" %10s\n", seed_claim[r]);
    }
    return 0;
}
