/* memwatch report: a self-contained HTML view of a trace. */
#include "cli.h"

const char *const report_usage[] = {
    "usage: memwatch report [-fh] [-o file.html] [trace]",
    NULL,
};

int cmd_report(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    mw_cli_error("report is not implemented yet");
    return MW_EXIT_USAGE;
}
