/* The trace writer's inserts into change_rows (schemas/trace.sql), several rows per
 * statement.
 *
 * DESIGN: SQLite runs a statement's program, and its start and end, once per step; a
 * statement of MW_CHANGE_ROWS_PER_INSERT rows pays them once for all, which is a quarter
 * of an insert of a small change. Rows wait here, their bytes copied, until there are
 * that many, or until the writer commits or needs the table as it is (flush): a batch
 * never spans a commit, so the file holds every change a commit counted. */
#ifndef MW_TRACE_CHANGE_ROWS_H
#define MW_TRACE_CHANGE_ROWS_H

#include <stdint.h>

typedef struct sqlite3 sqlite3;
typedef struct mw_change_rows mw_change_rows;

#define MW_CHANGE_ROWS_PER_INSERT 32

/* One row of change_rows. site 0: NULL. has_range 0: offset, length, old, new and
 * complete are NULL (a change of several ranges, in `ranges`); bytes 0: old and new are
 * NULL (kept elsewhere), else new holds length bytes and old too, or NULL when the old
 * bytes are unavailable. */
struct mw_change_row {
    uint64_t seq, time_ns, object_id;
    int64_t site;
    uint64_t nranges, changed_bytes;
    int kept;
    int has_range, bytes, complete;
    uint64_t offset, length;
    const unsigned char *old, *new_;
};

/* per_insert: rows a statement takes (1 to MW_CHANGE_ROWS_PER_INSERT; 1 stores each row
 * at once). 0, -ENOMEM, or MW_ETRACE (a statement could not be prepared). */
int mw_change_rows_create(sqlite3 *db, int per_insert, mw_change_rows **out);
/* Finalizes its statements (rows still waiting are lost: flush first). */
void mw_change_rows_release_db(mw_change_rows *r);
void mw_change_rows_destroy(mw_change_rows *r);   /* accepts NULL */

/* Adds a row, with a copy of its bytes; may insert the rows waiting. 0, -ENOMEM, or
 * MW_ETRACE (SQLite's message is on the connection). */
int mw_change_rows_add(mw_change_rows *r, const struct mw_change_row *row);
/* Inserts the rows waiting. 0 or MW_ETRACE. */
int mw_change_rows_flush(mw_change_rows *r);
/* The rows waiting are dropped (their transaction was rolled back). */
void mw_change_rows_forget(mw_change_rows *r);

#endif
