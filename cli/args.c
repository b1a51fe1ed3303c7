/* A command's arguments (see args.h). */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "show.h"

#define MAX_OPTIONS 16

/* getopt_long's arguments, built from a command's table. */
struct getopt_args {
    char shortopts[3 * MAX_OPTIONS + 3];
    struct option longopts[MAX_OPTIONS + 1];
};

static void build_getopt(struct getopt_args *g, const struct mw_command *c)
{
    memset(g, 0, sizeof(*g));
    size_t s = (size_t)snprintf(g->shortopts, sizeof g->shortopts, "%s", c->getopt_flags);
    size_t l = 0;
    for (const struct mw_cli_option *o = c->options; o && o->val; o++) {
        if (o->val < 256 && s + 3 < sizeof g->shortopts) {
            g->shortopts[s++] = (char)o->val;
            if (o->has_arg != no_argument)
                g->shortopts[s++] = ':';
            if (o->has_arg == optional_argument)
                g->shortopts[s++] = ':';
        }
        if (o->name && l < MAX_OPTIONS)
            g->longopts[l++] = (struct option){o->name, o->has_arg, NULL, o->val};
    }
    g->shortopts[s] = '\0';
}

int mw_cli_parse_options(const struct mw_command *c, int argc, char **argv, mw_cli_option_fn fn,
                         void *args)
{
    struct getopt_args g;
    build_getopt(&g, c);
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (opt == 'h') {
            mw_cli_print_usage(stdout, c);
            return MW_EXIT_OK;
        }
        if (opt == '?' || opt == ':')
            return mw_cli_bad_option(c, opt, argv);
        int rc = fn(args, opt);
        if (rc == MW_CLI_END_OPTIONS)
            break;
        if (rc != MW_CLI_GO_ON)
            return rc;
    }
    return MW_CLI_GO_ON;
}

const char mw_cli_list_here[] = "";

void mw_cli_print_usage(FILE *f, const struct mw_command *c)
{
    for (const char *const *line = c->usage; *line; line++) {
        if (*line != mw_cli_list_here) {
            fprintf(f, "%s\n", *line);
            continue;
        }
        for (const struct mw_command *const *s = c->subcommands; s && *s; s++)
            fprintf(f, "   %-8s %s\n", (*s)->name, (*s)->summary);
        for (const struct mw_cli_option *o = c->options; o && o->val; o++)
            if (o->help)
                fprintf(f, "%s\n", o->help);
    }
}

/* One line, whatever the message holds: names in it come from traces and file systems, and
 * SQLite's messages quote them too, so what a terminal would act on is escaped (show.h). */
static void verror(const char *fmt, va_list ap)
{
    char *msg = NULL;
    fputs("memwatch: ", stderr);
    if (vasprintf(&msg, fmt, ap) >= 0) {
        mw_show_message(stderr, msg);
        free(msg);
    } else {
        fputs("out of memory", stderr);
    }
    fputc('\n', stderr);
}

void mw_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

int mw_cli_usage_error(const struct mw_command *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    mw_cli_print_usage(stderr, c);
    return MW_EXIT_USAGE;
}

int mw_cli_bad_option(const struct mw_command *c, int opt, char **argv)
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
        return mw_cli_usage_error(c, "option '%s' requires a value", name);
    return mw_cli_usage_error(c, "unknown option '%s'", name);
}

int mw_cli_parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int mw_cli_seq_option(const struct mw_command *c, const char *name, const char *value,
                      uint64_t *seq, int *has)
{
    if (mw_cli_parse_u64(value, seq))
        return mw_cli_usage_error(c, "'%s' needs a sequence number, not '%s'", name, value);
    *has = 1;
    return MW_CLI_GO_ON;
}

int mw_cli_count_option(const struct mw_command *c, const char *name, const char *value,
                        uint64_t max, uint64_t *n)
{
    if (mw_cli_parse_u64(value, n) || *n == 0 || *n > max)
        return mw_cli_usage_error(c, "'%s' needs a positive number, not '%s'", name, value);
    return MW_CLI_GO_ON;
}
