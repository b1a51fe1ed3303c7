/* The HTML report of a trace (`memwatch report`): the trace aggregated with SQL and C, then
 * written as one self-contained HTML file (the template src/trace/report.html, embedded at
 * build time, with the aggregated data spliced in as one JSON document). No network access
 * is needed to view it: every style and script is inline.
 *
 * Bounded output: however many changes the trace has, the page embeds at most max_marks of
 * them as individual timeline marks (evenly spaced within each tag, plus the NaN/Inf events)
 * and counts every change in per-tag density bins, heatmaps and writer totals; the page says
 * what was aggregated. */
#ifndef MW_TRACE_REPORT_H
#define MW_TRACE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sqlite3 sqlite3;

#define MW_REPORT_DEFAULT_MARKS 20000u
/* At most this many tags get a timeline lane and a heatmap of their own; the others share
 * one "other tags" lane (a run may watch a million objects under a million tags). */
#define MW_REPORT_MAX_LANES 40u

struct mw_report_options {
    const char *trace_name;   /* shown on the page: the trace file as the user named it */
    uint32_t max_marks;       /* 0: MW_REPORT_DEFAULT_MARKS */
};

/* What was written, for the caller's messages and tests. */
struct mw_report_summary {
    uint64_t objects;
    uint64_t changes;         /* every change in the trace */
    uint64_t marks;           /* changes embedded as individual marks */
    uint64_t nonfinite;       /* NaN/Inf events found */
};

/* Aggregates the trace open on db (read-only is enough; it must have been validated as a
 * trace, e.g. by mw_trace_reader_open) and writes the page to out. Returns 0, or a negative
 * status with a one-line message (no trailing full stop) in err: MW_ETRACE for SQLite
 * errors, -ENOMEM, or -errno of a failed write. summary may be NULL. */
int mw_report_write(sqlite3 *db, FILE *out, const struct mw_report_options *opt,
                    struct mw_report_summary *summary, char *err, size_t errlen);

#endif
