/* The report's hash index (see report_index.h). */
#include "report_index.h"

#include <errno.h>
#include <stdlib.h>

static size_t first_slot(uint64_t h, size_t cap)
{
    return (size_t)(h * 0x9e3779b97f4a7c15u) & (cap - 1);
}

int mw_report_index_reserve(struct mw_report_index *ix, size_t n, size_t min_cap,
                            const struct mw_report_index_ops *ops, const void *array)
{
    if ((n + 1) * 2 <= ix->cap)
        return 0;
    size_t cap = ix->cap ? ix->cap * 2 : min_cap;
    uint32_t *slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t j = first_slot(ops->hash(array, i), cap);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = (uint32_t)i + 1;
    }
    free(ix->slot);
    ix->slot = slot;
    ix->cap = cap;
    return 0;
}

size_t mw_report_index_probe(const struct mw_report_index *ix, uint64_t h,
                             const struct mw_report_index_ops *ops, const void *array,
                             const void *key)
{
    size_t j = first_slot(h, ix->cap);
    while (ix->slot[j] && !ops->is(array, ix->slot[j] - 1, key))
        j = (j + 1) & (ix->cap - 1);
    return j;
}
