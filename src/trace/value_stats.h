/* The numeric summary of a change (change_stats), at the speed of the disk.
 *
 * DESIGN: mw_elem_diff turns ranges into elements one at a time, with coordinates and a
 * callback each: right for listing elements, 20-50 ns each, too slow for a summary of the
 * six million floats a training step rewrites. For an object whose items are one plain
 * number each (float32, float64, integers, bool: by far the common case) the summary is a
 * tight loop over the items instead; anything else (structures, complex, half floats,
 * items cut by a range) goes through mw_elem_diff as before. Both give the same numbers
 * (tests/unit/test_value_stats.c). Python-free and SQLite-free. */
#ifndef MW_TRACE_VALUE_STATS_H
#define MW_TRACE_VALUE_STATS_H

#include <stddef.h>

#include "elements.h"

/* Adds the elements changed by ranges[0..n) (whole items, ascending) of an object laid out
 * as l to st. 0, -ENOMEM, or MW_EINVAL for ranges past the object (st unchanged then). */
int mw_value_stats_add(const mw_elem_layout *l, const struct mw_rec_range *ranges, size_t n,
                       struct mw_elem_stats *st);

#endif
