/* An open-addressing hash index over the entries of an array, for the report's tags (by
 * name) and locations (by file, line, function and native symbol): each slot holds an
 * entry's index + 1, or 0 when empty; at most half the slots are in use. */
#ifndef MW_TRACE_REPORT_INDEX_H
#define MW_TRACE_REPORT_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct mw_report_index {
    uint32_t *slot;
    size_t cap;              /* a power of two */
};

/* How an index sees its array: entry i's hash, and whether entry i is the one key names. */
struct mw_report_index_ops {
    uint64_t (*hash)(const void *array, size_t i);
    int (*is)(const void *array, size_t i, const void *key);
};

/* Room for an entry after the array's n: the index rebuilt with twice the slots (first
 * min_cap) when needed. 0 or -ENOMEM. */
int mw_report_index_reserve(struct mw_report_index *ix, size_t n, size_t min_cap,
                            const struct mw_report_index_ops *ops, const void *array);
/* The slot of key, whose hash is h: the one that holds its entry, or the empty one where
 * that entry goes. */
size_t mw_report_index_probe(const struct mw_report_index *ix, uint64_t h,
                             const struct mw_report_index_ops *ops, const void *array,
                             const void *key);

#endif
