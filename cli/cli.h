/* Shared by the subcommands: the command table's entries and the one-line message.
 * Exit statuses (memwatch(1), EXIT STATUS): 0 success; 1 a failure while doing the work
 * (I/O, SQLite); 2 a usage error or unusable input. `trace` exits with the script's own
 * status.
 *
 * DESIGN: each command is one entry (struct mw_command, in its cmd_*.c) that declares each
 * of its options once, with the option's lines in the usage: getopt's option string and
 * long options are built from the same table that -h prints (args.c), so the help cannot
 * list an option the parser does not take, or the other way round. */
#ifndef MW_CLI_H
#define MW_CLI_H

#include <stdio.h>

#define MW_EXIT_OK 0
#define MW_EXIT_FAILURE 1
#define MW_EXIT_USAGE 2

/* One option of a command. */
struct mw_cli_option {
    const char *name;        /* long name, or NULL: a short option only */
    int has_arg;             /* no_argument, required_argument or optional_argument */
    int val;                 /* its letter, or a value above 255 for a long option only */
    const char *help;        /* its lines in the usage ('\n' between them), or NULL when the
                                line of an option before it describes it too */
};

/* In a command's usage lines, where its options' lines go (and, for memwatch itself, the
 * list of commands). */
extern const char mw_cli_list_here[];
#define MW_CLI_LIST mw_cli_list_here

struct mw_command {
    const char *name;
    const char *summary;                 /* its line in memwatch's own usage */
    const char *const *usage;            /* its usage lines, NULL-terminated: the first is
                                            "usage: ...", and MW_CLI_LIST is a placeholder */
    const struct mw_cli_option *options; /* ends with a zero entry; NULL: none */
    const struct mw_command *const *subcommands;   /* listed at MW_CLI_LIST (memwatch
                                                      itself), NULL-terminated, or NULL */
    const char *getopt_flags;            /* ":" or "+:" (options end at the first operand) */
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
};

extern const struct mw_command mw_cmd_trace, mw_cmd_query, mw_cmd_diff, mw_cmd_report,
    mw_cmd_help;

int cmd_trace(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_help(int argc, char **argv);

/* The subcommand named name, or NULL. */
const struct mw_command *mw_cli_find_command(const char *name);

/* "memwatch: <message>" on stderr, once (args.c, with the usage errors). */
void mw_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
