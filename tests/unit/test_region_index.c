/* region_index.c: lookups, growth, tombstones, reclamation, and lock-free readers. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "region_index.h"
#include "unit.h"

static size_t ps;
#define BASE ((uintptr_t)0x100000000000ull)

static void test_insert_lookup_grow(void)
{
    struct mw_region_index *idx;
    CHECK_EQ_INT(mw_region_index_create(ps, &idx), 0);
    CHECK(mw_region_index_lookup(idx, BASE) == NULL);
    int bad = 0;
    for (size_t i = 0; i < 100000; i++) {
        struct mw_page *e = mw_region_index_page_new(idx, BASE + i * ps);
        if (!e || mw_region_index_insert(idx, e) != 0)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mw_region_index_count(idx), 100000);
    for (size_t i = 0; i < 100000; i++) {
        struct mw_page *e = mw_region_index_lookup(idx, BASE + i * ps);
        if (!e || e->addr != BASE + i * ps)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(mw_region_index_lookup(idx, BASE + 100000 * ps) == NULL);
    CHECK(mw_region_index_lookup(idx, BASE - ps) == NULL);

    /* Remove every other page, then check both halves. */
    for (size_t i = 0; i < 100000; i += 2)
        mw_region_index_remove(idx, mw_region_index_lookup(idx, BASE + i * ps));
    CHECK_EQ_INT(mw_region_index_count(idx), 50000);
    for (size_t i = 0; i < 100000; i++) {
        struct mw_page *e = mw_region_index_lookup(idx, BASE + i * ps);
        if ((i % 2 == 0) != (e == NULL))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* Churn through tombstones: re-insert and remove many times; the table must keep
     * working (rebuilds) and reclaim must recycle entries. */
    for (int round = 0; round < 10; round++) {
        for (size_t i = 0; i < 100000; i += 2) {
            struct mw_page *e = mw_region_index_page_new(idx, BASE + i * ps);
            if (!e || mw_region_index_insert(idx, e) != 0)
                bad++;
        }
        for (size_t i = 0; i < 100000; i += 2)
            mw_region_index_remove(idx, mw_region_index_lookup(idx, BASE + i * ps));
        mw_region_index_reclaim(idx);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mw_region_index_count(idx), 50000);
    CHECK(mw_region_index_lookup(idx, BASE + 3 * ps) != NULL);
    CHECK(mw_region_index_lookup(idx, BASE + 4 * ps) == NULL);

    struct mw_page *e = mw_region_index_lookup(idx, BASE + ps);
    CHECK(mw_region_index_overlaps(idx, (uintptr_t)e, sizeof(*e)));
    int local;
    CHECK(!mw_region_index_overlaps(idx, (uintptr_t)&local, sizeof(local)));
    mw_region_index_destroy(idx);
}

static void count_fn(struct mw_page *e, void *ctx)
{
    (void)e;
    (*(size_t *)ctx)++;
}

static void test_foreach_and_forget(void)
{
    struct mw_region_index *idx;
    CHECK_EQ_INT(mw_region_index_create(ps, &idx), 0);
    for (size_t i = 0; i < 5000; i++)
        mw_region_index_insert(idx, mw_region_index_page_new(idx, BASE + i * 7 * ps));
    size_t n = 0;
    mw_region_index_foreach(idx, count_fn, &n);
    CHECK_EQ_INT(n, 5000);
    mw_region_index_forget_all(idx);
    CHECK(mw_region_index_lookup(idx, BASE) == NULL);
    mw_region_index_destroy(idx);
}

/* A reader looks up pages that stay indexed the whole time while the writer grows the
 * table and churns other pages: every lookup must succeed. */
static struct mw_region_index *shared;
static atomic_int stop, misses, started;
static atomic_long lookups;

static void *reader(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&stop)) {
        for (size_t i = 0; i < 1000; i++) {
            mw_region_index_enter(shared);
            struct mw_page *e = mw_region_index_lookup(shared, BASE + i * ps);
            if (!e || e->addr != BASE + i * ps)
                atomic_fetch_add(&misses, 1);
            mw_region_index_leave(shared);
        }
        atomic_fetch_add(&lookups, 1000);
    }
    return NULL;
}

static void test_lock_free_readers(void)
{
    CHECK_EQ_INT(mw_region_index_create(ps, &shared), 0);
    for (size_t i = 0; i < 1000; i++)
        mw_region_index_insert(shared, mw_region_index_page_new(shared, BASE + i * ps));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    uintptr_t other = BASE + 10000000 * ps;
    /* The churn goes on until the readers have looked up pages while it ran, however late
     * a loaded machine lets them start. */
    while (atomic_load(&started) < 2)
        sched_yield();
    long before = atomic_load(&lookups);
    for (int round = 0; round < 20 || atomic_load(&lookups) == before; round++) {
        for (size_t i = 0; i < 20000; i++)
            mw_region_index_insert(shared, mw_region_index_page_new(shared, other + i * ps));
        for (size_t i = 0; i < 20000; i++)
            mw_region_index_remove(shared, mw_region_index_lookup(shared, other + i * ps));
        mw_region_index_reclaim(shared);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&misses), 0);
    mw_region_index_destroy(shared);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_insert_lookup_grow);
    RUN(test_foreach_and_forget);
    RUN(test_lock_free_readers);
    return UNIT_DONE();
}
