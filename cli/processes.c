/* memwatch query --summary's lines about the run: what it left out, its processes (see
 * processes.h). */
#include "processes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_settings.h"
#include "show.h"

void mw_query_print_processes(sqlite3 *db)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT p.pid, p.ppid, p.root, p.traced, p.exit_status, p.end_signal,"
                           " (SELECT count(*) FROM changes c WHERE c.pid = p.pid), p.argv"
                           " FROM processes p ORDER BY p.start_unix_ns, p.pid", -1, &s,
                           NULL) != SQLITE_OK)
        return;   /* no processes table: a trace from before */
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *argv = (const char *)sqlite3_column_text(s, 7);
        char *shown = argv ? mw_show(argv, strlen(argv), MW_SHOW_NAME_MAX, NULL) : NULL;
        char end[48] = "";
        if (sqlite3_column_type(s, 5) != SQLITE_NULL)
            snprintf(end, sizeof end, ", killed by signal %d", sqlite3_column_int(s, 5));
        else if (sqlite3_column_type(s, 4) != SQLITE_NULL)
            snprintf(end, sizeof end, ", exit status %d", sqlite3_column_int(s, 4));
        long long changes = sqlite3_column_int64(s, 6);
        printf("process %lld (%s %lld): %lld change%s%s%s %s\n", sqlite3_column_int64(s, 0),
               sqlite3_column_int(s, 2) ? "root, parent" : "parent", sqlite3_column_int64(s, 1),
               changes, changes == 1 ? "" : "s", end,
               sqlite3_column_int(s, 3) ? "" : ", not traced", shown ? shown : "");
        free(shown);
    }
    sqlite3_finalize(s);
}

/* A line when memory ran out in the traced process (src/python/check.c), whose changes are
 * there with less than usual, and one when changes were lost (run.changes_dropped: for
 * lack of memory, or cut off by the death of the process sending them, which the trace
 * does not tell apart): the table must not look complete. */
static void print_shortfall(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT CAST(value AS INTEGER) FROM meta "
                           "WHERE key = 'changes_short_of_memory'), "
                           "(SELECT changes_dropped FROM run WHERE id = 1)", -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        long long short_of = sqlite3_column_int64(s, 0), lost = sqlite3_column_int64(s, 1);
        if (short_of > 0)
            printf("incomplete: %lld change%s recorded with less than usual for lack of memory\n",
                   short_of, short_of == 1 ? "" : "s");
        if (lost > 0)
            printf("incomplete: %lld change%s lost, for lack of memory or cut off by the end of "
                   "the process sending %s\n", lost, lost == 1 ? "" : "s", lost == 1 ? "it" : "them");
    }
    sqlite3_finalize(s);
}

/* A line when --max-trace-size left changes out (meta changes_not_recorded): the table
 * counts only the changes that are there. */
static void print_not_recorded(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT CAST(value AS INTEGER) FROM meta "
                           "WHERE key = 'changes_not_recorded'), "
                           "(SELECT CAST(value AS INTEGER) FROM meta "
                           "WHERE key = 'max_trace_size')", -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        long long lost = sqlite3_column_int64(s, 0), limit = sqlite3_column_int64(s, 1);
        char size[32];
        mw_format_size(limit > 0 ? (uint64_t)limit : 0, size, sizeof size);
        if (lost > 0)
            printf("incomplete: %lld change%s not recorded: the trace reached "
                   "--max-trace-size %s\n", lost, lost == 1 ? " was" : "s were", size);
    }
    sqlite3_finalize(s);
}

void mw_query_print_incomplete(sqlite3 *db)
{
    print_shortfall(db);
    print_not_recorded(db);
}
