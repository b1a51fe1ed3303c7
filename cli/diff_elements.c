/* memwatch diff's element lines (see diff_elements.h). */
#include "diff_elements.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elements.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "rowcopy.h"
#include "show.h"

void mw_diff_lines_free(struct mw_diff_lines *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->line[i]);
    free(e->line);
}

static int all_set(const unsigned char *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!m[i])
            return 0;
    return 1;
}

static int any_set(const unsigned char *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (m[i])
            return 1;
    return 0;
}

int mw_diff_format_element(char **line, const char *tag, const struct mw_elem_change *c,
                           const unsigned char *old, const unsigned char *new_, unsigned flags,
                           int color, int *cut)
{
    /* Whole texts, then as a terminal may show them (show.h): the name escaped and quoted
     * when odd, the values (Python reprs) escaped, each shortened visibly. */
    char *raw_name = mw_cli_element_name(tag, c);
    char *raw_ov = mw_cli_element_value(c->scalar, old);
    char *raw_nv = mw_cli_element_value(c->scalar, new_);
    char *name = raw_name ? mw_show(raw_name, strlen(raw_name), MW_SHOW_NAME_MAX, cut) : NULL;
    char *ov = raw_ov ? mw_show_repr(raw_ov, strlen(raw_ov), MW_SHOW_NAME_MAX, cut) : NULL;
    char *nv = raw_nv ? mw_show_repr(raw_nv, strlen(raw_nv), MW_SHOW_NAME_MAX, cut) : NULL;
    free(raw_name);
    free(raw_ov);
    free(raw_nv);
    int n = -1;
    if (name && ov && nv) {
        const char *flag = mw_elem_flags_note(flags);
        int alarm = (flags & MW_ELEM_F_NONFINITE_APPEARED) != 0;
        if (color)
            n = asprintf(line,
                         "  %s: " MW_DIFF_RED "%s" MW_DIFF_RESET " -> " MW_DIFF_GREEN "%s"
                         MW_DIFF_RESET "%s%s%s%s",
                         name, ov, nv, flag ? "  " : "",
                         flag && alarm ? MW_DIFF_BOLD MW_DIFF_RED "!! " : "", flag ? flag : "",
                         flag && alarm ? MW_DIFF_RESET : "");
        else
            n = asprintf(line, "  %s: %s -> %s%s%s%s", name, ov, nv, flag ? "  " : "",
                         flag && alarm ? "!! " : "", flag ? flag : "");
    }
    free(name), free(ov), free(nv);
    return n;
}

/* mw_elem_diff's callback: one element as a line. */
static int elem_line(const struct mw_elem_change *c, void *vctx)
{
    struct mw_diff_lines *e = vctx;
    size_t k = 0;
    while (k + 1 < e->nwr && e->wr[k].offset + e->wr[k].length <= c->offset)
        k++;
    size_t at = (size_t)(c->offset - e->wr[k].offset), size = c->scalar->size;
    const unsigned char *old = all_set(e->old_known[k] + at, size) ? c->old : NULL;
    const unsigned char *new_ = all_set(e->new_known[k] + at, size) ? c->new_ : NULL;
    if (!any_set(e->old_known[k] + at, size) && !any_set(e->new_known[k] + at, size)) {
        e->unknown++;   /* no byte of it known: counted, not listed as "? -> ?" */
        return 0;
    }
    unsigned flags = c->flags;
    if (!new_)
        flags = 0;
    else if (!old)
        flags &= MW_ELEM_F_NONFINITE_APPEARED;
    e->nan += (flags & MW_ELEM_F_NAN_APPEARED) != 0;
    e->inf += (flags & MW_ELEM_F_INF_APPEARED) != 0;
    char *line;
    int n = mw_diff_format_element(&line, e->tag, c, old, new_, flags, e->color, &e->cut);
    if (n < 0 || MW_GROW(e->line, e->cap, e->n + 1) != 0) {
        if (n >= 0)
            free(line);
        e->oom = 1;
        return 1;
    }
    e->line[e->n++] = line;
    return 0;
}

/* The runs widened to whole items of is bytes (within the object's size), merged where
 * they then touch, into wr; returns how many. */
static size_t widen_runs(const uint64_t *runs, size_t nruns, size_t is, uint64_t size,
                         struct mw_rec_range *wr)
{
    size_t n = 0;
    for (size_t i = 0; i < nruns; i++) {
        uint64_t a = runs[2 * i] / is * is, b = (runs[2 * i + 1] + is - 1) / is * is;
        if (b > size)
            b = size;
        if (a >= b)
            continue;
        if (n && wr[n - 1].offset + wr[n - 1].length >= a) {
            if (b > wr[n - 1].offset + wr[n - 1].length)
                wr[n - 1].length = b - wr[n - 1].offset;
            continue;
        }
        wr[n++] = (struct mw_rec_range){a, b - a, NULL, NULL};
    }
    return n;
}

/* The bytes of widened range g as describe tells them, and which of them it knows. */
static int describe_range(struct mw_rec_range *g, unsigned char **ok, unsigned char **nk,
                          mw_diff_describe_fn describe, void *dctx)
{
    size_t len = (size_t)g->length;
    unsigned char *ob = malloc(len), *nb = malloc(len);
    *ok = malloc(len);
    *nk = malloc(len);
    g->old = ob;
    g->new_ = nb;
    if (!ob || !nb || !*ok || !*nk)
        return -1;
    for (size_t b = 0; b < len; b++) {
        struct mw_diff_byte ba;
        describe(dctx, g->offset + b, &ba);
        /* A byte one side does not know may differ: its stand-in differs from the other
         * side, so that its element is listed (with "?"), never taken as unchanged. */
        unsigned char before = ba.before, after = ba.after;
        if (!ba.before_known)
            before = ba.after_known ? (unsigned char)~after : 0;
        if (!ba.after_known)
            after = (unsigned char)~before;
        ob[b] = before;
        nb[b] = after;
        (*ok)[b] = (unsigned char)ba.before_known;
        (*nk)[b] = (unsigned char)ba.after_known;
    }
    return 0;
}

int mw_diff_collect_elements(const struct mw_diff_object *o, const uint64_t *runs,
                             size_t nruns, mw_diff_describe_fn describe, void *dctx,
                             struct mw_diff_lines *e)
{
    size_t is = mw_elem_layout_itemsize(o->layout);
    struct mw_rec_range *wr = calloc(nruns ? nruns : 1, sizeof *wr);
    unsigned char **ok = calloc(nruns ? nruns : 1, sizeof *ok);
    unsigned char **nk = calloc(nruns ? nruns : 1, sizeof *nk);
    size_t n = 0;
    int rc = -1;
    if (!wr || !ok || !nk)
        goto out;
    n = widen_runs(runs, nruns, is, o->size, wr);
    for (size_t i = 0; i < n; i++)
        if (describe_range(&wr[i], &ok[i], &nk[i], describe, dctx) < 0)
            goto out;
    e->wr = wr;
    e->old_known = ok;
    e->new_known = nk;
    e->nwr = n;
    rc = n ? mw_elem_diff(o->layout, wr, n, NULL, NULL, 0, elem_line, e) : 0;
    if (rc == MW_EINVAL)
        rc = -2;   /* bytes past the elements the object's shape has (a hand-made trace) */
    else if (e->oom || rc)
        rc = -1;
out:
    for (size_t i = 0; wr && i < n; i++) {
        free((void *)wr[i].old);
        free((void *)wr[i].new_);
        free(ok[i]);
        free(nk[i]);
    }
    free(wr);
    free(ok);
    free(nk);
    return rc;
}

void mw_diff_print_nonfinite(uint64_t nan, uint64_t inf, int color)
{
    if (!nan && !inf)
        return;
    char what[96];
    if (nan && inf)
        snprintf(what, sizeof what, "%" PRIu64 " NaN and %" PRIu64 " Inf appeared", nan, inf);
    else if (nan)
        snprintf(what, sizeof what, "%" PRIu64 " NaN appeared", nan);
    else
        snprintf(what, sizeof what, "%" PRIu64 " Inf appeared", inf);
    printf("%s!! %s%s\n", color ? MW_DIFF_BOLD MW_DIFF_RED : "", what,
           color ? MW_DIFF_RESET : "");
}

void mw_diff_print_lines(const struct mw_diff_lines *e, int color)
{
    mw_diff_print_nonfinite(e->nan, e->inf, color);
    for (size_t i = 0; i < e->n; i++)
        puts(e->line[i]);
}
