/* The insides of an element layout (elements.c), for the files of the elements module
 * only: elements_value.c formats what it lays out, elements_diff.c walks it. */
#ifndef MW_TRACE_ELEMENTS_LAYOUT_H
#define MW_TRACE_ELEMENTS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "elements.h"

struct mw_elem_layout {
    struct mw_elem_scalar *scalars;
    size_t nscalars;
    char *names;
    size_t itemsize;
    int ndim;                 /* >= 0 */
    int64_t *shape, *strides; /* ndim entries each */
    int contiguous;
    int *order;               /* contiguous: dimensions by decreasing stride */
    uint64_t nitems;
    int typed, has_float;
};

/* Item number m (memory order for contiguous objects, C order otherwise) -> its coordinates
 * (ndim entries into index) and its number in C order. */
void mw_elem_item_coords(const mw_elem_layout *l, uint64_t m, int64_t *index, uint64_t *item);

#endif
