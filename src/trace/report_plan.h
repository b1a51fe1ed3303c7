/* The report's first read (see report.c, DESIGN): objects with their geometry, tags,
 * change counts, then the plan of the page: lanes, each tag's share of the marks, each
 * lane's heatmap. */
#ifndef MW_TRACE_REPORT_PLAN_H
#define MW_TRACE_REPORT_PLAN_H

#include <stdint.h>

#include "report_model.h"

/* Fills r's objects, tags, lanes, quotas, density bins and heatmaps. Returns 0 or the
 * status recorded in r. */
int mw_report_plan(struct report *r);
/* The object with this id, or NULL (objects are sorted by id). */
struct object *mw_report_find_object(struct report *r, int64_t id);

#endif
