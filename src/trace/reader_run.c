/* The run's interpreter, read from a trace (reader_run.h). One small statement on the
 * reader's guarded connection (reader_guard.h), like every read of a trace. */
#include "reader_run.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* The text in column 0 of the first row of sql, its first word only when first_word;
 * NULL when there is none. -1 on a read error. */
static int read_text(sqlite3 *db, const char *sql, int first_word, char **out)
{
    *out = NULL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        size_t n = t ? (size_t)sqlite3_column_bytes(s, 0) : 0;
        if (first_word && t)
            n = strcspn(t, " \t\n");
        if (t && n && !(*out = strndup(t, n)))
            rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int mw_trace_reader_python(mw_trace_reader *r, struct mw_trace_python *out)
{
    memset(out, 0, sizeof *out);
    sqlite3 *db = mw_trace_reader_db(r);
    if (read_text(db, "SELECT python_version FROM run WHERE id = 1", 1, &out->version) < 0 ||
        read_text(db, "SELECT value FROM meta WHERE key = 'python_path'", 0, &out->path) < 0 ||
        read_text(db, "SELECT value FROM meta WHERE key = 'python_chosen_by'", 0,
                  &out->chosen_by) < 0) {
        mw_trace_python_free(out);
        return -1;
    }
    return 0;
}

void mw_trace_python_free(struct mw_trace_python *p)
{
    free(p->version);
    free(p->path);
    free(p->chosen_by);
    memset(p, 0, sizeof *p);
}
