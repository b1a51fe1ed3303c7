/* The lines of `memwatch query --summary` about the run: what it left out, its processes. */
#ifndef MW_CLI_PROCESSES_H
#define MW_CLI_PROCESSES_H

#include <sqlite3.h>

/* One line per process of the trace on db (pid, parent, changes, how it ended, command
 * line shown escaped); nothing for traces made before processes were recorded. */
void mw_query_print_processes(sqlite3 *db);
/* A line for each way the run left changes out or short (memory ran out in the traced
 * process; --max-trace-size was reached), so that the table does not look complete. */
void mw_query_print_incomplete(sqlite3 *db);

#endif
