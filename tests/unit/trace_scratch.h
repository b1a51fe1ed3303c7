/* Scratch files for the trace tests (test_reader.c, test_writer.c, test_writer_stress.c):
 * a directory of the test's own, paths in it, and SQL run on a trace there. */
#ifndef MW_TRACE_SCRATCH_H
#define MW_TRACE_SCRATCH_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char scratch_dir[64];

/* Makes the directory /tmp/mw-test-<name>-XXXXXX: 0, or -1 (said on stderr). */
static inline int scratch_begin(const char *name)
{
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/mw-test-%s-XXXXXX", name);
    if (!mkdtemp(scratch_dir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* The path of name in the directory (one of four buffers, reused in turn). */
static inline const char *scratch_path(const char *name)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", scratch_dir, name);
    return p;
}

/* Removes the directory and what it holds. */
static inline void scratch_end(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", scratch_dir);
}

/* Runs SQL text on the database at path (writing), saying on stderr when it fails. */
static inline void scratch_sql(const char *path, const char *text)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, text, NULL, NULL, NULL))
        fprintf(stderr, "%s: %s\n", text, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* One integer from a query on the trace at path (read-only): -1 when there is no row or
 * the query fails (said on stderr), -2 for NULL. */
static inline int64_t scratch_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    } else {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return v;
}

/* 1 when a query on the trace at path gives the text want; else 0 (said on stderr). */
static inline int scratch_text_is(const char *path, const char *sql, const char *want)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            ok = t && strcmp(t, want) == 0;
            if (!ok)
                fprintf(stderr, "%s: got '%s', want '%s'\n", sql, t ? t : "(null)", want);
        }
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return ok;
}

#endif
