/* The processes of a run as `memwatch query --summary` lists them. */
#ifndef MW_CLI_PROCESSES_H
#define MW_CLI_PROCESSES_H

#include <sqlite3.h>

/* One line per process of the trace on db (pid, parent, changes, how it ended, command
 * line shown escaped); nothing for traces made before processes were recorded. */
void mw_query_print_processes(sqlite3 *db);

#endif
