/* arena.c: small blocks packed by size on pages of their own, found from any pointer,
 * given back and reused; and mw_engine_write, which puts bytes next to watched ones on a
 * protected page without a fault, without hiding a write the program makes meanwhile, and
 * leaves the page protected so that the next write still names its writer. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "unit.h"
#include "watcher.h"

static size_t ps;

static void test_blocks_are_packed_by_size(void)
{
    struct mw_arena_stats before, after;
    mw_arena_stats(&before);
    size_t usable = 0;
    unsigned char *a = mw_arena_alloc(65, &usable);
    CHECK(a != NULL);
    CHECK_EQ_INT(usable, 80);
    CHECK_EQ_INT((uintptr_t)a % 16, 0);
    unsigned char *b = mw_arena_alloc(70, &usable);
    CHECK(b != NULL);
    /* Same class, same page, next to each other. */
    CHECK_EQ_INT((uintptr_t)a / ps, (uintptr_t)b / ps);
    CHECK(mw_arena_owns(a) && mw_arena_owns(b) && mw_arena_owns(a + 10));
    CHECK_EQ_INT(mw_arena_usable(b), 80);
    unsigned char *big = mw_arena_alloc(2000, &usable);
    CHECK(big != NULL);
    CHECK_EQ_INT(usable, 2048);
    CHECK((uintptr_t)big / ps != (uintptr_t)a / ps);    /* another class, another page */
    mw_arena_stats(&after);
    CHECK_EQ_INT(after.blocks - before.blocks, 3);
    CHECK_EQ_INT(after.pages - before.pages, 2);
    mw_arena_free(a);
    mw_arena_free(b);
    mw_arena_free(big);
    mw_arena_stats(&after);
    CHECK_EQ_INT(after.blocks, before.blocks);
    CHECK_EQ_INT(after.pages, before.pages);
}

static void test_out_of_range_and_foreign(void)
{
    size_t usable;
    CHECK(mw_arena_alloc(0, &usable) == NULL);
    CHECK(mw_arena_alloc(MW_ARENA_MAX_BLOCK + 1, &usable) == NULL);
    int on_stack;
    void *heap = malloc(64);
    CHECK(!mw_arena_owns(&on_stack));
    CHECK(!mw_arena_owns(heap));
    CHECK(!mw_arena_owns(NULL));
    free(heap);
}

/* Thousands of blocks across chunks: each found, each distinct, all given back; the pages
 * emptied are reused for another size. */
static void test_many_blocks_and_reuse(void)
{
    enum { N = 40000 };   /* 40000 x 64 bytes: more than one 2 MiB chunk */
    unsigned char **p = calloc(N, sizeof *p);
    size_t usable;
    struct mw_arena_stats st;
    for (int i = 0; i < N; i++) {
        p[i] = mw_arena_alloc(64, &usable);
        CHECK(p[i] != NULL);
        memset(p[i], (unsigned char)i, 64);
    }
    for (int i = 0; i < N; i++) {
        CHECK(mw_arena_owns(p[i]));
        CHECK_EQ_INT(p[i][63], (unsigned char)i);           /* nothing overlapped */
    }
    mw_arena_stats(&st);
    CHECK_EQ_INT(st.pages, (N + 63) / 64);
    for (int i = 0; i < N; i++)
        mw_arena_free(p[i]);
    mw_arena_stats(&st);
    CHECK_EQ_INT(st.blocks, 0);
    CHECK_EQ_INT(st.pages, 0);
    /* A freed block is free once: giving it back twice changes nothing. */
    unsigned char *q = mw_arena_alloc(1024, &usable);
    CHECK(q != NULL);
    mw_arena_free(q);
    mw_arena_free(q);
    mw_arena_stats(&st);
    CHECK_EQ_INT(st.blocks, 0);
    free(p);
}

struct writer_ctx {
    volatile unsigned char *byte;
    atomic_int stop, writes;
};

static void *keep_writing(void *arg)
{
    struct writer_ctx *c = arg;
    for (unsigned char v = 1; !atomic_load(&c->stop); v++) {
        *c->byte = v ? v : 1;
        atomic_fetch_add(&c->writes, 1);
    }
    return NULL;
}

struct last_change {
    int n;
    unsigned char value;
    uint32_t tid;
};

static void on_change(const struct mw_change *ch, void *ctx)
{
    struct last_change *l = ctx;
    l->n++;
    l->value = ch->ranges[ch->nranges - 1].new_[ch->ranges[ch->nranges - 1].length - 1];
    l->tid = ch->writer->tid;
}

/* A block written next to a watched object: no fault, the page protected again after (the
 * next write to the object faults with its writer), and a write another thread makes to
 * the object during the block's writes is found, never lost. */
static void engine_write_under(enum mw_backend backend)
{
    fprintf(stderr, "   backend %s\n", backend == MW_BACKEND_UFFD ? "uffd" : "mprotect");
    mw_watcher *w;
    struct mw_watcher_config config = { .backend = backend };
    CHECK_EQ_INT(mw_watcher_create(&config, &w), 0);
    size_t usable;
    unsigned char *obj = mw_arena_alloc(64, &usable);
    unsigned char *next = mw_arena_alloc(64, &usable);
    CHECK_EQ_INT((uintptr_t)obj / ps, (uintptr_t)next / ps);
    memset(obj, 0, 64);
    CHECK_EQ_INT(mw_watcher_watch(w, obj, 64, NULL, NULL), 0);

    struct mw_watcher_stats st0, st1;
    mw_watcher_stats(w, &st0);
    unsigned char src[64];
    memset(src, 0xab, sizeof src);
    CHECK_EQ_INT(mw_engine_write(next, src, sizeof src), 0);
    CHECK(memcmp(next, src, sizeof src) == 0);
    mw_watcher_stats(w, &st1);
    CHECK_EQ_INT(st1.faults, st0.faults);
    struct last_change l = { 0 };
    CHECK_EQ_INT(mw_engine_check(on_change, &l), 0);      /* nothing watched changed */
    CHECK_EQ_INT(l.n, 0);

    obj[3] = 9;                                          /* protected again: a fault */
    mw_watcher_stats(w, &st1);
    CHECK_EQ_INT(st1.faults, st0.faults + 1);
    CHECK_EQ_INT(mw_engine_check(on_change, &l), 1);
    CHECK_EQ_INT(l.value, 9);

    /* Another thread writes the object all along while blocks are written beside it. */
    struct writer_ctx c = { .byte = obj + 63 };
    pthread_t t;
    pthread_create(&t, NULL, keep_writing, &c);
    while (atomic_load(&c.writes) == 0)
        sched_yield();
    for (int i = 0; i < 200; i++) {
        src[0] = (unsigned char)i;
        CHECK_EQ_INT(mw_engine_write(next, src, sizeof src), 0);
    }
    atomic_store(&c.stop, 1);
    pthread_join(t, NULL);
    memset(&l, 0, sizeof l);
    mw_engine_check(on_change, &l);
    CHECK(l.n >= 1);
    CHECK_EQ_INT(l.value, obj[63]);                       /* its last value is in the trace */

    mw_watcher_destroy(w);
    mw_arena_free(obj);
    mw_arena_free(next);
}

static void test_engine_write_beside_watched_bytes(void)
{
    engine_write_under(MW_BACKEND_MPROTECT);
    if (mw_engine_backend_available(MW_BACKEND_UFFD))
        engine_write_under(MW_BACKEND_UFFD);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_blocks_are_packed_by_size);
    RUN(test_out_of_range_and_foreign);
    RUN(test_many_blocks_and_reuse);
    RUN(test_engine_write_beside_watched_bytes);
    return UNIT_DONE();
}
