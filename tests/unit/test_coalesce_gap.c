/* mw_engine_set_coalesce_gap: changed runs of a page at most `gap` bytes apart come out as
 * one range, aligned to 16 bytes, whose unchanged bytes are equal in old and new; farther
 * runs and runs on other pages are ranges of their own, and the default (0) stays exact.
 * A dense update of floats (every element written, a few bytes of each unchanged) is
 * then a handful of ranges, not one per element. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "watcher.h"

static size_t ps;

#define MAXR 4096
static size_t nranges;
static size_t off[MAXR], len[MAXR];
static int old_ok[MAXR];   /* old and new agree wherever the bytes did not change */
static unsigned char *base;

static void record(const struct mw_change *c, void *ctx)
{
    (void)ctx;
    nranges = c->nranges;
    for (size_t i = 0; i < c->nranges && i < MAXR; i++) {
        off[i] = c->ranges[i].offset;
        len[i] = c->ranges[i].length;
        old_ok[i] = c->ranges[i].old != NULL;
        /* Bytes inside a range that did not change are the same before and after, and are
         * what memory holds. */
        for (size_t b = 0; c->ranges[i].old && b < len[i]; b++)
            if (c->ranges[i].new_[b] != base[off[i] + b])
                old_ok[i] = 0;
    }
}

static int check(void)
{
    nranges = 0;
    return mw_engine_check(record, NULL);
}

static void exact_by_default(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    base = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(base != MAP_FAILED);
    CHECK_EQ_INT(mw_watcher_watch(w, base, 2 * ps, NULL, NULL), 0);
    base[10] = 1;
    base[20] = 1;
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(nranges, 2);
    mw_watcher_destroy(w);
    munmap(base, 2 * ps);
}

static void runs_within_the_gap_join(void)
{
    mw_engine_set_coalesce_gap(16);
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    base = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ_INT(mw_watcher_watch(w, base, 2 * ps, NULL, NULL), 0);
    base[10] = 1;
    base[20] = 1;        /* 9 unchanged bytes between: joined */
    base[100] = 1;       /* 79 from the last: a range of its own */
    base[ps + 3] = 1;    /* another page: its own */
    CHECK_EQ_INT(check(), 1);
    CHECK_EQ_INT(nranges, 3);
    /* Each at multiples of 16 bytes from the region's start, with the bytes around. */
    CHECK_EQ_INT(off[0], 0);
    CHECK_EQ_INT(len[0], 32);
    CHECK(old_ok[0]);
    CHECK_EQ_INT(off[1], 96);
    CHECK_EQ_INT(len[1], 16);
    CHECK_EQ_INT(off[2], ps);
    CHECK_EQ_INT(len[2], 16);

    /* Every float of a page incremented: the low bytes of most stay as they were. */
    float *f = (float *)(void *)base;
    for (size_t i = 0; i < 2 * ps / sizeof *f; i++)
        f[i] = 1.0f;
    CHECK_EQ_INT(check(), 1);
    for (size_t i = 0; i < 2 * ps / sizeof *f; i++)
        f[i] += 1.0f;
    CHECK_EQ_INT(check(), 1);
    CHECK(nranges <= 2);
    CHECK(old_ok[0]);
    mw_watcher_destroy(w);
    munmap(base, 2 * ps);
    mw_engine_set_coalesce_gap(0);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    CHECK_EQ_INT(mw_engine_init(), 0);
    RUN(exact_by_default);
    RUN(runs_within_the_gap_join);
    return UNIT_DONE();
}
