/* memwatch query --sql's functions over a trace's values (schemas/trace.sql, VALUES):
 *   mw_old(seq, offset), mw_new(seq, offset)  the old and new bytes of change seq's range
 *                                             at offset, however the trace keeps them
 *   mw_value(seq)                             the object's whole value just after change
 *                                             seq (--values=full traces)
 * Each is NULL where the trace does not tell the bytes (not kept, dropped, unavailable, or
 * no such change or range): never a guess. Registered on the reader's read-only
 * connection; they read the trace through it. */
#ifndef MW_TRACE_VALUE_SQL_H
#define MW_TRACE_VALUE_SQL_H

#include "value_read.h"

/* 0, or a negative status (SQLite could not take the functions). */
int mw_value_sql_register(sqlite3 *db, mw_value_reader *v);

#endif
