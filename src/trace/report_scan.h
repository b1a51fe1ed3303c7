/* The report's second read (see report.c, DESIGN): every changed range in (seq, offset)
 * order, once, into the aggregates: per-tag totals, density bins, heatmap cells, writer
 * totals, NaN/Inf events and the sampled marks. */
#ifndef MW_TRACE_REPORT_SCAN_H
#define MW_TRACE_REPORT_SCAN_H

#include "report_model.h"

/* Returns 0 or the status recorded in r. */
int mw_report_scan(struct report *r);

#endif
