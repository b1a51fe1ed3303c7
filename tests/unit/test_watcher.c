/* watcher.c end to end: exact ranges with old and new bytes, equal rewrites, many regions
 * per page, regions across pages, memory limit (refusal and old-unavailable), unwatch,
 * baselines, forks, and 4 threads writing while the main thread checks. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mw_error.h"
#include "page_pool.h"
#include "run_settings.h"
#include "unit.h"
#include "watcher.h"

static size_t ps;

/* Changes recorded by a check, deep-copied. */
#define MAXC 4096
struct rchange {
    uint64_t id;
    void *user;
    size_t nranges;
    size_t off[64], len[64];
    unsigned char old[64][256], new_[64][256];
    int old_null[64];
    pid_t tid;
    char file[MW_WRITER_TEXT];
    uint64_t ns;
};
static struct rchange *rec;
static size_t nrec;
static const void *scratch_seen;

static void record(const struct mw_change *c, void *ctx)
{
    (void)ctx;
    if (nrec >= MAXC)
        return;
    struct rchange *r = &rec[nrec++];
    memset(r, 0, sizeof(*r));
    r->id = c->region_id;
    r->user = c->region_user;
    r->nranges = c->nranges;
    r->tid = c->writer->tid;
    memcpy(r->file, c->writer->file, sizeof(r->file));
    r->ns = c->first_fault_ns;
    scratch_seen = c->ranges;
    for (size_t i = 0; i < c->nranges && i < 64; i++) {
        r->off[i] = c->ranges[i].offset;
        r->len[i] = c->ranges[i].length;
        size_t n = r->len[i] < 256 ? r->len[i] : 256;
        r->old_null[i] = c->ranges[i].old == NULL;
        if (c->ranges[i].old)
            memcpy(r->old[i], c->ranges[i].old, n);
        memcpy(r->new_[i], c->ranges[i].new_, n);
    }
}

static int check(void)
{
    nrec = 0;
    return mw_engine_check(record, NULL);
}

static unsigned char *map(size_t pages)
{
    unsigned char *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Where the hook writes, like the interpreter state a real hook updates. */
static unsigned char *volatile hook_scribble[2];

static void hook(struct mw_writer *w, void *ctx)
{
    (void)ctx;
    strcpy(w->file, "test.py");
    w->line = 7;
    for (int i = 0; i < 2; i++)
        if (hook_scribble[i])
            (*hook_scribble[i])++;
}

static void test_exact_ranges(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(3);
    memset(b, 0x11, 3 * ps);
    uint64_t id = 0;
    int tag;
    CHECK_EQ_INT(mw_watcher_watch(w, b + 100, 5000, &tag, &id), 0);
    CHECK(id != 0);
    CHECK(mw_engine_owns_address(b + 200));
    CHECK(mw_engine_owns_address(b + ps + 10));
    CHECK(!mw_engine_owns_address(b + 2 * ps));   /* the region ends on page 1 */
    CHECK_EQ_INT(check(), 0);

    b[200] = 1; b[201] = 2; b[202] = 3;
    b[ps + 50] = 9;
    b[50] = 0x22;                                 /* page 0 but outside the region */
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].id, id);
    CHECK(rec[0].user == &tag);
    CHECK_EQ_INT(rec[0].nranges, 2);
    CHECK_EQ_INT(rec[0].off[0], 100);
    CHECK_EQ_INT(rec[0].len[0], 3);
    CHECK_EQ_INT(rec[0].old[0][0], 0x11);
    CHECK_EQ_INT(rec[0].new_[0][2], 3);
    CHECK_EQ_INT(rec[0].off[1], ps + 50 - 100);
    CHECK_EQ_INT(rec[0].len[1], 1);
    CHECK_EQ_INT(rec[0].new_[1][0], 9);
    CHECK_EQ_INT(rec[0].tid, syscall(SYS_gettid));
    CHECK(strcmp(rec[0].file, "test.py") == 0);
    CHECK(rec[0].ns > 0);

    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.tracked_objects, 1);
    CHECK_EQ_INT(st.tracked_bytes, 5000);
    CHECK_EQ_INT(st.faults, 2);
    CHECK_EQ_INT(st.changes, 1);
    CHECK_EQ_INT(st.checks, 2);
    CHECK_EQ_INT(st.old_unavailable, 0);
    CHECK(st.memory_used_bytes > 0);

    /* Equal rewrite: a fault, but no change. */
    b[300] = 0x11;
    CHECK_EQ_INT(check(), 0);
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.faults, 3);

    /* A run across the page boundary is one range. */
    memset(b + ps - 5, 0x33, 10);
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].nranges, 1);
    CHECK_EQ_INT(rec[0].off[0], ps - 5 - 100);
    CHECK_EQ_INT(rec[0].len[0], 10);
    CHECK_EQ_INT(rec[0].old[0][9], 0x11);
    CHECK_EQ_INT(rec[0].new_[0][9], 0x33);

    /* The scratch memory a change points into is memwatch's own. */
    CHECK_EQ_INT(mw_watcher_watch(w, scratch_seen, 16, NULL, NULL), MW_EOWN);

    /* Unwatch reports what is pending, then the page is plain memory again. */
    b[400] = 0x44;
    nrec = 0;
    CHECK_EQ_INT(mw_watcher_unwatch(w, id, record, NULL), 0);
    CHECK_EQ_INT(nrec, 1);
    CHECK_EQ_INT(rec[0].off[0], 300);
    CHECK_EQ_INT(rec[0].new_[0][0], 0x44);
    CHECK(!mw_engine_owns_address(b + 200));
    mw_watcher_stats(w, &st);
    uint64_t faults = st.faults;
    b[500] = 1;
    b[ps + 500] = 1;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.faults, faults);
    CHECK_EQ_INT(st.tracked_objects, 0);
    CHECK_EQ_INT(st.memory_used_bytes, 0);
    CHECK_EQ_INT(mw_watcher_unwatch(w, id, NULL, NULL), MW_ENOENT);
    mw_watcher_destroy(w);
    munmap(b, 3 * ps);
}

static void test_validation(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(2);
    CHECK_EQ_INT(mw_watcher_watch(w, NULL, 10, NULL, NULL), MW_EINVAL);
    CHECK_EQ_INT(mw_watcher_watch(w, b, 0, NULL, NULL), MW_EINVAL);
    munmap(b + ps, ps);
    CHECK_EQ_INT(mw_watcher_watch(w, b + ps, 10, NULL, NULL), MW_EUNMAPPED);
    CHECK_EQ_INT(mw_watcher_watch(w, b + ps - 10, 20, NULL, NULL), MW_EUNMAPPED);
    unsigned char *none = mmap(NULL, ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ_INT(mw_watcher_watch(w, none, 10, NULL, NULL), MW_EUNMAPPED);
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.tracked_objects, 0);
    CHECK_EQ_INT(st.memory_used_bytes, 0);

    /* Read-only memory: watched, never protected by us; a write there stays a crash. */
    unsigned char *ro = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t id;
    CHECK_EQ_INT(mw_watcher_watch(w, ro, 100, NULL, &id), 0);
    CHECK(!mw_engine_owns_address(ro));
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);   /* no interposer here: just restore the default */
        ro[0] = 1;
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    CHECK_EQ_INT(check(), 0);
    CHECK_EQ_INT(mw_watcher_unwatch(w, id, NULL, NULL), 0);
    mw_watcher_destroy(w);
    munmap(b, ps);
    munmap(none, ps);
    munmap(ro, ps);
}

static void test_many_regions_per_page(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(1);
    uint64_t ids[64], twin;
    for (int i = 0; i < 64; i++)
        CHECK_EQ_INT(mw_watcher_watch(w, b + 64 * i, 64, (void *)(intptr_t)i, &ids[i]), 0);
    CHECK_EQ_INT(mw_watcher_watch(w, b + 64 * 40, 64, (void *)(intptr_t)99, &twin), 0);
    b[64 * 40 + 3] = 5;
    b[64 * 5 + 63] = 6;
    CHECK_EQ_INT(check(), 3);
    CHECK_EQ_INT(rec[0].id, ids[5]);            /* region order */
    CHECK_EQ_INT(rec[0].off[0], 63);
    CHECK_EQ_INT(rec[1].id, ids[40]);
    CHECK_EQ_INT(rec[1].off[0], 3);
    CHECK_EQ_INT(rec[2].id, twin);              /* the same range twice: two regions */
    CHECK(rec[2].user == (void *)(intptr_t)99);
    CHECK_EQ_INT(rec[2].off[0], 3);
    /* Unwatching some regions keeps the page watched for the others. */
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(mw_watcher_unwatch(w, ids[i], NULL, NULL), 0);
    b[64 * 41] = 1;
    b[64 * 2] = 1;                               /* no longer watched */
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].id, ids[41]);
    mw_watcher_destroy(w);
    CHECK(!mw_engine_owns_address(b));
    b[0] = 1;                                    /* plain memory again */
    munmap(b, ps);
}

static void test_region_spanning_pages(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    size_t np = 256;
    unsigned char *b = map(np);
    uint64_t id;
    CHECK_EQ_INT(mw_watcher_watch(w, b, np * ps, NULL, &id), 0);
    b[200 * ps + 1] = 1;          /* written out of order */
    b[3 * ps] = 1;
    b[100 * ps + 7] = 1;
    b[100 * ps + 8] = 1;
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].nranges, 3);
    CHECK_EQ_INT(rec[0].off[0], 3 * ps);
    CHECK_EQ_INT(rec[0].off[1], 100 * ps + 7);
    CHECK_EQ_INT(rec[0].len[1], 2);
    CHECK_EQ_INT(rec[0].off[2], 200 * ps + 1);
    /* A whole-region rewrite coalesces into one range. */
    memset(b, 0x5a, np * ps);
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].nranges, 1);
    CHECK_EQ_INT(rec[0].len[0], np * ps);
    mw_watcher_destroy(w);
    munmap(b, np * ps);
}

/* A sweep over a large region (numpy's `a += 1`, a memcpy into it) costs a handful of
 * faults, not one per page, and still yields every changed byte; a page taken ahead of
 * the sweep and then not written is found unchanged. */
static void test_sweep_takes_pages_ahead(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    size_t np = 256;
    unsigned char *b = map(np);
    uint64_t id;
    CHECK_EQ_INT(mw_watcher_watch(w, b, np * ps, NULL, &id), 0);
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    uint64_t faults = st.faults;
    memset(b, 0x11, (np - 10) * ps);   /* the last 10 pages are not written */
    mw_watcher_stats(w, &st);
    CHECK(st.faults - faults <= 16);
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].nranges, 1);
    CHECK_EQ_INT(rec[0].off[0], 0);
    CHECK_EQ_INT(rec[0].len[0], (np - 10) * ps);
    /* Every page is protected again: a single byte is one fault and one change. */
    mw_watcher_stats(w, &st);
    faults = st.faults;
    b[(np - 1) * ps] = 2;
    b[7] = 2;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.faults, faults + 2);
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].nranges, 2);
    mw_watcher_destroy(w);
    munmap(b, np * ps);
}

/* The busy-page hook writes the thread's interpreter state, which may share the busy page
 * itself: it must be called once the page is writable, or that write waits for the
 * fault it is part of. Run in a child with an alarm, so that a hang fails the test. */
static volatile unsigned char *hot_hook_target;
static int hot_hook_calls;

static void hot_hook_writes_the_page(void)
{
    hot_hook_calls++;
    hot_hook_target[0]++;           /* a neighbour's byte of the busy page */
}

static void test_hot_hook_may_write_the_busy_page(void)
{
    pid_t child = fork();
    if (child == 0) {
        alarm(10);
        mw_watcher *w;
        if (mw_watcher_create(NULL, &w) != 0)
            _exit(2);
        unsigned char *b = map(1);
        uint64_t id;
        if (mw_watcher_watch(w, b + 2048, 64, NULL, &id) != 0)
            _exit(2);
        hot_hook_target = b;
        mw_engine_set_hot_hook(hot_hook_writes_the_page);
        for (int i = 0; i < 200; i++)   /* busy neighbours: the page is offered */
            ((volatile unsigned char *)b)[64 + i % 512] = (unsigned char)i;
        mw_engine_set_hot_hook(NULL);
        _exit(hot_hook_calls >= 1 ? 0 : 3);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));            /* not killed by the alarm: no hang */
    CHECK_EQ_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

/* Many small regions on one page, watched in no particular order, with gaps between
 * them: a write to a gap is a neighbour's (nothing recorded), a write to a region is that
 * region's, and a region unwatched leaves a gap where it was. */
static void test_gaps_between_small_regions(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(1);
    enum { N = 40 };
    uint64_t ids[N];
    for (int k = 0; k < N; k++) {
        int i = (k * 17) % N;                 /* 17 and 40 are coprime: each once */
        CHECK_EQ_INT(mw_watcher_watch(w, b + 64 * i + 16, 32, (void *)(intptr_t)(i + 1),
                                      &ids[i]),
                     0);
    }
    for (int i = 0; i < N; i++)
        b[64 * i + 8] = 1;                     /* gaps */
    CHECK_EQ_INT(check(), 0);
    for (int i = 0; i < N; i += 3)
        b[64 * i + 16 + 31] = 2;               /* last byte of every third region */
    CHECK_EQ_INT(check(), (N + 2) / 3);
    for (size_t r = 0; r < nrec; r++) {
        intptr_t i = (intptr_t)rec[r].user - 1;
        CHECK_EQ_INT(i % 3, 0);
        CHECK_EQ_INT(rec[r].off[0], 31);
    }
    CHECK_EQ_INT(mw_watcher_unwatch(w, ids[5], NULL, NULL), 0);
    b[64 * 5 + 20] = 3;                        /* a gap now */
    b[64 * 6 + 20] = 3;
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT((intptr_t)rec[0].user, 7);
    mw_watcher_destroy(w);
    munmap(b, ps);
}

static void test_memory_limit(void)
{
    /* A watch whose metadata exceeds the limit is refused. */
    struct mw_watcher_config cfg = { .max_memory_bytes = 64 * 1024 };
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(&cfg, &w), 0);
    size_t big = 16u << 20;
    unsigned char *b = map(big / ps);
    CHECK_EQ_INT(mw_watcher_watch(w, b, big, NULL, NULL), MW_ELIMIT);
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.tracked_objects, 0);
    CHECK_EQ_INT(st.memory_used_bytes, 0);
    CHECK_EQ_INT(st.memory_limit_bytes, 64 * 1024);
    mw_watcher_destroy(w);

    /* Room for exactly one old copy: the second page written has no old value. */
    mw_watcher *probe;
    CHECK_EQ_INT(mw_watcher_create(NULL, &probe), 0);
    CHECK_EQ_INT(mw_watcher_watch(probe, b, ps, NULL, NULL), 0);
    CHECK_EQ_INT(mw_watcher_watch(probe, b + ps, ps, NULL, NULL), 0);
    mw_watcher_stats(probe, &st);
    size_t meta = st.memory_used_bytes;
    mw_watcher_destroy(probe);
    cfg.max_memory_bytes = meta + ps + sizeof(struct mw_slot_meta);
    CHECK_EQ_INT(mw_watcher_create(&cfg, &w), 0);
    uint64_t r0, r1;
    memset(b, 0x10, 2 * ps);
    CHECK_EQ_INT(mw_watcher_watch(w, b, ps, NULL, &r0), 0);
    CHECK_EQ_INT(mw_watcher_watch(w, b + ps, ps, NULL, &r1), 0);
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.memory_used_bytes, meta);
    b[10] = 1;                      /* copied */
    b[ps + 20] = 2;                 /* over the limit: no copy, not blocked */
    CHECK_EQ_INT(b[ps + 20], 2);
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.memory_used_bytes, cfg.max_memory_bytes);
    CHECK_EQ_INT(check(), 2);
    CHECK_EQ_INT(rec[0].id, r0);
    CHECK_EQ_INT(rec[0].nranges, 1);
    CHECK_EQ_INT(rec[0].off[0], 10);
    CHECK(!rec[0].old_null[0]);
    CHECK_EQ_INT(rec[1].id, r1);
    CHECK_EQ_INT(rec[1].nranges, 1);
    CHECK(rec[1].old_null[0]);      /* old value unavailable: the region's bytes */
    CHECK_EQ_INT(rec[1].off[0], 0);
    CHECK_EQ_INT(rec[1].len[0], ps);
    CHECK_EQ_INT(rec[1].new_[0][20], 2);
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.old_unavailable, 1);
    CHECK_EQ_INT(st.changes, 2);
    CHECK_EQ_INT(st.memory_used_bytes, meta);   /* copies released by the check */
    /* With the budget back, the next write has its old value again. */
    b[ps + 21] = 3;
    CHECK_EQ_INT(check(), 1);
    CHECK(!rec[0].old_null[0]);
    CHECK_EQ_INT(rec[0].old[0][0], 0x10);
    mw_watcher_destroy(w);
    munmap(b, big);
}

static void test_join_dirty_page(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(1);
    uint64_t a, c;
    CHECK_EQ_INT(mw_watcher_watch(w, b, 100, NULL, &a), 0);
    b[0] = 1;                        /* page dirty, old copy taken now */
    memset(b + 1000, 7, 50);         /* initializes "B" before it is watched */
    CHECK_EQ_INT(mw_watcher_watch(w, b + 1000, 100, NULL, &c), 0);
    CHECK_EQ_INT(check(), 1);        /* only A: B's bytes predate its watch */
    CHECK_EQ_INT(rec[0].id, a);
    b[1010] = 9;
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].id, c);
    CHECK_EQ_INT(rec[0].off[0], 10);
    CHECK_EQ_INT(rec[0].old[0][0], 7);
    /* A dirty page left without regions (destroy: no check) is dropped by the next
     * check, and its memory is plain again. */
    b[20] = 2;
    mw_watcher_destroy(w);
    CHECK_EQ_INT(check(), 0);
    CHECK(!mw_engine_owns_address(b));
    munmap(b, ps);
}

/* Four threads write their regions (some sharing pages) while the main thread checks.
 * Each change is applied to a shadow copy: its old bytes must equal the shadow (nothing
 * missed before it), and after a final check the shadow equals memory (nothing lost). */
#define NT 4
#define SHARED_SLICE 1000
#define PRIV_PAGES 3
static unsigned char *shared_pages, *priv[NT];
static unsigned char *shadow[2 * NT];
static size_t region_len[2 * NT];
static unsigned char *region_addr[2 * NT];
static atomic_int stop_writers;
static int old_mismatch;

static void *writer_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
    while (!atomic_load_explicit(&stop_writers, memory_order_relaxed)) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int which = (int)(x & 1);
        unsigned char *base = region_addr[2 * t + which];
        size_t len = region_len[2 * t + which];
        size_t at = (x >> 8) % len;
        size_t n = 1 + (x >> 40) % 24;
        for (size_t i = at; i < at + n && i < len; i++)
            base[i] = (unsigned char)(x >> 32) & 0x3f;   /* small alphabet: equal rewrites */
    }
    return NULL;
}

static uint64_t stress_ids[2 * NT];

static void apply(const struct mw_change *c, void *ctx)
{
    (void)ctx;
    int k = (int)(intptr_t)c->region_user;
    for (size_t i = 0; i < c->nranges; i++) {
        const struct mw_range *r = &c->ranges[i];
        if (r->old && memcmp(shadow[k] + r->offset, r->old, r->length) != 0)
            old_mismatch++;
        memcpy(shadow[k] + r->offset, r->new_, r->length);
    }
}

static void test_threads_no_lost_change(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    shared_pages = map(1);           /* 4 slices of 1000 bytes on one page */
    for (int t = 0; t < NT; t++) {
        priv[t] = map(PRIV_PAGES);
        region_addr[2 * t] = shared_pages + t * SHARED_SLICE;
        region_len[2 * t] = SHARED_SLICE;
        region_addr[2 * t + 1] = priv[t] + 100;
        region_len[2 * t + 1] = PRIV_PAGES * ps - 200;
    }
    for (int k = 0; k < 2 * NT; k++) {
        shadow[k] = malloc(region_len[k]);
        memcpy(shadow[k], region_addr[k], region_len[k]);
        CHECK_EQ_INT(mw_watcher_watch(w, region_addr[k], region_len[k], (void *)(intptr_t)k,
                                      &stress_ids[k]), 0);
    }
    pthread_t th[NT];
    for (int t = 0; t < NT; t++)
        pthread_create(&th[t], NULL, writer_thread, (void *)(intptr_t)t);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long checks = 0, changes = 0;
    do {
        int n = mw_engine_check(apply, NULL);
        CHECK(n >= 0);
        changes += n;
        checks++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 1500000000L);
    atomic_store(&stop_writers, 1);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    changes += mw_engine_check(apply, NULL);
    fprintf(stderr, "   %ld checks, %ld changes\n", checks, changes);
    CHECK(checks > 100);
    CHECK(changes > 100);
    CHECK_EQ_INT(old_mismatch, 0);
    int lost = 0;
    for (int k = 0; k < 2 * NT; k++)
        if (memcmp(shadow[k], region_addr[k], region_len[k]) != 0)
            lost++;
    CHECK_EQ_INT(lost, 0);
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    CHECK(st.faults > 100);
    mw_watcher_destroy(w);
    for (int k = 0; k < 2 * NT; k++)
        free(shadow[k]);
}

/* Unwatching one region without a callback discards only that region's pending change:
 * another region's change, on the same page or another, is still reported by the next
 * check (it used to be re-protected and dropped with it). */
static void test_unwatch_keeps_other_changes(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(2);
    uint64_t a, c, d;
    CHECK_EQ_INT(mw_watcher_watch(w, b, 64, NULL, &a), 0);
    CHECK_EQ_INT(mw_watcher_watch(w, b + 100, 64, NULL, &c), 0);
    CHECK_EQ_INT(mw_watcher_watch(w, b + ps, 64, NULL, &d), 0);
    b[1] = 1;          /* a: discarded by its unwatch */
    b[101] = 2;        /* c: same page */
    b[ps + 1] = 3;     /* d: another page */
    CHECK_EQ_INT(mw_watcher_unwatch(w, a, NULL, NULL), 0);
    CHECK_EQ_INT(check(), 2);
    CHECK_EQ_INT(rec[0].id, c);
    CHECK_EQ_INT(rec[0].off[0], 1);
    CHECK_EQ_INT(rec[0].new_[0][0], 2);
    CHECK_EQ_INT(rec[1].id, d);
    CHECK_EQ_INT(rec[1].new_[0][0], 3);
    b[2] = 4;          /* a's bytes are plain memory now */
    CHECK_EQ_INT(check(), 0);
    CHECK_EQ_INT(mw_watcher_unwatch(w, c, NULL, NULL), 0);
    CHECK_EQ_INT(mw_watcher_unwatch(w, d, NULL, NULL), 0);
    munmap(b, 2 * ps);
    mw_watcher_destroy(w);
}

/* The hook runs inside the fault handler and writes memory of its own (the thread's
 * interpreter state), which may share a page with watched data: the page that faulted, or
 * another watched page. Neither may hang or lose the write. */
static void test_hook_writes_watched_pages(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(2);
    uint64_t ids[2];
    CHECK_EQ_INT(mw_watcher_watch(w, b, 64, NULL, &ids[0]), 0);
    CHECK_EQ_INT(mw_watcher_watch(w, b + ps, 64, NULL, &ids[1]), 0);
    alarm(20);                      /* a regression hangs: die instead */
    hook_scribble[0] = b + 2000;    /* same page as the write, outside what is watched */
    hook_scribble[1] = b + ps + 3000;   /* another watched page */
    b[3] = 7;
    hook_scribble[0] = hook_scribble[1] = NULL;
    alarm(0);
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].off[0], 3);
    CHECK(strcmp(rec[0].file, "test.py") == 0);
    CHECK_EQ_INT(b[2000], 1);
    CHECK_EQ_INT(b[ps + 3000], 1);
    b[ps + 5] = 1;                  /* the other page still faults for its own writes */
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(rec[0].off[0], 5);
    for (int i = 0; i < 2; i++)
        mw_watcher_unwatch(w, ids[i], NULL, NULL);
    munmap(b, 2 * ps);
    mw_watcher_destroy(w);
}

/* A check compares the pages written since the last one, never every watched page: with
 * 10,000 watched pages and 10 written, it compares 10. (bench/bench_engine.c times it.) */
static void test_check_cost_follows_dirty_pages(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    size_t n = 10000;
    unsigned char *b = map(n);
    uint64_t *ids = malloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(mw_watcher_watch(w, b + i * ps, 64, NULL, &ids[i]), 0);
    mw_engine_check(NULL, NULL);
    struct mw_watcher_stats before, after;
    mw_watcher_stats(w, &before);
    for (size_t i = 0; i < 10; i++)
        b[(i * 997 % n) * ps] = 1;
    CHECK_EQ_INT(check(), 10);
    mw_watcher_stats(w, &after);
    CHECK_EQ_INT(after.pages_compared - before.pages_compared, 10);
    CHECK_EQ_INT(check(), 0);    /* nothing written since: nothing compared */
    struct mw_watcher_stats idle;
    mw_watcher_stats(w, &idle);
    CHECK_EQ_INT(idle.pages_compared, after.pages_compared);
    for (size_t i = 0; i < n; i++)
        mw_watcher_unwatch(w, ids[i], NULL, NULL);
    free(ids);
    munmap(b, n * ps);
    mw_watcher_destroy(w);
}

static void test_fork_detach_and_stop(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *b = map(2);
    uint64_t id;
    CHECK_EQ_INT(mw_watcher_watch(w, b, 2 * ps, NULL, &id), 0);
    b[0] = 1;                        /* one page dirty at fork time, one clean */
    pid_t pid = fork();
    if (pid == 0) {
        mw_engine_detach_after_fork();
        signal(SIGSEGV, SIG_DFL);    /* any fault now would kill the child */
        b[ps + 1] = 5;
        b[2] = 6;
        int ok = b[ps + 1] == 5 && !mw_engine_owns_address(b + ps) &&
                 mw_engine_check(record, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(check(), 1);        /* the parent is unaffected */
    CHECK_EQ_INT(rec[0].off[0], 0);

    /* Stop: everything is unprotected; no fault, no change afterwards. */
    mw_engine_unprotect_all();
    struct mw_watcher_stats st;
    mw_watcher_stats(w, &st);
    uint64_t faults = st.faults;
    b[ps + 3] = 9;
    b[4] = 9;
    mw_watcher_stats(w, &st);
    CHECK_EQ_INT(st.faults, faults);
    CHECK_EQ_INT(check(), 0);
    CHECK(!mw_engine_owns_address(b));
    mw_watcher_destroy(w);
    munmap(b, 2 * ps);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    rec = calloc(MAXC, sizeof(*rec));
    /* The whole file runs under each backend: this process with the default one, and a
     * child with MEMWATCH_DISABLE_UFFD=1 (a kernel without userfaultfd: mprotect). */
    const char *off = getenv("MEMWATCH_DISABLE_UFFD");
    int child_status = 0;
    if (!off && mw_engine_backend_available(MW_BACKEND_UFFD)) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("MEMWATCH_DISABLE_UFFD", "1", 1);
            execl("/proc/self/exe", "test_watcher", (char *)NULL);
            _exit(127);
        }
        waitpid(pid, &child_status, 0);
        CHECK(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0);
    }
    CHECK_EQ_INT(mw_engine_init(), 0);
    mw_engine_set_writer_hook(hook, NULL);
    enum mw_backend expect = off ? MW_BACKEND_MPROTECT : MW_BACKEND_UFFD;
    fprintf(stderr, "backend: %s\n", mw_backend_name(mw_engine_backend()));
    CHECK(strcmp(mw_backend_name(MW_BACKEND_MPROTECT), "mprotect") == 0);
    CHECK(strcmp(mw_backend_name(MW_BACKEND_UFFD), "uffd") == 0);
    if (off) {
        CHECK_EQ_INT(mw_engine_default_backend(), MW_BACKEND_MPROTECT);
        CHECK(!mw_engine_backend_available(MW_BACKEND_UFFD));
        struct mw_watcher_config uffd = { .backend = MW_BACKEND_UFFD };
        mw_watcher *none;
        CHECK_EQ_INT(mw_watcher_create(&uffd, &none), MW_EBACKEND);
    } else {
        CHECK_EQ_INT(mw_engine_default_backend(), expect);
        CHECK_EQ_INT(mw_engine_backend(), expect);
    }
    RUN(test_exact_ranges);
    RUN(test_validation);
    RUN(test_many_regions_per_page);
    RUN(test_region_spanning_pages);
    RUN(test_sweep_takes_pages_ahead);
    RUN(test_hot_hook_may_write_the_busy_page);
    RUN(test_gaps_between_small_regions);
    RUN(test_memory_limit);
    RUN(test_join_dirty_page);
    RUN(test_threads_no_lost_change);
    RUN(test_unwatch_keeps_other_changes);
    RUN(test_hook_writes_watched_pages);
    RUN(test_check_cost_follows_dirty_pages);
    RUN(test_fork_detach_and_stop);    /* last: it stops the engine */
    return UNIT_DONE();
}
