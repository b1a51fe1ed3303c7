/* memwatch report given several traces: one self-contained page with a lane per trace on
 * one wall-clock axis, then each trace's own report (timeline.h).
 *
 * DESIGN: the lanes are a static SVG drawn here: each trace's changes counted in
 * LANE_BINS bins of the timeline, one streaming pass per trace, so memory does not grow
 * with the traces. Below them each trace's full report (src/trace/report.h, unchanged) is
 * embedded in an iframe's srcdoc: its scripts and styles stay its own, and the page still
 * needs no network. The page is written aside and moved into place when complete, as the
 * one-trace report is (outfile.h). */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "mw_error.h"
#include "outfile.h"
#include "report.h"
#include "show.h"
#include "timeline.h"

#define LANE_BINS 200
#define LANE_W 900      /* px of the time axis */
#define LANE_H 28
#define LABEL_W 160

/* Text for HTML, in an element or a double-quoted attribute. */
static void put_html(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(s[i], f);
        }
    }
}

static void put_text(FILE *f, const char *s)
{
    put_html(f, s, strlen(s));
}

/* Calls fn with the timeline time of each value of `column` (a change's time_ns, or an
 * aggregate of it) in trace i's changes. 0, or negative after the message. */
static int each_time(const struct mw_timeline *tl, size_t i, const char *column,
                     void (*fn)(uint64_t t, void *ctx), void *ctx)
{
    sqlite3 *db = mw_trace_reader_db(tl->t[i].r);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s", column, mw_trace_change_table(db));
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 0);
        fn(mw_timeline_time(tl, i, v > 0 ? (uint64_t)v : 0), ctx);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        const char *why = mw_trace_reader_guard_reason(tl->t[i].r);
        mw_cli_error("cannot read %s: %s", mw_show_name(tl->t[i].path),
                     why ? why : sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

struct bins {
    uint64_t span, *bins, total;
};

static void count_in_bin(uint64_t t, void *ctx)
{
    struct bins *b = ctx;
    uint64_t at = b->span ? (uint64_t)((long double)t / (long double)b->span * LANE_BINS) : 0;
    b->bins[at >= LANE_BINS ? LANE_BINS - 1 : at]++;
    b->total++;
}

static void keep_latest(uint64_t t, void *ctx)
{
    uint64_t *latest = ctx;
    *latest = t > *latest ? t : *latest;
}

/* The timeline's length: the latest change of any trace. 0 or negative (message). */
static int timeline_span(const struct mw_timeline *tl, uint64_t *span)
{
    *span = 0;
    for (size_t i = 0; i < tl->n; i++)
        if (each_time(tl, i, "max(time_ns)", keep_latest, span) < 0)
            return -1;
    return 0;
}

/* One lane: the trace's name, then a bar per bin, as tall as its share of the lane's
 * busiest bin. */
static int write_lane(FILE *f, const struct mw_timeline *tl, size_t i, uint64_t span)
{
    uint64_t bins[LANE_BINS] = {0}, most = 0;
    struct bins counted = {span, bins, 0};
    if (each_time(tl, i, "time_ns", count_in_bin, &counted) < 0)
        return -1;
    uint64_t total = counted.total;
    for (int b = 0; b < LANE_BINS; b++)
        most = bins[b] > most ? bins[b] : most;
    double y = (double)i * (LANE_H + 6);
    fprintf(f, "<g class=\"lane\" data-trace=\"");
    put_text(f, tl->t[i].label);
    fprintf(f, "\" data-changes=\"%" PRIu64 "\">\n<text x=\"0\" y=\"%.0f\">", total,
            y + LANE_H * 0.7);
    put_text(f, tl->t[i].label);
    fprintf(f, "</text><rect class=\"bg\" x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\"/>\n",
            LABEL_W, y, LANE_W, LANE_H);
    for (int b = 0; b < LANE_BINS; b++) {
        if (!bins[b])
            continue;
        double h = 3 + (LANE_H - 3) * (double)bins[b] / (double)most;
        fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                "<title>%.6fs: %" PRIu64 " change%s</title></rect>\n",
                LABEL_W + (double)b * LANE_W / LANE_BINS, y + LANE_H - h,
                (double)LANE_W / LANE_BINS, h, (double)span * b / LANE_BINS / 1e9, bins[b],
                bins[b] == 1 ? "" : "s");
    }
    fputs("</g>\n", f);
    return 0;
}

/* Trace i's own report, in an iframe: written to a temporary file, then copied escaped
 * into srcdoc. 0, or negative after the message. */
static int write_embedded(FILE *f, const struct mw_timeline *tl, size_t i, uint32_t marks)
{
    const struct mw_timeline_trace *t = &tl->t[i];
    FILE *tmp = tmpfile();
    struct mw_report_options opt = {.trace_name = t->path, .max_marks = marks};
    char err[1024] = "";
    int rc = tmp ? mw_report_write(mw_trace_reader_db(t->r), tmp, &opt, NULL, err, sizeof err)
                 : -errno;
    if (rc < 0) {
        const char *why = rc == MW_ETRACE ? mw_trace_reader_guard_reason(t->r) : NULL;
        mw_cli_error("cannot report %s: %s", mw_show_name(t->path),
                     why ? why : err[0] ? err : strerror(-rc));
        if (tmp)
            fclose(tmp);
        return -1;
    }
    rewind(tmp);
    fprintf(f, "<h2 id=\"trace-%zu\">", i);
    put_text(f, t->label);
    fputs(" &mdash; ", f);
    put_text(f, t->path);
    fprintf(f, "</h2>\n<iframe class=\"trace\" title=\"report of ");
    put_text(f, t->label);
    fputs("\" srcdoc=\"", f);
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, tmp)) > 0)
        put_html(f, buf, got);
    fputs("\"></iframe>\n", f);
    fclose(tmp);
    return 0;
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>memwatch report: several traces</title>\n<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\n"
    "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}\n"
    "svg .bg{fill:#f2f2f2}svg .bar{fill:#3b6fb6}svg text{font-size:12px}\n"
    "iframe.trace{width:100%;height:80vh;border:1px solid #ccc}\n"
    "</style>\n</head>\n<body>\n";

/* The page: the traces, their lanes, their reports. 0, or negative after the message. */
static int write_page(FILE *f, const struct mw_timeline *tl, uint32_t marks)
{
    uint64_t span;
    if (timeline_span(tl, &span) < 0)
        return -1;
    fputs(page_head, f);
    fprintf(f, "<h1>memwatch: %zu traces on one timeline</h1>\n<table class=\"traces\">\n"
            "<tr><th>trace</th><th>file</th><th>started (UTC)</th><th>offset</th></tr>\n",
            tl->n);
    for (size_t i = 0; i < tl->n; i++) {
        time_t sec = (time_t)(tl->t[i].start_unix_ns / 1000000000);
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&sec, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(f, "<tr><td><a href=\"#trace-%zu\">", i);
        put_text(f, tl->t[i].label);
        fputs("</a></td><td>", f);
        put_text(f, tl->t[i].path);
        fprintf(f, "</td><td>%s</td><td>+%.6fs</td></tr>\n", when,
                (double)tl->t[i].offset_ns / 1e9);
    }
    fprintf(f, "</table>\n<p>Changes per trace over %.6f s of wall clock, from the earliest "
            "start:</p>\n<svg class=\"lanes\" width=\"%d\" height=\"%zu\">\n", (double)span / 1e9,
            LABEL_W + LANE_W, tl->n * (LANE_H + 6));
    for (size_t i = 0; i < tl->n; i++)
        if (write_lane(f, tl, i, span) < 0)
            return -1;
    fputs("</svg>\n", f);
    for (size_t i = 0; i < tl->n; i++)
        if (write_embedded(f, tl, i, marks) < 0)
            return -1;
    fputs("</body>\n</html>\n", f);
    return 0;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Writes the page to output (claimed, written aside, committed). The exit status. */
static int write_output(const struct mw_timeline *tl, const char *output, int force,
                        uint32_t marks)
{
    int to_stdout = strcmp(output, "-") == 0;
    for (size_t i = 0; !to_stdout && i < tl->n; i++)
        if (same_file(output, tl->t[i].path)) {
            mw_cli_error("refusing to overwrite the trace %s with the report",
                         mw_show_name(tl->t[i].path));
            return MW_EXIT_USAGE;
        }
    struct mw_outfile out;
    FILE *f = stdout;
    if (!to_stdout) {
        int rc = mw_outfile_claim(&out, output, force, MW_OUTFILE_REPORT);
        if (rc) {
            if (rc == -EEXIST)
                mw_cli_error("%s already exists (use -f to overwrite it)", mw_show_name(output));
            else
                mw_cli_error("%s", out.err);
            return rc == -ENOMEM ? MW_EXIT_FAILURE : MW_EXIT_USAGE;
        }
        if (!(f = fopen(mw_outfile_write_path(&out), "we"))) {
            mw_cli_error("cannot write %s: %s", mw_show_name(output), strerror(errno));
            mw_outfile_abandon(&out);
            return MW_EXIT_USAGE;
        }
    }
    int rc = write_page(f, tl, marks);
    int werr = to_stdout ? fflush(f) != 0 : fclose(f) != 0;
    if (rc == 0 && werr)
        mw_cli_error("cannot write %s: %s", mw_show_name(output), strerror(errno));
    if (rc < 0 || werr) {
        if (!to_stdout)
            mw_outfile_abandon(&out);   /* the old page, if any, stays */
        return MW_EXIT_FAILURE;
    }
    if (!to_stdout && (rc = mw_outfile_commit(&out)) < 0) {
        mw_cli_error("%s", out.err);
        return rc == -EEXIST ? MW_EXIT_USAGE : MW_EXIT_FAILURE;
    }
    if (!to_stdout) {
        char *shown = mw_show(output, strlen(output), 0, NULL);
        printf("%s\n", shown ? shown : output);
        free(shown);
    }
    return MW_EXIT_OK;
}

int mw_timeline_report(char *const *paths, size_t n, const char *output, int force,
                       uint32_t marks)
{
    struct mw_timeline tl;
    int status = mw_timeline_open(paths, n, &tl);
    if (status)
        return status;
    status = write_output(&tl, output, force, marks);
    mw_timeline_close(&tl);
    return status;
}
