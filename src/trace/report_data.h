/* The report page's data (see report.c, DESIGN): one JSON document of the aggregates,
 * section by section (report, meta, run, tags, lanes, locations, writers, marks, heat,
 * nonfinite, totals), every string HTML-safe. */
#ifndef MW_TRACE_REPORT_DATA_H
#define MW_TRACE_REPORT_DATA_H

#include "report_model.h"

/* Writes the document to r->out. Returns r->status (a failed read of meta or run). */
int mw_report_write_data(struct report *r, const struct mw_report_options *opt);

#endif
