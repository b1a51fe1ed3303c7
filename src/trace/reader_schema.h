/* A trace's schema against the one memwatch writes for the file's version
 * (schemas/trace.sql, or schemas/trace-v1.sql and trace-v2.sql for version 1 and 2 traces;
 * all embedded in the binary), checked before a reader runs anything else on the file
 * (reader_guard.h says why). A reader reads tables, and in version 3 the view changes; a
 * file can put a query of its own in their place, so the view must be memwatch's. */
#ifndef MW_TRACE_READER_SCHEMA_H
#define MW_TRACE_READER_SCHEMA_H

#include <stddef.h>

typedef struct sqlite3 sqlite3;

enum {
    MW_SCHEMA_OK = 0,
    MW_SCHEMA_NOT_TRACE = 1,   /* no meta table: some other SQLite database */
    MW_SCHEMA_HOSTILE = 2,     /* err says what is wrong */
};

/* Checks the schema of the trace open on db:
 *   - each of memwatch's tables (meta, run, objects, changes or in version 3 change_rows
 *     and sites, ranges, and change_stats when there is one, since older traces lack it)
 *     is an ordinary table, not a view or a virtual table, and has at least the columns
 *     memwatch writes, none of them generated;
 *   - each of memwatch's views that the file has is exactly memwatch's definition, and
 *     version 3's changes (which readers read) is there;
 *   - the file has no trigger and no virtual table at all.
 * Tables, columns and views memwatch does not know are left alone: later schema versions
 * add them (schemas/trace.sql, VERSIONING). Returns MW_SCHEMA_*, with the problem in err
 * for MW_SCHEMA_HOSTILE, or -1 when SQLite failed (its message is on db). */
int mw_reader_schema_check(sqlite3 *db, char *err, size_t errlen);

#endif
