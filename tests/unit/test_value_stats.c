/* value_stats.c: the fast summary of plain numbers gives exactly what mw_elem_diff and
 * mw_elem_stats_add give, for every kind it takes and for the ones it leaves to them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elements.h"
#include "mw_error.h"
#include "unit.h"
#include "value_stats.h"

static uint32_t rng = 99;
static uint32_t next_rand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

static int by_elements(const struct mw_elem_change *c, void *ctx)
{
    mw_elem_stats_add(ctx, c);
    return 0;
}

static int same_stats(const struct mw_elem_stats *a, const struct mw_elem_stats *b)
{
    return a->elements == b->elements && a->unknown == b->unknown && a->deltas == b->deltas &&
           a->nan_appeared == b->nan_appeared && a->nan_gone == b->nan_gone &&
           a->inf_appeared == b->inf_appeared && a->inf_gone == b->inf_gone &&
           (a->deltas == 0 || (a->delta_min == b->delta_min && a->delta_max == b->delta_max &&
                               fabs(a->delta_sum - b->delta_sum) <= 1e-9 * fabs(b->delta_sum)));
}

/* n items of format fmt, old and new random with some equal, some NaN/Inf for floats;
 * compared over two ranges (one with its old bytes unknown). */
static void compare(const char *fmt, size_t itemsize, size_t n)
{
    struct mw_elem_desc d = {.format = fmt, .itemsize = (int64_t)itemsize, .ndim = -1,
                             .size = n * itemsize, .contiguous = 1};
    mw_elem_layout *l;
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), 0);
    unsigned char *old = malloc(n * itemsize), *new_ = malloc(n * itemsize);
    for (size_t i = 0; i < n * itemsize; i++) {
        old[i] = (unsigned char)next_rand();
        new_[i] = i % (3 * itemsize) < itemsize ? old[i] : (unsigned char)next_rand();
    }
    if (fmt[0] == 'f' || fmt[0] == 'd') {
        for (size_t i = 0; i + 4 < n; i += 7) {
            if (itemsize == 4) {
                float v[] = {NAN, INFINITY, 1.0f, -INFINITY};
                memcpy(new_ + i * 4, &v[i % 4], 4);
                memcpy(old + (i + 3) * 4, &v[(i + 1) % 4], 4);
            } else {
                double v[] = {NAN, INFINITY, 1.0, -INFINITY};
                memcpy(new_ + i * 8, &v[i % 4], 8);
                memcpy(old + (i + 3) * 8, &v[(i + 1) % 4], 8);
            }
        }
    }
    size_t half = n / 2 * itemsize;
    struct mw_rec_range r[2] = {{0, half, old, new_},
                                {half, n * itemsize - half, NULL, new_ + half}};
    struct mw_elem_stats fast, slow;
    mw_elem_stats_init(&fast);
    mw_elem_stats_init(&slow);
    CHECK_EQ_INT(mw_value_stats_add(l, r, 2, &fast), 0);
    CHECK_EQ_INT(mw_elem_diff(l, r, 2, NULL, NULL, 0, by_elements, &slow), 0);
    if (!same_stats(&fast, &slow))
        fprintf(stderr, "format %s: summaries differ\n", fmt);
    CHECK(same_stats(&fast, &slow));
    CHECK(fast.elements > 0);
    /* Past the object: refused, nothing counted. */
    struct mw_rec_range past = {n * itemsize, itemsize, old, new_};
    struct mw_elem_stats before = fast;
    CHECK_EQ_INT(mw_value_stats_add(l, &past, 1, &fast), MW_EINVAL);
    CHECK(same_stats(&fast, &before));
    free(old);
    free(new_);
    mw_elem_layout_destroy(l);
}

static void every_kind(void)
{
    compare("f", 4, 1000);
    compare("d", 8, 1000);
    compare("b", 1, 1000);
    compare("B", 1, 1000);
    compare("h", 2, 1000);
    compare("H", 2, 1000);
    compare("i", 4, 1000);
    compare("I", 4, 1000);
    compare("q", 8, 1000);
    compare("Q", 8, 1000);
    compare("?", 1, 1000);
    /* Left to mw_elem_diff: same answers. */
    compare("e", 2, 1000);
    compare(">f", 4, 1000);
    compare("Zf", 8, 500);
    compare("T{<i:x:<d:y:}", 16, 300);
}

/* A training step's shape: many floats, each moved a little, some not at all, a NaN and
 * an Inf among them; long enough for the vector loops, with a tail. */
static void smooth_updates(const char *fmt, size_t itemsize, size_t n)
{
    struct mw_elem_desc d = {.format = fmt, .itemsize = (int64_t)itemsize, .ndim = -1,
                             .size = n * itemsize, .contiguous = 1};
    mw_elem_layout *l;
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), 0);
    unsigned char *old = malloc(n * itemsize), *new_ = malloc(n * itemsize);
    for (size_t i = 0; i < n; i++) {
        double w = ((double)next_rand() / 16777216.0 - 0.5) * 0.1;
        double w2 = i % 5 == 0 ? w : w - 1e-3 * ((double)next_rand() / 16777216.0 - 0.5);
        if (i == n / 3)
            w2 = NAN;
        if (i == n / 2)
            w = INFINITY;
        if (itemsize == 4) {
            float f = (float)w, f2 = (float)w2;
            memcpy(old + 4 * i, &f, 4);
            memcpy(new_ + 4 * i, &f2, 4);
        } else {
            memcpy(old + 8 * i, &w, 8);
            memcpy(new_ + 8 * i, &w2, 8);
        }
    }
    struct mw_rec_range r = {0, n * itemsize, old, new_};
    struct mw_elem_stats fast, slow;
    mw_elem_stats_init(&fast);
    mw_elem_stats_init(&slow);
    CHECK_EQ_INT(mw_value_stats_add(l, &r, 1, &fast), 0);
    CHECK_EQ_INT(mw_elem_diff(l, &r, 1, NULL, NULL, 0, by_elements, &slow), 0);
    CHECK(same_stats(&fast, &slow));
    CHECK_EQ_INT(fast.nan_appeared, 1);
    CHECK_EQ_INT(fast.inf_gone, 1);
    CHECK(fast.deltas > n / 2);
    free(old);
    free(new_);
    mw_elem_layout_destroy(l);
}

static void long_float_runs(void)
{
    smooth_updates("f", 4, 100003);
    smooth_updates("d", 8, 50001);
}

static void ranges_cutting_items(void)
{
    struct mw_elem_desc d = {.format = "f", .itemsize = 4, .ndim = -1, .size = 40,
                             .contiguous = 1};
    mw_elem_layout *l;
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), 0);
    unsigned char old[40] = {0}, new_[40] = {0};
    memset(new_ + 5, 0x7f, 6);
    struct mw_rec_range r = {5, 6, old + 5, new_ + 5};
    struct mw_elem_stats fast, slow;
    mw_elem_stats_init(&fast);
    mw_elem_stats_init(&slow);
    CHECK_EQ_INT(mw_value_stats_add(l, &r, 1, &fast), 0);
    CHECK_EQ_INT(mw_elem_diff(l, &r, 1, NULL, NULL, 0, by_elements, &slow), 0);
    CHECK(same_stats(&fast, &slow));
    CHECK_EQ_INT(fast.elements, 2);
    mw_elem_layout_destroy(l);
}

int main(void)
{
    RUN(every_kind);
    RUN(long_float_runs);
    RUN(ranges_cutting_items);
    return UNIT_DONE();
}
