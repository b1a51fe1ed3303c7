/* A command's arguments (see cli.h, DESIGN): its options parsed with getopt_long from its
 * own table, its usage, the messages for usage errors, and the numbers options take. */
#ifndef MW_CLI_ARGS_H
#define MW_CLI_ARGS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

/* What a step of a command returns to go on (else the command ends with its exit status,
 * >= 0), and what an option handler returns at the option after which operands start
 * (trace's -m and -c). */
enum { MW_CLI_GO_ON = -1, MW_CLI_END_OPTIONS = -2 };

/* Handles one option of a command: opt is getopt's value, its argument in optarg. */
typedef int (*mw_cli_option_fn)(void *args, int opt);

/* Parses c's options with getopt_long, built from c's table (at most 16 long options),
 * and calls fn for each; -h prints the usage (exit status 0) and unknown options or missing
 * values are usage errors. MW_CLI_GO_ON when the options ended (optind is then the first
 * operand), else the exit status. */
int mw_cli_parse_options(const struct mw_command *c, int argc, char **argv, mw_cli_option_fn fn,
                         void *args);

/* Prints the command's usage lines to f. */
void mw_cli_print_usage(FILE *f, const struct mw_command *c);
/* One line naming the problem, then the usage on stderr; returns MW_EXIT_USAGE. */
int mw_cli_usage_error(const struct mw_command *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For getopt's '?' (unknown option) or ':' (missing value): one line naming the option as
 * typed, then the usage. Returns MW_EXIT_USAGE. */
int mw_cli_bad_option(const struct mw_command *c, int opt, char **argv);

/* A decimal number without sign or junk: 0 and *out, or -1. */
int mw_cli_parse_u64(const char *s, uint64_t *out);
/* The value of c's option name (as typed: "--limit") when it takes a count from 1 to max:
 * *n set and MW_CLI_GO_ON, or the usage error. */
int mw_cli_count_option(const struct mw_command *c, const char *name, const char *value,
                        uint64_t max, uint64_t *n);
/* The value of c's option name (as typed: "--since") when it takes a change's sequence
 * number: *seq and *has set and MW_CLI_GO_ON, or the usage error. */
int mw_cli_seq_option(const struct mw_command *c, const char *name, const char *value,
                      uint64_t *seq, int *has);

#endif
