/* Heatmaps (see report_heat.h).
 *
 * DESIGN: a heatmap counts, per cell, the changed ranges that touch it, with O(1) work per
 * range and per binned row (difference arrays, prefix-summed when written): a range that
 * rewrites a 400 MB array costs as little as a one-byte change. For C- or
 * Fortran-contiguous arrays of two or more dimensions the cells are element rows and
 * columns (leading dimensions folded into rows); otherwise elements (typed, contiguous) or
 * bytes in one dimension. */
#include "report_heat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    HEAT_1D_BINS = 4096,       /* cells of a one-dimensional heatmap */
    HEAT_ROWS = 128,           /* at most, for two-dimensional ones */
    HEAT_COLS = 256,
};

/* Units, and for two or more dimensions rows and columns, of objects like o. */
static void heat_units(struct heat *h, const struct object *o, uint64_t max_size)
{
    if (o && o->order && o->itemsize > 0 && o->ndim >= 1) {
        h->unit = (uint64_t)o->itemsize;
        h->units = o->items;
        h->kind = "elements";
        if (o->ndim >= 2) {
            /* C order: the last dimension is the row; F order: the first is the column. */
            h->dims = 2;
            if (o->order != 'F') {
                h->minor_n = o->shape[o->ndim - 1];
            } else {
                h->minor_n = o->shape[0];
                h->transpose = 1;
            }
            if (h->minor_n == 0)
                h->minor_n = 1;
            h->major_n = h->units / h->minor_n;
        }
    } else {
        h->unit = 1;
        h->units = max_size;
        h->kind = "bytes";
    }
    if (h->units == 0)
        h->units = 1;
    if (!h->dims || h->major_n <= 1) {
        h->dims = 1;
        h->minor_n = h->units;
        h->major_n = 1;
        h->transpose = 0;
    }
}

int mw_report_heat_init(struct heat *h, const struct object *o, uint64_t max_size)
{
    memset(h, 0, sizeof(*h));
    heat_units(h, o, max_size);
    uint64_t max_major = h->dims == 2 ? (h->transpose ? HEAT_COLS : HEAT_ROWS) : 1;
    uint64_t max_minor = h->dims == 2 ? (h->transpose ? HEAT_ROWS : HEAT_COLS) : HEAT_1D_BINS;
    h->major_bw = (h->major_n + max_major - 1) / max_major;
    h->minor_bw = (h->minor_n + max_minor - 1) / max_minor;
    h->major_bins = (uint32_t)((h->major_n + h->major_bw - 1) / h->major_bw);
    h->minor_bins = (uint32_t)((h->minor_n + h->minor_bw - 1) / h->minor_bw);
    h->diff = calloc((size_t)h->major_bins * (h->minor_bins + 1), sizeof(*h->diff));
    return h->diff ? 0 : -ENOMEM;
}

void mw_report_heat_add(struct heat *h, uint64_t off, uint64_t len)
{
    if (!h->diff || len == 0)
        return;
    uint64_t u0 = off / h->unit, u1 = (off + len - 1) / h->unit;
    if (u0 >= h->units)
        return;
    if (u1 >= h->units)
        u1 = h->units - 1;
    uint64_t a0 = u0 / h->minor_n, m0 = u0 % h->minor_n;
    uint64_t a1 = u1 / h->minor_n, m1 = u1 % h->minor_n;
    uint32_t stride = h->minor_bins + 1;
    for (uint64_t b = a0 / h->major_bw; b <= a1 / h->major_bw; b++) {
        uint64_t lo = b * h->major_bw > a0 ? b * h->major_bw : a0;
        uint64_t hi = b * h->major_bw + h->major_bw - 1 < a1 ? b * h->major_bw + h->major_bw - 1
                                                             : a1;
        uint64_t cl = 0, ch = h->minor_n - 1;
        if (lo == hi) {
            if (lo == a0)
                cl = m0;
            if (hi == a1)
                ch = m1;
        }
        /* Several rows of one bin: the hull of what they touch, which is whole rows but for
         * a range that starts and ends in neighbouring rows of the same bin. */
        int64_t *row = h->diff + b * stride;
        row[cl / h->minor_bw]++;
        row[ch / h->minor_bw + 1]--;
    }
}

void mw_report_heat_write(FILE *f, uint32_t tag, const struct heat *h)
{
    fprintf(f,
            "{\"tag\":%u,\"kind\":\"%s\",\"unit\":%" PRIu64 ",\"units\":%" PRIu64
            ",\"dims\":%d,\"transpose\":%s,\"major_n\":%" PRIu64 ",\"minor_n\":%" PRIu64
            ",\"major_bw\":%" PRIu64 ",\"minor_bw\":%" PRIu64
            ",\"major_bins\":%u,\"minor_bins\":%u,\"cells\":[",
            tag, h->kind, h->unit, h->units, h->dims, h->transpose ? "true" : "false",
            h->major_n, h->minor_n, h->major_bw, h->minor_bw, h->major_bins, h->minor_bins);
    uint32_t stride = h->minor_bins + 1;
    for (uint32_t b = 0; b < h->major_bins; b++) {
        int64_t acc = 0;
        for (uint32_t c = 0; c < h->minor_bins; c++) {
            acc += h->diff[(size_t)b * stride + c];
            fprintf(f, (b || c) ? ",%" PRId64 : "%" PRId64, acc);
        }
    }
    fputs("]}", f);
}
