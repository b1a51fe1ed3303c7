/* A trace's schema against memwatch's own (see reader_schema.h).
 *
 * What memwatch's schema is comes from the embedded schema itself, loaded into an
 * in-memory database: its sqlite_master has the tables and views, their columns and the
 * exact text SQLite keeps for each view, so nothing here restates the schema. */
#include "reader_schema.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

/* Tables older traces may lack (they came later within schema version 1). */
static int optional_table(const char *name)
{
    return strcmp(name, "change_stats") == 0 || strcmp(name, "processes") == 0;
}

/* Columns older traces of this version may lack (they came later within version 2, before
 * its release: readers do without them). */
static int optional_column(const char *table, const char *column)
{
    return strcmp(table, "changes") == 0 && strcmp(column, "pid") == 0;
}

/* Views readers read (not a convenience): a file of a version that has one has it. */
static int required_view(const char *name)
{
    return strcmp(name, "changes") == 0;
}

/* The schema a file of this version was made by: a version 1 or 2 trace has its version's
 * tables and views, which later versions changed. */
static const char *schema_of_version(int version)
{
    if (version == mw_trace_schema_v1_version)
        return mw_trace_schema_v1_sql;
    if (version == mw_trace_schema_v2_version)
        return mw_trace_schema_v2_sql;
    return mw_trace_schema_sql;
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return MW_SCHEMA_HOSTILE;
}

/* Runs sql with up to two text parameters; 1 and the first row's first column (copied
 * into out, "" for NULL) when a row came, 0 when none, -1 on error. */
static int one_text(sqlite3 *db, const char *sql, const char *p1, const char *p2, char *out,
                    size_t outlen)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (p1)
        sqlite3_bind_text(s, 1, p1, -1, SQLITE_STATIC);
    if (p2)
        sqlite3_bind_text(s, 2, p2, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        snprintf(out, outlen, "%s", t ? t : "");
        rc = 1;
    } else {
        rc = rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(s);
    return rc;
}

/* The file's table name has each column the expected one has. */
static int check_columns(sqlite3 *file, sqlite3 *expected, const char *name, char *err,
                         size_t errlen)
{
    char col[256], hidden[32];
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(expected, "SELECT name FROM pragma_table_xinfo(?1)", -1, &s, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = 0;
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
        snprintf(col, sizeof col, "%s", (const char *)sqlite3_column_text(s, 0));
        int found = one_text(file,
                             "SELECT hidden FROM pragma_table_xinfo(?1) WHERE name = ?2 "
                             "COLLATE NOCASE", name, col, hidden, sizeof hidden);
        if (found < 0)
            rc = -1;
        else if (found == 0 && !optional_column(name, col))
            rc = refuse(err, errlen, "table '%s' has no column '%s'", name, col);
    }
    sqlite3_finalize(s);
    return rc;
}

/* One object of memwatch's schema (type "table" or "view") against the file's. */
static int check_object(sqlite3 *file, sqlite3 *expected, const char *type, const char *name,
                        const char *sql, char *err, size_t errlen)
{
    char ftype[32], fsql[16];
    int rc = one_text(file, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                      name, NULL, ftype, sizeof ftype);
    if (rc < 0)
        return -1;
    int is_table = strcmp(type, "table") == 0;
    if (rc == 0) {
        if ((!is_table && !required_view(name)) || optional_table(name))
            return MW_SCHEMA_OK;   /* other views are a convenience readers never need */
        if (strcmp(name, "meta") == 0)
            return MW_SCHEMA_NOT_TRACE;
        return refuse(err, errlen, "it has no %s '%s'", type, name);
    }
    if (!is_table) {
        /* Compared in full: a view is a query, and this one must be memwatch's. */
        sqlite3_stmt *s;
        if (strcmp(ftype, "view") != 0 ||
            sqlite3_prepare_v2(file, "SELECT sql FROM sqlite_master WHERE name = ?1 COLLATE "
                                     "NOCASE", -1, &s, NULL) != SQLITE_OK)
            return strcmp(ftype, "view") != 0 ? MW_SCHEMA_OK : -1;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        const char *have = sqlite3_step(s) == SQLITE_ROW
                               ? (const char *)sqlite3_column_text(s, 0) : NULL;
        int same = have && strcmp(have, sql) == 0;
        sqlite3_finalize(s);
        return same ? MW_SCHEMA_OK
                    : refuse(err, errlen, "its view '%s' is not the one memwatch writes", name);
    }
    if (strcmp(ftype, "table") != 0)
        return refuse(err, errlen, "'%s' is a %.16s, not a table", name, ftype);
    rc = one_text(file, "SELECT 1 FROM sqlite_master WHERE name = ?1 COLLATE NOCASE AND "
                        "sql LIKE 'CREATE VIRTUAL TABLE%'", name, NULL, fsql, sizeof fsql);
    if (rc != 0)
        return rc < 0 ? -1 : refuse(err, errlen, "'%s' is a virtual table", name);
    return check_columns(file, expected, name, err, errlen);
}

/* What is not allowed anywhere in the file: triggers, virtual tables, and computed
 * (generated) columns, which are expressions of the file's own that run on every read,
 * however the table is named. */
static int check_extras(sqlite3 *file, char *err, size_t errlen)
{
    char name[256], col[256];
    int rc = one_text(file, "SELECT name FROM sqlite_master WHERE type = 'trigger'", NULL,
                      NULL, name, sizeof name);
    if (rc != 0)
        return rc < 0 ? -1 : refuse(err, errlen, "it has a trigger ('%.64s')", name);
    rc = one_text(file, "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                        "sql LIKE 'CREATE VIRTUAL TABLE%'", NULL, NULL, name, sizeof name);
    if (rc != 0)
        return rc < 0 ? -1 : refuse(err, errlen, "'%.64s' is a virtual table", name);
    /* Virtual tables are gone by now: table_xinfo never instantiates one. */
    rc = one_text(file, "SELECT m.name FROM sqlite_master AS m JOIN pragma_table_xinfo(m.name)"
                        " AS x WHERE m.type = 'table' AND x.hidden != 0", NULL, NULL, name,
                  sizeof name);
    if (rc == 1)
        rc = one_text(file, "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden != 0", name,
                      NULL, col, sizeof col);
    if (rc != 0)
        return rc < 0 ? -1
                      : refuse(err, errlen, "column '%.64s' of table '%.64s' is computed, not "
                                            "stored", col, name);
    return MW_SCHEMA_OK;
}

int mw_reader_schema_check(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3 *expected = NULL;
    sqlite3_stmt *s = NULL;
    char version[32];
    int rc = one_text(db, "PRAGMA user_version", NULL, NULL, version, sizeof version);
    if (rc < 0)
        return -1;
    const char *schema = schema_of_version(rc == 1 ? atoi(version) : 0);
    if (sqlite3_open_v2(":memory:", &expected, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(expected, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(expected,
                           "SELECT type, name, sql FROM sqlite_master"
                           " WHERE type IN ('table', 'view') ORDER BY rowid",
                           -1, &s, NULL) != SQLITE_OK) {
        /* Only memory can fail here; say so on the file's handle. */
        snprintf(err, errlen, "out of memory");
        sqlite3_close(expected);
        return MW_SCHEMA_HOSTILE;
    }
    /* meta comes first in the schema: a database without it is not a trace at all. */
    rc = MW_SCHEMA_OK;
    while (rc == MW_SCHEMA_OK && sqlite3_step(s) == SQLITE_ROW)
        rc = check_object(db, expected, (const char *)sqlite3_column_text(s, 0),
                          (const char *)sqlite3_column_text(s, 1),
                          (const char *)sqlite3_column_text(s, 2), err, errlen);
    sqlite3_finalize(s);
    sqlite3_close(expected);
    if (rc == MW_SCHEMA_OK)
        rc = check_extras(db, err, errlen);
    return rc;
}
