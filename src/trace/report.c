/* The HTML report of a trace: aggregation in SQL and C, then template + JSON data. This file
 * runs the phases: the first read and the plan (report_plan.c), the second read
 * (report_scan.c), the page data (report_data.c); the model they share is report_model.h.
 *
 * DESIGN
 * - Two reads of the trace. The first is small: meta, the run row, the objects, and per
 *   object its number of changes (a covering scan of changes_by_object). From those come the
 *   lanes (the MW_REPORT_MAX_LANES tags with the most changes), each tag's heatmap geometry
 *   and its share of the max_marks individual marks (water-filling, so that a tag with few
 *   changes shows all of them). The second read streams every changed range in (seq, offset)
 *   order, once, and feeds all the aggregates: per-tag totals, time density bins, heatmap
 *   cells, writer totals, NaN/Inf detection, and the sampled marks. Its cost is linear in the
 *   trace and its memory is bounded by the number of objects, locations and marks, never by
 *   the number of changes.
 * - Heatmaps cost O(1) per range and per binned row, however long the range (report_heat.c).
 * - NaN/Inf: when the writer counted them (the change_stats table, typed elements), its
 *   counts are exact and win. The elements are named from the changed bytes: ranges of
 *   typed objects are widened to whole items, so each float decodes (elements.c). In traces
 *   from before that, a float's bytes outside the changed range are unknown (they did not
 *   change); a value can only become NaN or Inf by changing its exponent to all ones, so
 *   the exponent bits in the range say "appeared" for certain when they all are there, and
 *   "possibly" when only some are (the unknown bits are the same in the old and new value).
 * - The page data is one JSON document inside <script type="application/json">: every
 *   string is escaped so that no "<" appears in it, hence no "</script>" can end it early. */
#include "report.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "report_data.h"
#include "report_model.h"
#include "report_plan.h"
#include "report_scan.h"
#include "report_template.h"
#include "value_read.h"

int mw_report_fail(struct report *r, int status, const char *fmt, ...)
{
    if (r->status)
        return r->status;   /* the first message is the one that explains */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

int mw_report_db_fail(struct report *r, const char *what)
{
    return mw_report_fail(r, MW_ETRACE, "cannot %s: %s", what, sqlite3_errmsg(r->db));
}

sqlite3_stmt *mw_report_prepare(struct report *r, const char *sql, const char *what)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK) {
        mw_report_db_fail(r, what);
        return NULL;
    }
    return s;
}

int mw_report_nomem(struct report *r)
{
    return mw_report_fail(r, -ENOMEM, "out of memory");
}

static void report_free(struct report *r)
{
    for (size_t i = 0; i < r->nobjects; i++) {
        free(r->objects[i].format);
        free(r->objects[i].shape_text);
        free(r->objects[i].type_name);
    }
    free(r->objects);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i].name);
        free(r->tags[i].heat.diff);
    }
    free(r->tags);
    free(r->lane_tags);
    free(r->density);
    mw_value_reader_destroy(r->values);
    for (size_t i = 0; i < r->nlocs; i++) {
        free(r->locs[i].file);
        free(r->locs[i].function);
        free(r->locs[i].native);
    }
    free(r->locs);
    free(r->loc_index.slot);
    free(r->marks);
    free(r->nf);
}

int mw_report_write(sqlite3 *db, FILE *out, const struct mw_report_options *opt,
                    struct mw_report_summary *summary, char *err, size_t errlen)
{
    struct report r = {0};
    r.db = db;
    r.out = out;
    r.err = err;
    r.errlen = errlen;
    r.max_marks = opt && opt->max_marks ? opt->max_marks : MW_REPORT_DEFAULT_MARKS;
    if (errlen)
        err[0] = '\0';
    static const struct mw_report_options none = {0};
    if (!opt)
        opt = &none;

    /* One read transaction: the two reads see the same trace even if a writer is live. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        mw_report_db_fail(&r, "read the trace");
        return r.status;
    }
    if (!(r.nf = malloc(NONFINITE_LISTED * sizeof(*r.nf))))
        mw_report_nomem(&r);
    if (!r.status && mw_report_plan(&r) == 0 && mw_report_scan(&r) == 0) {
        /* The template is split at its data marker; the data goes in between. */
        fwrite(mw_report_template, 1, mw_report_template_data_at, out);
        mw_report_write_data(&r, opt);
        fputs(mw_report_template + mw_report_template_data_at, out);
        if (!r.status && (fflush(out) != 0 || ferror(out)))
            mw_report_fail(&r, errno ? -errno : -EIO, "cannot write the report: %s",
                 strerror(errno ? errno : EIO));
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (summary) {
        summary->objects = r.nobjects;
        summary->changes = r.total_changes;
        summary->marks = r.nmarks;
        summary->nonfinite = r.nf_total + r.nf_possible;
    }
    report_free(&r);
    return r.status;
}
