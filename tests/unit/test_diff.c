/* diff.c: exact changed runs against a byte-by-byte reference. */
#include <stdint.h>
#include <string.h>

#include "diff.h"
#include "unit.h"

struct runs {
    size_t n;
    size_t off[8192], len[8192];
};

static int collect(size_t off, size_t len, void *ctx)
{
    struct runs *r = ctx;
    r->off[r->n] = off;
    r->len[r->n] = len;
    r->n++;
    return 0;
}

/* The maximal runs of differing bytes, the slow way. */
static void reference(const unsigned char *a, const unsigned char *b, size_t len, struct runs *r)
{
    r->n = 0;
    for (size_t i = 0; i < len;) {
        if (a[i] == b[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && a[j] != b[j])
            j++;
        r->off[r->n] = i;
        r->len[r->n] = j - i;
        r->n++;
        i = j;
    }
}

static int same_runs(const struct runs *x, const struct runs *y)
{
    if (x->n != y->n)
        return 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->off[i] != y->off[i] || x->len[i] != y->len[i])
            return 0;
    return 1;
}

static unsigned char a[4096 + 64], b[4096 + 64];
static struct runs got, want;

static void test_equal_is_no_change(void)
{
    memset(a, 7, sizeof(a));
    memcpy(b, a, sizeof(b));
    got.n = 0;
    CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, collect, &got), 0);
    CHECK_EQ_INT(got.n, 0);
    CHECK_EQ_INT(mw_diff_ranges(a, b, 0, collect, &got), 0);
}

static void test_single_bytes(void)
{
    size_t where[] = { 0, 1, 15, 16, 17, 63, 64, 100, 4095 };
    for (size_t k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
        memset(a, 0, 4096);
        memset(b, 0, 4096);
        b[where[k]] = 1;
        got.n = 0;
        CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, collect, &got), 1);
        CHECK_EQ_INT(got.off[0], where[k]);
        CHECK_EQ_INT(got.len[0], 1);
    }
}

static void test_runs_across_blocks(void)
{
    memset(a, 0, 4096);
    memset(b, 0, 4096);
    memset(b + 10, 9, 30);      /* crosses the 16- and 32-byte boundaries */
    memset(b + 60, 9, 200);     /* crosses a 64-byte skip block */
    b[300] = 1;
    b[302] = 1;                 /* separated by one equal byte: two runs */
    got.n = 0;
    CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, collect, &got), 4);
    CHECK_EQ_INT(got.off[0], 10);
    CHECK_EQ_INT(got.len[0], 30);
    CHECK_EQ_INT(got.off[1], 60);
    CHECK_EQ_INT(got.len[1], 200);
    CHECK_EQ_INT(got.off[2], 300);
    CHECK_EQ_INT(got.off[3], 302);
}

static void test_everything_changed(void)
{
    memset(a, 0, 4096);
    memset(b, 0xff, 4096);
    got.n = 0;
    CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, collect, &got), 1);
    CHECK_EQ_INT(got.off[0], 0);
    CHECK_EQ_INT(got.len[0], 4096);
}

static void test_alternating(void)
{
    memset(a, 0, 4096);
    memset(b, 0, 4096);
    for (size_t i = 0; i < 4096; i += 2)
        b[i] = 1;
    got.n = 0;
    CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, collect, &got), 2048);
    reference(a, b, 4096, &want);
    CHECK(same_runs(&got, &want));
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_random_against_reference(void)
{
    int bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = iter < 300 ? (size_t)iter : 1 + next_rand() % 4096;
        size_t shift = next_rand() % 16;          /* unaligned starts */
        for (size_t i = 0; i < len + 16; i++)
            a[i] = (unsigned char)next_rand();
        memcpy(b, a, len + 16);
        int nchanges = (int)(next_rand() % 12);
        for (int c = 0; c < nchanges; c++) {
            size_t at = next_rand() % (len ? len : 1), n = 1 + next_rand() % 40;
            for (size_t i = at; i < at + n && i < len; i++)
                b[shift + i] = (unsigned char)(b[shift + i] + 1 + next_rand() % 3);
        }
        got.n = 0;
        long rc = mw_diff_ranges(a + shift, b + shift, len, collect, &got);
        reference(a + shift, b + shift, len, &want);
        if (rc != (long)want.n || !same_runs(&got, &want))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* Runs at most gap equal bytes apart joined, from the reference's exact runs. */
static void join_reference(struct runs *r, size_t gap)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (k && r->off[i] - (r->off[k - 1] + r->len[k - 1]) <= gap) {
            r->len[k - 1] = r->off[i] + r->len[i] - r->off[k - 1];
            continue;
        }
        r->off[k] = r->off[i];
        r->len[k] = r->len[i];
        k++;
    }
    r->n = k;
}

static void test_joined_against_reference(void)
{
    static const size_t gaps[] = {16, 17, 64, 100, 4096};
    int bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = iter < 300 ? (size_t)iter : 1 + next_rand() % 4096;
        size_t shift = next_rand() % 16, gap = gaps[iter % 5];
        for (size_t i = 0; i < len + 16; i++)
            a[i] = (unsigned char)next_rand();
        memcpy(b, a, len + 16);
        int nchanges = (int)(next_rand() % 40);
        for (int c = 0; c < nchanges; c++) {
            size_t at = next_rand() % (len ? len : 1), n = 1 + next_rand() % 40;
            for (size_t i = at; i < at + n && i < len; i++)
                b[shift + i] = (unsigned char)(b[shift + i] + 1 + next_rand() % 3);
        }
        got.n = 0;
        long rc = mw_diff_ranges_joined(a + shift, b + shift, len, gap, collect, &got);
        reference(a + shift, b + shift, len, &want);
        join_reference(&want, gap);
        if (rc != (long)want.n || !same_runs(&got, &want))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static int stop_after_one(size_t off, size_t len, void *ctx)
{
    (void)off;
    (void)len;
    (*(int *)ctx)++;
    return -42;
}

static void test_emit_can_stop(void)
{
    memset(a, 0, 4096);
    memset(b, 0, 4096);
    b[5] = 1;
    b[500] = 1;
    int calls = 0;
    CHECK_EQ_INT(mw_diff_ranges(a, b, 4096, stop_after_one, &calls), -42);
    CHECK_EQ_INT(calls, 1);
}

int main(void)
{
    RUN(test_equal_is_no_change);
    RUN(test_single_bytes);
    RUN(test_runs_across_blocks);
    RUN(test_everything_changed);
    RUN(test_alternating);
    RUN(test_random_against_reference);
    RUN(test_joined_against_reference);
    RUN(test_emit_can_stop);
    return UNIT_DONE();
}
