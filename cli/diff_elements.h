/* memwatch diff for typed objects: the elements under a block's changed bytes, decoded from
 * the bytes the block describes (so bytes a change did not touch come from the rest of the
 * history, like the hexdump's context), as "name[index]: old -> new" lines. */
#ifndef MW_CLI_DIFF_ELEMENTS_H
#define MW_CLI_DIFF_ELEMENTS_H

struct mw_elem_change;

#include <stddef.h>
#include <stdint.h>

#include "diff_history.h"
#include "diff_view.h"

/* The changed elements of one block, as lines, with their NaN/Inf counts. */
struct mw_diff_lines {
    char **line;
    size_t n, cap;
    uint64_t nan, inf;
    uint64_t unknown;         /* elements of which the trace knows no byte, before or after */
    int oom;
    int cut;                  /* a name or value was shortened (show.h) */
    /* the widened ranges' known-byte masks, to tell decoded values from guesses */
    const struct mw_rec_range *wr;
    unsigned char *const *old_known, *const *new_known;
    size_t nwr;
    const char *tag;
    int color;
};

/* Decodes the elements under byte runs [runs[2i], runs[2i+1]) of object o (which has a
 * layout) into e, with each byte's before and after values from describe. 0, -1 (out of
 * memory) or -2 (bytes past the elements the object's shape has: a hand-made trace). */
int mw_diff_collect_elements(const struct mw_diff_object *o, const uint64_t *runs,
                             size_t nruns, mw_diff_describe_fn describe, void *dctx,
                             struct mw_diff_lines *e);
/* One element's line, "  name[index]: old -> new  note" (NULL old or new: "?"), into a
 * new string *line, its name and values escaped for a terminal (show.h; *cut is set when
 * one was shortened); asprintf's return, -1 when out of memory. */
int mw_diff_format_element(char **line, const char *tag, const struct mw_elem_change *c,
                           const unsigned char *old, const unsigned char *new_, unsigned flags,
                           int color, int *cut);
/* "!! 2 NaN appeared" when some did. */
void mw_diff_print_nonfinite(uint64_t nan, uint64_t inf, int color);
/* "!! 2 NaN appeared" when some did; then the lines. */
void mw_diff_print_lines(const struct mw_diff_lines *e, int color);
void mw_diff_lines_free(struct mw_diff_lines *e);

#endif
