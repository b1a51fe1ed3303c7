/* memwatch diff's hexdumps (see diff_view.h). */
#include "diff_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_grow.h"
#include "show.h"

/* Set while one of several traces is shown (diff_view.h). */
static const struct mw_diff_timeline *timeline;

void mw_diff_set_timeline(const struct mw_diff_timeline *t)
{
    timeline = t;
}

void mw_diff_print_heading(const struct mw_diff_heading *h, int color)
{
    uint64_t time_ns = h->time_ns;
    if (timeline) {
        time_ns = time_ns > UINT64_MAX - timeline->offset_ns ? UINT64_MAX
                                                              : time_ns + timeline->offset_ns;
        printf("%c%" PRIu64 "\n", MW_DIFF_MARK, time_ns);
    }
    /* Tag, place and thread are the script's: shown as a terminal may show them (show.h). */
    char *raw = NULL, *where = NULL, *thread = NULL, id[32] = "";
    if (h->file && asprintf(&raw, "%s:%d%s%s", h->file, h->line, h->function ? " " : "",
                            h->function ? h->function : "") < 0)
        raw = NULL;
    const char *w = raw ? raw : h->native_symbol;
    if (w)
        where = mw_show(w, strlen(w), MW_SHOW_NAME_MAX, NULL);
    if (h->thread_name)
        thread = mw_show(h->thread_name, strlen(h->thread_name), MW_SHOW_NAME_MAX, NULL);
    else if (h->thread_id)
        snprintf(id, sizeof id, "%" PRId64, h->thread_id);
    char *tag = mw_show(h->tag, strlen(h->tag), MW_SHOW_NAME_MAX, NULL);
    char process[40] = "";
    if (h->pid > 0)
        snprintf(process, sizeof process, "  process %" PRId64, h->pid);
    printf("%s%s%sseq %" PRIu64 "  %.6fs  %s%s  %s%s%s%s%s%s%s\n", color ? MW_DIFF_BOLD : "",
           timeline ? timeline->trace : "", timeline ? "  " : "", h->seq, (double)time_ns / 1e9,
           tag ? tag : "?", h->object, h->what, where ? "  " : "", where ? where : "",
           thread || id[0] ? "  thread " : "", thread ? thread : id, process,
           color ? MW_DIFF_RESET : "");
    free(raw);
    free(where);
    free(thread);
    free(tag);
}

void mw_diff_view_add_rows(struct mw_diff_view *v, uint64_t first, uint64_t last, unsigned ctx)
{
    uint64_t maxrow = v->size ? (v->size - 1) / MW_DIFF_ROW : 0;
    uint64_t a = first > ctx ? first - ctx : 0;
    uint64_t b = last + ctx > maxrow ? maxrow : last + ctx;
    for (uint64_t row = a; row <= b; row++) {
        if (v->nrows && v->rows[v->nrows - 1] >= row)
            continue;   /* ranges arrive in offset order: only the tail can overlap */
        if (MW_GROW(v->rows, v->caprows, v->nrows + 1) != 0)
            return;
        v->rows[v->nrows++] = row;
    }
}

/* Byte i of a row as one of its lines shows it: 1 and *v when known. */
static int side(const struct mw_diff_byte *row, int i, int after, unsigned char *v)
{
    *v = after ? row[i].after : row[i].before;
    return after ? row[i].after_known : row[i].before_known;
}

static void hex_line(char sign, uint64_t off, const struct mw_diff_byte *row, int n, int after,
                     int color)
{
    const char *on = after ? MW_DIFF_GREEN : MW_DIFF_RED;
    unsigned char v;
    printf("%c %08" PRIx64 " ", sign, off);
    for (int i = 0; i < MW_DIFF_ROW; i++) {
        if (i == 8)
            putchar(' ');
        if (i >= n) {
            fputs("   ", stdout);
            continue;
        }
        int known = side(row, i, after, &v);
        int mark = color && row[i].changed && sign != ' ';
        putchar(' ');
        if (mark)
            fputs(on, stdout);
        if (known)
            printf("%02x", v);
        else
            fputs("??", stdout);
        if (mark)
            fputs(MW_DIFF_RESET, stdout);
    }
    fputs("  |", stdout);
    for (int i = 0; i < n; i++) {
        int known = side(row, i, after, &v);
        int mark = color && row[i].changed && sign != ' ';
        if (mark)
            fputs(on, stdout);
        putchar(!known ? ' ' : (v >= 0x20 && v < 0x7f ? v : '.'));
        if (mark)
            fputs(MW_DIFF_RESET, stdout);
    }
    fputs("|\n", stdout);
}

static void marker_line(const struct mw_diff_byte *row, int n)
{
    fputs("           ", stdout);   /* "+ 00000000 " */
    int last = -1;
    for (int i = 0; i < n; i++)
        if (row[i].changed)
            last = i;
    for (int i = 0; i <= last; i++) {
        if (i == 8)
            putchar(' ');
        fputs(row[i].changed ? " ^^" : "   ", stdout);
    }
    putchar('\n');
}

void mw_diff_print_rows(const struct mw_diff_view *v, mw_diff_describe_fn describe, void *ctx,
                        int color)
{
    struct mw_diff_byte row[MW_DIFF_ROW];
    for (size_t i = 0; i < v->nrows; i++) {
        if (i > 0 && v->rows[i] != v->rows[i - 1] + 1)
            puts("  ...");
        uint64_t off = v->rows[i] * MW_DIFF_ROW;
        int n = (int)(v->size - off < MW_DIFF_ROW ? v->size - off : MW_DIFF_ROW);
        int changed = 0, known = 0;
        for (int k = 0; k < n; k++) {
            describe(ctx, off + (uint64_t)k, &row[k]);
            changed |= row[k].changed;
            known |= row[k].before_known | row[k].after_known;
        }
        if (changed) {
            hex_line('-', off, row, n, 0, color);
            hex_line('+', off, row, n, 1, color);
            if (!color)
                marker_line(row, n);
        } else if (known) {
            hex_line(' ', off, row, n, 0, color);
        }
    }
}
