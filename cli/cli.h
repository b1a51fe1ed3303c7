/* Shared by the subcommands: the command table's entry points and message helpers.
 * Exit statuses (memwatch(1), EXIT STATUS): 0 success; 1 a failure while doing the work
 * (I/O, SQLite); 2 a usage error or unusable input. `trace` exits with the script's own
 * status. */
#ifndef MW_CLI_H
#define MW_CLI_H

#include <stdio.h>

#define MW_EXIT_OK 0
#define MW_EXIT_FAILURE 1
#define MW_EXIT_USAGE 2

struct mw_command {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    const char *const *usage;            /* usage lines; the first is the synopsis */
    const char *summary;
};

/* "memwatch: <message>" on stderr, once. */
void mw_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the usage lines to f. */
void mw_cli_print_usage(FILE *f, const char *const *usage);
/* One line naming the problem, then the usage on stderr; returns MW_EXIT_USAGE. */
int mw_cli_usage_error(const char *const *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For getopt_long's '?' (unknown option) or ':' (missing value; the option string must
 * start with ':' or "+:"): one line naming the option, then usage. Returns MW_EXIT_USAGE. */
int mw_cli_bad_option(const char *const *usage, int opt, char **argv);

int cmd_trace(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_help(int argc, char **argv);

extern const char *const trace_usage[];
extern const char *const query_usage[];
extern const char *const diff_usage[];
extern const char *const report_usage[];
extern const char *const help_usage[];

const struct mw_command *mw_cli_find_command(const char *name);
const struct mw_command *mw_cli_commands(void);   /* terminated by a zero entry */

#endif
