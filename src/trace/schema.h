/* The trace schema, embedded at build time from schemas/trace.sql (see CMakeLists.txt):
 * the file is the single source of truth, this is its text and its version. */
#ifndef MW_TRACE_SCHEMA_H
#define MW_TRACE_SCHEMA_H

/* The whole of schemas/trace.sql, NUL-terminated. */
extern const char mw_trace_schema_sql[];
/* Its `PRAGMA user_version`: the newest schema this memwatch writes and reads. */
extern const int mw_trace_schema_version;

#endif
