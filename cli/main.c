/* memwatch: git-style dispatch to one subcommand per cmd_*.c, through the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

static const struct mw_command *const commands[] = {
    &mw_cmd_trace, &mw_cmd_query, &mw_cmd_diff, &mw_cmd_report, &mw_cmd_help, NULL,
};

static const char *const main_usage[] = {
    "usage: memwatch [--version] [--help] <command> [<args>]",
    "",
    "Commands:",
    MW_CLI_LIST,
    "",
    "'memwatch help <command>' or 'memwatch <command> -h' tells more about one command.",
    NULL,
};

/* Its usage lists the commands, not these. */
static const struct mw_cli_option main_options[] = {
    {"help", no_argument, 'h', NULL},
    {"version", no_argument, 'V', NULL},
    {NULL, 0, 0, NULL},
};

/* memwatch itself: "+": options end at the command name; everything after it is the
 * command's. */
static const struct mw_command memwatch = {
    .name = "memwatch", .usage = main_usage, .options = main_options, .subcommands = commands,
    .getopt_flags = "+:",
};

static const char *const help_usage[] = {
    "usage: memwatch help [<command>]",
    NULL,
};

const struct mw_command mw_cmd_help = {
    .name = "help", .summary = "show the help of memwatch or of one command",
    .usage = help_usage, .getopt_flags = ":", .run = cmd_help,
};

const struct mw_command *mw_cli_find_command(const char *name)
{
    for (const struct mw_command *const *c = commands; *c; c++)
        if (strcmp((*c)->name, name) == 0)
            return *c;
    return NULL;
}

int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return mw_cli_usage_error(&mw_cmd_help, "too many arguments");
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        mw_cli_print_usage(stdout, argc < 2 ? &memwatch : &mw_cmd_help);
        return MW_EXIT_OK;
    }
    const struct mw_command *c = mw_cli_find_command(argv[1]);
    if (!c)
        return mw_cli_usage_error(&memwatch, "'%s' is not a memwatch command", argv[1]);
    mw_cli_print_usage(stdout, c);
    return MW_EXIT_OK;
}

/* --version (--help is mw_cli_parse_options'). */
static int main_option(void *args, int opt)
{
    (void)args, (void)opt;
    printf("memwatch %s\n", MEMWATCH_VERSION);
    return MW_EXIT_OK;
}

int main(int argc, char **argv)
{
    int status = mw_cli_parse_options(&memwatch, argc, argv, main_option, NULL);
    if (status != MW_CLI_GO_ON)
        return status;
    if (optind >= argc)
        return mw_cli_usage_error(&memwatch, "no command given");
    const struct mw_command *c = mw_cli_find_command(argv[optind]);
    if (!c)
        return mw_cli_usage_error(&memwatch, "'%s' is not a memwatch command", argv[optind]);
    /* Each command parses its own argv from a fresh getopt state. */
    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0;
    return c->run(cargc, cargv);
}
