/* memwatch diff's hexdumps: the rows of 16 bytes a block shows, old above new, changed
 * bytes marked (in color, or with ^^ under them). */
#ifndef MW_CLI_DIFF_VIEW_H
#define MW_CLI_DIFF_VIEW_H

#include <stddef.h>
#include <stdint.h>

#define MW_DIFF_ROW 16

#define MW_DIFF_RED "\033[31m"
#define MW_DIFF_GREEN "\033[32m"
#define MW_DIFF_BOLD "\033[1m"
#define MW_DIFF_RESET "\033[0m"

/* One byte as a block shows it: its values before and after, whether they are known, and
 * whether it changed. */
struct mw_diff_byte {
    int before_known, after_known, changed;
    unsigned char before, after;
};

/* How a block describes byte b of its object: one for the history, one for the net view. */
typedef void (*mw_diff_describe_fn)(void *ctx, uint64_t b, struct mw_diff_byte *out);

/* The rows a block shows. Sparse: only rows that matter are kept. */
struct mw_diff_view {
    uint64_t size;        /* of the object */
    uint64_t *rows;       /* row numbers (offset / MW_DIFF_ROW), sorted, unique */
    size_t nrows, caprows;
};

/* What a change's heading says: "seq 3  0.003500s  tag (object 2)  <what>  file:line
 * function  thread name  process 1234". */
struct mw_diff_heading {
    uint64_t seq, time_ns;
    const char *tag, *object;     /* object: " (object N)" or "" */
    const char *what;
    const char *file;             /* NULL: native_symbol, else nothing */
    int line;
    const char *function, *native_symbol, *thread_name;
    int64_t thread_id;
    int64_t pid;                  /* the writing process; 0: unknown */
};
void mw_diff_print_heading(const struct mw_diff_heading *h, int color);

/* Headings of one trace among several read as one timeline (timeline_diff.c): each
 * heading starts with the trace's name, shows its time on the timeline (time_ns +
 * offset_ns), and is preceded by a line of its own, MW_DIFF_MARK then that time in
 * decimal, where the blocks of several traces are merged. NULL (the default): headings as
 * for one trace. */
struct mw_diff_timeline {
    const char *trace;            /* as shown (show.h) */
    uint64_t offset_ns;
};
#define MW_DIFF_MARK '\036'      /* ASCII RS: never in diff's output, which escapes controls */
void mw_diff_set_timeline(const struct mw_diff_timeline *t);

/* Rows first..last and ctx rows around them (added in ascending order). */
void mw_diff_view_add_rows(struct mw_diff_view *v, uint64_t first, uint64_t last, unsigned ctx);
/* Prints the view's rows: changed ones as - and + lines, the others once; "..." between
 * rows that do not follow each other; rows of bytes never seen are left out. */
void mw_diff_print_rows(const struct mw_diff_view *v, mw_diff_describe_fn describe, void *ctx,
                        int color);

#endif
