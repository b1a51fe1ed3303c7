/* memwatch report: a self-contained HTML view of a trace (src/trace/report.c does the work).
 *
 * The page is written to a temporary file next to its destination, synced, and moved into
 * place only when complete (src/trace/outfile.h), so that a failure or a crash never
 * leaves half a page where a page stood; without -f an existing file is never replaced
 * (link(2) refuses to, even if one appears while the report is written), and with -f only
 * a regular file that is not an SQLite database is. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "format.h"
#include "mw_error.h"
#include "outfile.h"
#include "reader.h"
#include "report.h"
#include "show.h"
#include "timeline.h"

enum { OPT_MARKS = 256 };

static const char *const report_usage[] = {
    "usage: memwatch report [-fh] [-o file.html] [--marks n] [trace ...]",
    "",
    "Write a self-contained HTML view of a trace: the run, a timeline of the changes of",
    "each tag, where each tag changed, the lines that wrote, and NaN/Inf values that",
    "appeared. It opens from a file in any current browser, without network access.",
    "",
    MW_CLI_LIST,
    "",
    "Without trace, the newest memwatch-*.db in the current directory is read. Several",
    "traces (with -o) make one page: a lane per trace on one wall-clock axis, then each",
    "trace's own report. The name of the file written is printed on standard output.",
    NULL,
};

static const struct mw_cli_option report_options[] = {
    {"output", required_argument, 'o',
     "    -o, --output FILE  write the page to FILE ('-': standard output; default: the\n"
     "                       trace's name with .html in place of .db)"},
    {"force", no_argument, 'f', "    -f, --force        overwrite an existing FILE"},
    {"marks", required_argument, OPT_MARKS,
     "    --marks n          draw at most n changes as individual marks (default 20000);\n"
     "                       the rest are counted in density bins"},
    {"help", no_argument, 'h', "    -h, --help         show this help"},
    {NULL, 0, 0, NULL},
};

/* The trace's name with its .db suffix replaced by .html (or .html added). */
static char *default_output(const char *trace)
{
    size_t n = strlen(trace);
    const char *base = strrchr(trace, '/');
    base = base ? base + 1 : trace;
    if (n > 3 && strcmp(trace + n - 3, ".db") == 0 && trace + n - 3 > base)
        n -= 3;
    char *out = malloc(n + sizeof(".html"));
    if (out) {
        memcpy(out, trace, n);
        memcpy(out + n, ".html", sizeof(".html"));
    }
    return out;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Where the page goes: standard output, or a file claimed by outfile.h (written aside and
 * moved into place when complete). NULL after the message: *status is the exit status. */
static FILE *open_page(const char *trace, const char *output, int force, struct mw_outfile *out,
                       int *status)
{
    *status = MW_EXIT_USAGE;
    if (strcmp(output, "-") == 0)
        return stdout;
    if (same_file(output, trace)) {
        mw_cli_error("refusing to overwrite the trace '%s' with its report", trace);
        return NULL;
    }
    int rc = mw_outfile_claim(out, output, force, MW_OUTFILE_REPORT);
    if (rc == -EEXIST)
        mw_cli_error("'%s' already exists (use -f to overwrite it)", output);
    else if (rc)
        mw_cli_error("%s", out->err);
    if (rc) {
        *status = rc == -ENOMEM ? MW_EXIT_FAILURE : MW_EXIT_USAGE;
        return NULL;
    }
    FILE *f = fopen(mw_outfile_write_path(out), "we");
    if (!f) {
        mw_cli_error("cannot write '%s': %s", output, strerror(errno));
        *status = errno == ENOMEM ? MW_EXIT_FAILURE : MW_EXIT_USAGE;
        mw_outfile_abandon(out);
    }
    return f;
}

static int write_report(mw_trace_reader *r, const char *trace, const char *output, int force,
                        uint32_t marks)
{
    int to_stdout = strcmp(output, "-") == 0, status;
    struct mw_outfile out;
    FILE *f = open_page(trace, output, force, &out, &status);
    if (!f)
        return status;
    struct mw_report_options opt = {.trace_name = trace, .max_marks = marks};
    struct mw_report_summary sum = {0};
    char err[1024];
    int rc = mw_report_write(mw_trace_reader_db(r), f, &opt, &sum, err, sizeof(err));
    if (to_stdout) {
        if (rc == 0 && fflush(stdout) != 0)
            snprintf(err, sizeof(err), "cannot write the report: %s", strerror(errno)), rc = -EIO;
    } else if (fclose(f) != 0 && rc == 0) {
        snprintf(err, sizeof(err), "cannot write '%s': %s", output, strerror(errno));
        rc = -EIO;
    }
    if (!to_stdout && rc < 0) {
        mw_outfile_abandon(&out);   /* the old page, if any, stays */
    } else if (!to_stdout && (rc = mw_outfile_commit(&out)) == -EEXIST) {
        mw_cli_error("%s", out.err);
        return MW_EXIT_USAGE;
    } else if (!to_stdout && rc < 0) {
        snprintf(err, sizeof(err), "%s", out.err);
    }
    if (rc < 0) {
        /* SQLite's message for a statement a guard stopped is only "interrupted". */
        const char *why = rc == MW_ETRACE ? mw_trace_reader_guard_reason(r) : NULL;
        if (why)
            mw_cli_error("cannot read '%s': %s", trace, why);
        else
            mw_cli_error("%s", err);
        return MW_EXIT_FAILURE;
    }
    if (sum.changes == 0)
        mw_cli_say_empty(trace, sum.objects);
    /* The name as a terminal may show it (show.h): bare unless it holds odd bytes. */
    char *shown = to_stdout ? NULL : mw_show(output, strlen(output), 0, NULL);
    int failed = !to_stdout && printf("%s\n", shown ? shown : output) < 0;
    free(shown);
    return failed ? MW_EXIT_FAILURE : MW_EXIT_OK;
}

/* What the command line asks for. */
struct report_args {
    const char *output;
    int force;
    uint32_t marks;
};

static int report_option(void *args, int opt)
{
    struct report_args *a = args;
    uint64_t v;
    int status;
    switch (opt) {
    case 'o':
        a->output = optarg;
        break;
    case 'f':
        a->force = 1;
        break;
    case OPT_MARKS:
        status = mw_cli_count_option(&mw_cmd_report, "--marks", optarg, UINT32_MAX, &v);
        if (status == MW_CLI_GO_ON)
            a->marks = (uint32_t)v;
        return status;
    }
    return MW_CLI_GO_ON;
}

/* The report of the trace at path, where -o says or next to it. */
static int report_trace(mw_trace_reader *r, const char *path, void *ctx)
{
    const struct report_args *a = ctx;
    char *out = a->output ? strdup(a->output) : default_output(path);
    int status;
    if (!out) {
        mw_cli_error("out of memory");
        status = MW_EXIT_FAILURE;
    } else {
        status = write_report(r, path, out, a->force, a->marks);
    }
    free(out);
    return status;
}

int cmd_report(int argc, char **argv)
{
    struct report_args a = {0};
    int status = mw_cli_parse_options(&mw_cmd_report, argc, argv, report_option, &a);
    if (status != MW_CLI_GO_ON)
        return status;
    if (a.output && !*a.output)
        return mw_cli_usage_error(&mw_cmd_report, "'--output' needs a file name");
    if (argc - optind > 1 && !a.output)
        return mw_cli_usage_error(&mw_cmd_report, "several traces make one page: name it "
                                  "with -o file.html");
    if (argc - optind > 1)   /* one timeline (timeline_report.c) */
        return mw_timeline_report(argv + optind, (size_t)(argc - optind), a.output, a.force,
                                  a.marks);
    return mw_cli_with_trace(optind < argc ? argv[optind] : NULL, report_trace, &a);
}

const struct mw_command mw_cmd_report = {
    .name = "report", .summary = "write a self-contained HTML view of a trace",
    .usage = report_usage, .options = report_options, .getopt_flags = ":", .run = cmd_report,
};
