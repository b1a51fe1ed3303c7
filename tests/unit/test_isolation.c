/* isolation.c and mw_engine_fill: small objects share pages by size class and only with each
 * other, large ones get pages of their own, freed pages are reused; writing into a
 * protected page of watched objects costs no fault, reports no change, and loses no write
 * that another thread makes meanwhile. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "isolation.h"
#include "unit.h"
#include "watcher.h"

static size_t ps;

static uintptr_t page_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(ps - 1);
}

static void test_small_objects_pack_by_class(void)
{
    struct mw_isolation_stats before, st;
    mw_isolation_stats(&before);
    unsigned char *a = mw_isolation_alloc(24), *b = mw_isolation_alloc(30), *c = mw_isolation_alloc(1000);
    CHECK(a && b && c);
    CHECK(((uintptr_t)a & 15) == 0 && ((uintptr_t)b & 15) == 0 && ((uintptr_t)c & 15) == 0);
    CHECK(page_of(a) == page_of(b));          /* one class: one page */
    CHECK(page_of(a) != page_of(c));          /* another class: another page */
    CHECK(b >= a + 24 || a >= b + 30);        /* no overlap */
    memset(a, 1, 24);
    memset(b, 2, 30);
    CHECK_EQ_INT(a[23], 1);
    mw_isolation_stats(&st);
    CHECK_EQ_INT(st.objects, before.objects + 3);
    CHECK_EQ_INT(st.pages, before.pages + 2);
    mw_isolation_free(a, 24);
    unsigned char *d = mw_isolation_alloc(20);  /* the freed slot is reused */
    CHECK(d == a);
    mw_isolation_free(b, 30);
    mw_isolation_free(d, 20);
    mw_isolation_free(c, 1000);
    mw_isolation_stats(&st);
    CHECK_EQ_INT(st.objects, before.objects);
    CHECK_EQ_INT(st.pages, before.pages);     /* emptied pages are given back */
}

static void test_large_objects_get_their_own_pages(void)
{
    unsigned char *big = mw_isolation_alloc(3 * ps + 5);
    unsigned char *small = mw_isolation_alloc(64);
    CHECK(big && small);
    CHECK((uintptr_t)big % ps == 0);
    CHECK(page_of(small) < (uintptr_t)big || page_of(small) >= (uintptr_t)big + 4 * ps);
    memset(big, 7, 3 * ps + 5);
    mw_isolation_free(big, 3 * ps + 5);
    mw_isolation_free(small, 64);
}

static unsigned char *shared_page;
static atomic_int stop_writer;
static atomic_uint writes_seen;
static unsigned writes_done;

static void *write_first_object(void *arg)
{
    (void)arg;
    unsigned n = 0;
    while (!atomic_load(&stop_writer)) {
        n++;
        memcpy(shared_page, &n, sizeof n);   /* object A: the first 16 bytes */
        atomic_store(&writes_seen, n);
    }
    writes_done = n;
    return NULL;
}

static unsigned last_value;
static int changes_of_a, changes_of_b;

static void on_change(const struct mw_change *c, void *ctx)
{
    (void)ctx;
    if (c->region_user == (void *)1) {
        changes_of_a++;
        const struct mw_range *r = &c->ranges[c->nranges - 1];
        if (r->offset == 0 && r->length >= sizeof last_value)
            memcpy(&last_value, r->new_, sizeof last_value);
        else if (r->offset < sizeof last_value)
            memcpy((unsigned char *)&last_value + r->offset, r->new_,
                   sizeof last_value - r->offset < r->length ? sizeof last_value - r->offset
                                                             : r->length);
    } else {
        changes_of_b++;
    }
}

static void test_fill_without_fault_or_loss(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    shared_page = mw_isolation_alloc(16);        /* object A */
    unsigned char *b = mw_isolation_alloc(16);   /* object B, on the same page */
    CHECK(page_of(b) == page_of(shared_page));
    memset(shared_page, 0, 16);
    memset(b, 0, 16);
    CHECK_EQ_INT(mw_watcher_watch(w, shared_page, 16, (void *)1, NULL), 0);
    struct mw_watcher_stats st0, st1;
    mw_watcher_stats(w, &st0);

    /* A protected page of A's: B's bytes go in without a fault and without a change. */
    static const unsigned char hello[16] = "hello, isolated";
    CHECK_EQ_INT(mw_engine_fill(b, hello, 16), 0);
    CHECK(memcmp(b, hello, 16) == 0);
    mw_watcher_stats(w, &st1);
    CHECK_EQ_INT(st1.faults, st0.faults);
    CHECK_EQ_INT(mw_watcher_watch(w, b, 16, (void *)2, NULL), 0);
    CHECK_EQ_INT(mw_engine_check(on_change, NULL), 0);

    /* Another thread writes A all the while: every fill keeps B's bytes out of A's changes,
     * and A's last value is found. */
    unsigned char *c = mw_isolation_alloc(16);   /* C: not watched, same page */
    CHECK(page_of(c) == page_of(shared_page));
    pthread_t t;
    pthread_create(&t, NULL, write_first_object, NULL);
    while (atomic_load(&writes_seen) == 0)
        sched_yield();
    unsigned char v[16];
    for (int i = 0; i < 20000 || atomic_load(&writes_seen) < 1000; i++) {
        memset(v, i & 0xff, sizeof v);
        mw_engine_check(on_change, NULL);      /* A's page CLEAN and protected again */
        CHECK_EQ_INT(mw_engine_fill(c, v, sizeof v), 0);
    }
    atomic_store(&stop_writer, 1);
    pthread_join(t, NULL);
    mw_engine_check(on_change, NULL);
    CHECK(changes_of_a > 0);
    CHECK_EQ_INT(changes_of_b, 0);
    CHECK_EQ_INT(last_value, writes_done);
    CHECK(memcmp(c, v, sizeof v) == 0);
    mw_isolation_free(c, 16);
    mw_watcher_destroy(w);
    mw_isolation_free(shared_page, 16);
    mw_isolation_free(b, 16);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_small_objects_pack_by_class);
    RUN(test_large_objects_get_their_own_pages);
    RUN(test_fill_without_fault_or_loss);
    return UNIT_DONE();
}
