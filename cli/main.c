/* memwatch: git-style dispatch to one subcommand per cmd_*.c. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const main_usage[] = {
    "usage: memwatch [--version] [--help] <command> [<args>]",
    "",
    "Commands:",
    "   trace    run a Python script and record every change to the memory it watches",
    "   query    list the changes recorded in a trace",
    "   diff     show how one watched object changed, byte by byte",
    "   report   write a self-contained HTML view of a trace",
    "   help     show the help of memwatch or of one command",
    "",
    "'memwatch help <command>' or 'memwatch <command> -h' tells more about one command.",
    NULL,
};

const char *const help_usage[] = {
    "usage: memwatch help [<command>]",
    NULL,
};

static const struct mw_command commands[] = {
    {"trace", cmd_trace, trace_usage, "run a script and record changes"},
    {"query", cmd_query, query_usage, "list recorded changes"},
    {"diff", cmd_diff, diff_usage, "show one object's history"},
    {"report", cmd_report, report_usage, "write an HTML view of a trace"},
    {"help", cmd_help, help_usage, "show help"},
    {NULL, NULL, NULL, NULL},
};

const struct mw_command *mw_cli_commands(void) { return commands; }

const struct mw_command *mw_cli_find_command(const char *name)
{
    for (const struct mw_command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void mw_cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("memwatch: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void mw_cli_print_usage(FILE *f, const char *const *usage)
{
    for (; *usage; usage++)
        fprintf(f, "%s\n", *usage);
}

int mw_cli_usage_error(const char *const *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("memwatch: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    mw_cli_print_usage(stderr, usage);
    return MW_EXIT_USAGE;
}

int mw_cli_bad_option(const char *const *usage, int opt, char **argv)
{
    /* getopt_long runs with opterr = 0 and a leading ':' in the option string, so that the
     * message is ours, in our format: ':' is a missing value, '?' an unknown option. A long
     * option is named as typed (optopt then holds its value, not a letter). */
    const char *arg = argv[optind - 1];
    int is_long = arg && arg[0] == '-' && arg[1] == '-';
    char name[128];
    if (is_long) {
        size_t n = strcspn(arg, "=");
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1), arg);
    } else {
        snprintf(name, sizeof name, "-%c", optopt ? optopt : '?');
    }
    if (opt == ':')
        return mw_cli_usage_error(usage, "option '%s' requires a value", name);
    return mw_cli_usage_error(usage, "unknown option '%s'", name);
}

int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return mw_cli_usage_error(help_usage, "too many arguments");
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        mw_cli_print_usage(stdout, argc < 2 ? main_usage : help_usage);
        return MW_EXIT_OK;
    }
    const struct mw_command *c = mw_cli_find_command(argv[1]);
    if (!c)
        return mw_cli_usage_error(main_usage, "'%s' is not a memwatch command", argv[1]);
    mw_cli_print_usage(stdout, c->usage);
    return MW_EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    opterr = 0;
    /* "+": stop at the command name; everything after it is the command's. */
    while ((opt = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            mw_cli_print_usage(stdout, main_usage);
            return MW_EXIT_OK;
        case 'V':
            printf("memwatch %s\n", MEMWATCH_VERSION);
            return MW_EXIT_OK;
        default:
            return mw_cli_bad_option(main_usage, opt, argv);
        }
    }
    if (optind >= argc)
        return mw_cli_usage_error(main_usage, "no command given");
    const struct mw_command *c = mw_cli_find_command(argv[optind]);
    if (!c)
        return mw_cli_usage_error(main_usage, "'%s' is not a memwatch command", argv[optind]);
    /* Each command parses its own argv from a fresh getopt state. */
    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0;
    return c->run(cargc, cargv);
}
