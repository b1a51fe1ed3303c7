/* The cells of `memwatch query`'s change rows (cmd_query.c), shared with the timeline of
 * several traces (timeline_query.c), which puts its trace columns before them. */
#ifndef MW_CLI_QUERY_CELLS_H
#define MW_CLI_QUERY_CELLS_H

#include <stddef.h>

#include "format.h"
#include "reader.h"

/* The columns of a change row: in tables, and in CSV, JSON and JSONL. */
extern const char *const table_cols[], *const data_cols[];
extern const int table_ncols, data_ncols;

/* The text of a table row that is made for it: where the write came from, and the thread. */
struct row_text {
    char *where;       /* malloc'd, or NULL: free it after the row is written */
    char thread[24];
};

/* A change row's table_ncols cells (its texts in t) and data_ncols cells. */
void change_table_cells(struct mw_cell *c, const struct mw_trace_row *row, struct row_text *t);
void change_data_cells(struct mw_cell *c, const struct mw_trace_row *row);

/* `memwatch query` given several traces (timeline_query.c): the exit status. */
int mw_timeline_query(char *const *paths, size_t n, const struct mw_trace_filter *f,
                      enum mw_format format, int summary, int elements, const char *sql);

#endif
