/* page_pool.c: capacity in segments mapped on demand, reuse, lock-free allocation under
 * contention, and copies charged to their account. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "page_pool.h"
#include "unit.h"

static size_t ps;

/* Capacity comes in whole segments, mapped only when committed, never past the maximum. */
static void test_capacity_follows_commit(void)
{
    struct mw_page_pool *p;
    const size_t max = MW_POOL_SEGMENT_SLOTS + 16;
    CHECK_EQ_INT(mw_page_pool_create(ps, max, NULL, &p), 0);
    CHECK_EQ_INT(mw_page_pool_alloc(p), MW_SLOT_NONE);      /* nothing committed */
    CHECK_EQ_INT(mw_page_pool_commit(p, 16), 0);
    CHECK_EQ_INT(mw_page_pool_committed(p), MW_POOL_SEGMENT_SLOTS);
    uint32_t *got = calloc(MW_POOL_SEGMENT_SLOTS, sizeof *got);
    int distinct = 1;
    for (uint32_t i = 0; i < MW_POOL_SEGMENT_SLOTS; i++) {
        got[i] = mw_page_pool_alloc(p);
        CHECK(got[i] != MW_SLOT_NONE);
        if (i < 64)
            for (uint32_t j = 0; j < i; j++)
                distinct &= got[j] != got[i];
        memset(mw_page_pool_data(p, got[i]), (int)(i & 0xff), ps);   /* writable */
    }
    CHECK(distinct);
    CHECK_EQ_INT(mw_page_pool_alloc(p), MW_SLOT_NONE);      /* full */
    CHECK_EQ_INT(mw_page_pool_in_use(p), MW_POOL_SEGMENT_SLOTS);
    mw_page_pool_free(p, got[3]);
    CHECK_EQ_INT(mw_page_pool_alloc(p), got[3]);            /* reused */
    CHECK_EQ_INT(((unsigned char *)mw_page_pool_data(p, got[3]))[0], 3);
    CHECK_EQ_INT(mw_page_pool_commit(p, 100000), 0);        /* a second segment, clamped */
    CHECK_EQ_INT(mw_page_pool_committed(p), max);
    uint32_t next = mw_page_pool_alloc(p);
    CHECK_EQ_INT(next, MW_POOL_SEGMENT_SLOTS);              /* the new segment's first slot */
    memset(mw_page_pool_data(p, next), 9, ps);
    CHECK(mw_page_pool_overlaps(p, (uintptr_t)mw_page_pool_data(p, 5), 1));
    CHECK(mw_page_pool_overlaps(p, (uintptr_t)mw_page_pool_data(p, next) + 100, 1));
    CHECK(mw_page_pool_overlaps(p, (uintptr_t)mw_page_pool_meta(p, 5), 8));
    int x;
    CHECK(!mw_page_pool_overlaps(p, (uintptr_t)&x, sizeof(x)));
    free(got);
    mw_page_pool_destroy(p);
}

static struct mw_page_pool *shared;
static atomic_int errors;

static void *churn(void *arg)
{
    unsigned char tag = (unsigned char)(uintptr_t)arg;
    uint32_t held[8];
    for (int round = 0; round < 20000; round++) {
        int n = 0;
        for (; n < 8; n++) {
            held[n] = mw_page_pool_alloc(shared);
            if (held[n] == MW_SLOT_NONE)
                break;
            unsigned char *d = mw_page_pool_data(shared, held[n]);
            d[0] = tag;
            d[ps - 1] = tag;
        }
        for (int i = 0; i < n; i++) {
            unsigned char *d = mw_page_pool_data(shared, held[i]);
            if (d[0] != tag || d[ps - 1] != tag)   /* someone else got our slot */
                atomic_fetch_add(&errors, 1);
            mw_page_pool_free(shared, held[i]);
        }
    }
    return NULL;
}

static void test_concurrent_alloc_free(void)
{
    CHECK_EQ_INT(mw_page_pool_create(ps, 24, NULL, &shared), 0);   /* fewer than 4 x 8 */
    CHECK_EQ_INT(mw_page_pool_commit(shared, 24), 0);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&errors), 0);
    CHECK_EQ_INT(mw_page_pool_in_use(shared), 0);
    /* Every slot is back: all 24 can be taken again, and no more. */
    int n = 0;
    while (mw_page_pool_alloc(shared) != MW_SLOT_NONE)
        n++;
    CHECK_EQ_INT(n, 24);
    mw_page_pool_destroy(shared);
}

/* A copy holds the page's bytes and charges its account; its release gives both back; an
 * account at its limit gets no copy and is charged nothing. */
static void test_copies_are_charged(void)
{
    static struct mw_acct accts[2];
    struct mw_page_pool *p;
    CHECK_EQ_INT(mw_page_pool_create(ps, 8, accts, &p), 0);
    CHECK_EQ_INT(mw_page_pool_commit(p, 8), 0);
    size_t cost = mw_page_pool_copy_cost(p);
    CHECK(cost >= ps);
    atomic_store(&accts[1].limit, 2 * cost);
    unsigned char *page = calloc(1, ps);
    page[7] = 0x5A;
    uint32_t a = mw_page_pool_take_copy(p, 1, page);
    uint32_t b = mw_page_pool_take_copy(p, 1, page);
    CHECK(a != MW_SLOT_NONE && b != MW_SLOT_NONE);
    CHECK_EQ_INT(((unsigned char *)mw_page_pool_data(p, a))[7], 0x5A);
    CHECK_EQ_INT(mw_page_pool_meta(p, a)->acct, 1);
    CHECK_EQ_INT(mw_page_pool_meta(p, a)->writer.tid, 0);
    CHECK_EQ_INT(atomic_load(&accts[1].used), 2 * cost);
    CHECK_EQ_INT(atomic_load(&accts[1].copies), 2);
    CHECK_EQ_INT(mw_page_pool_take_copy(p, 1, page), MW_SLOT_NONE);   /* at the limit */
    CHECK_EQ_INT(atomic_load(&accts[1].used), 2 * cost);
    mw_page_pool_release_copy(p, a);
    CHECK_EQ_INT(atomic_load(&accts[1].used), cost);
    CHECK_EQ_INT(atomic_load(&accts[1].copies), 1);
    CHECK_EQ_INT(mw_page_pool_in_use(p), 1);
    mw_page_pool_release_copy(p, b);
    CHECK_EQ_INT(atomic_load(&accts[1].used), 0);
    CHECK_EQ_INT(mw_page_pool_in_use(p), 0);
    free(page);
    mw_page_pool_destroy(p);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_capacity_follows_commit);
    RUN(test_concurrent_alloc_free);
    RUN(test_copies_are_charged);
    return UNIT_DONE();
}
