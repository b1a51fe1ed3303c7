/* memwatch query --summary's list of processes (see processes.h). */
#include "processes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
