/* memwatch diff given several traces: the tag's changes in every trace as one history in
 * wall-clock order, each heading naming its trace (timeline.h).
 *
 * DESIGN: an object of one trace is not an object of another (a tag names one object per
 * process), so each trace's history is shown by the one-trace diff, unchanged, with its own
 * objects' bytes as context, never another trace's. Its output goes to a temporary file
 * with a mark before each heading (diff_view.h, MW_DIFF_MARK: the block's time on the
 * timeline); the blocks of all traces are then merged by that time. Memory is a line per
 * trace; the temporary files hold what is printed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "diff_view.h"
#include "show.h"
#include "timeline.h"

/* One trace's blocks, read back. */
struct blocks {
    FILE *f;
    char *line;        /* the current line: a mark, or NULL at the end */
    size_t cap;
    uint64_t time;     /* the mark's time */
};

static int is_mark(const char *line)
{
    return line && line[0] == MW_DIFF_MARK;
}

/* Reads the next line into b->line (NULL at the end). */
static void next_line(struct blocks *b)
{
    if (getline(&b->line, &b->cap, b->f) < 0) {
        free(b->line);
        b->line = NULL;
        b->cap = 0;
    } else if (is_mark(b->line)) {
        b->time = strtoull(b->line + 1, NULL, 10);
    }
}

/* Copies the block after b's mark up to the next mark, without the blank lines that
 * separated it from the next block (the merge puts its own). */
static void copy_block(struct blocks *b)
{
    size_t blanks = 0;
    for (next_line(b); b->line && !is_mark(b->line); next_line(b)) {
        if (strcmp(b->line, "\n") == 0) {
            blanks++;
            continue;
        }
        for (; blanks; blanks--)
            putchar('\n');
        fputs(b->line, stdout);
    }
}

/* Runs fn on trace t with standard output in a temporary file, its headings marked. The
 * exit status; *out the file, rewound. */
static int capture(struct mw_timeline *tl, size_t i, mw_cli_trace_fn fn, void *ctx, FILE **out)
{
    struct mw_timeline_trace *t = &tl->t[i];
    char *shown = mw_show(t->label, strlen(t->label), MW_SHOW_NAME_MAX, NULL);
    FILE *f = tmpfile();
    int saved = -1;
    if (!shown || !f || fflush(stdout) != 0 || (saved = dup(STDOUT_FILENO)) < 0 ||
        dup2(fileno(f), STDOUT_FILENO) < 0) {
        mw_cli_error("cannot set aside the history of %s: %s", mw_show_name(t->path),
                     strerror(errno));
        if (saved >= 0)
            close(saved);
        if (f)
            fclose(f);
        free(shown);
        return MW_EXIT_FAILURE;
    }
    struct mw_diff_timeline mark = {shown, t->offset_ns};
    mw_diff_set_timeline(&mark);
    int status = fn(t->r, t->path, ctx);
    mw_diff_set_timeline(NULL);
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == MW_EXIT_OK) {
        mw_cli_error("cannot set aside the history of %s: %s", mw_show_name(t->path),
                     strerror(errno));
        status = MW_EXIT_FAILURE;
    }
    clearerr(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    free(shown);
    rewind(f);
    *out = f;
    return status;
}

/* Every trace's blocks, earliest first (ties: the trace given first). */
static int merge(struct blocks *b, size_t n)
{
    int printed = 0;
    for (;;) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (b[i].line && (best == n || b[i].time < b[best].time))
                best = i;
        if (best == n)
            break;
        if (printed++)
            putchar('\n');
        copy_block(&b[best]);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mw_cli_error("cannot write the output: %s", strerror(errno));
        return MW_EXIT_FAILURE;
    }
    return MW_EXIT_OK;
}

int mw_timeline_diff(char *const *paths, size_t n, const char *tag, mw_cli_trace_fn fn,
                     void *ctx)
{
    struct mw_timeline tl;
    int status = mw_timeline_open(paths, n, &tl);
    if (status)
        return status;
    struct blocks *b = calloc(n, sizeof *b);
    if (!b) {
        mw_cli_error("out of memory");
        status = MW_EXIT_FAILURE;
    } else {
        status = mw_timeline_check_tag(&tl, tag);
    }
    /* Traces without the tag have nothing to show: they are passed over. */
    for (size_t i = 0; i < n && status == MW_EXIT_OK; i++) {
        int has = mw_trace_reader_has_tag(tl.t[i].r, tag);
        if (has < 0) {
            mw_cli_error("cannot read %s: %s", mw_show_name(tl.t[i].path),
                         mw_trace_reader_errmsg(tl.t[i].r));
            status = MW_EXIT_FAILURE;
        } else if (has) {
            status = capture(&tl, i, fn, ctx, &b[i].f);
            /* Anything before the first heading belongs to no block: it goes first. */
            for (next_line(&b[i]); status == MW_EXIT_OK && b[i].line && !is_mark(b[i].line);
                 next_line(&b[i]))
                fputs(b[i].line, stdout);
        }
    }
    if (status == MW_EXIT_OK)
        status = merge(b, n);
    for (size_t i = 0; b && i < n; i++) {
        if (b[i].f)
            fclose(b[i].f);
        free(b[i].line);
    }
    free(b);
    mw_timeline_close(&tl);
    return status;
}
