/* A lane's heatmap (see report_heat.c, DESIGN): its cells for an object's geometry, a changed
 * range counted in O(1) per binned row, and the cells as JSON. */
#ifndef MW_TRACE_REPORT_HEAT_H
#define MW_TRACE_REPORT_HEAT_H

#include <stdint.h>
#include <stdio.h>

#include "report_model.h"

/* Cells for objects like o (NULL, or not uniform: bytes over max_size). 0 or -ENOMEM. */
int mw_report_heat_init(struct heat *h, const struct object *o, uint64_t max_size);
/* One changed range [off, off + len) of an object of the lane's tag. */
void mw_report_heat_add(struct heat *h, uint64_t off, uint64_t len);
/* {"tag":tag,...,"cells":[...]}, the cells prefix-summed. */
void mw_report_heat_write(FILE *f, uint32_t tag, const struct heat *h);

#endif
