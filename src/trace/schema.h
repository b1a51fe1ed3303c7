/* The trace schema, embedded at build time from schemas/trace.sql (see CMakeLists.txt):
 * the file is the single source of truth, this is its text and its version. */
#ifndef MW_TRACE_SCHEMA_H
#define MW_TRACE_SCHEMA_H

/* The whole of schemas/trace.sql, NUL-terminated. */
extern const char mw_trace_schema_sql[];
/* Its `PRAGMA user_version`: the newest schema this memwatch writes and reads. */
extern const int mw_trace_schema_version;

/* The last schema of version 1 (schemas/trace-v1.sql, kept as it was): what the readers
 * check a version 1 trace against. */
extern const char mw_trace_schema_v1_sql[];
extern const int mw_trace_schema_v1_version;
/* The last schema of version 2 (schemas/trace-v2.sql, kept as it was). */
extern const char mw_trace_schema_v2_sql[];
extern const int mw_trace_schema_v2_version;

#endif
