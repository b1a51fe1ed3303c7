/* The guards around a reader's SQLite connection (see reader_guard.h). */
#include "reader_guard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* The progress handler runs every this many virtual machine steps. */
#define STEP_CHECK 1000

static int count_steps(void *ctx)
{
    struct mw_reader_guard *g = ctx;
    g->used += STEP_CHECK;
    if (g->used > g->budget)
        g->stopped = 1;
    return g->stopped;
}

int mw_reader_guard_open(const char *path, uint64_t bytes, int limit_heap,
                         struct mw_reader_guard *g, sqlite3 **db)
{
    memset(g, 0, sizeof *g);
    g->budget = MW_READER_BASE_STEPS +
                (bytes > UINT64_MAX / 2 / MW_READER_STEPS_PER_BYTE
                     ? UINT64_MAX / 2 : bytes * MW_READER_STEPS_PER_BYTE);
    if (limit_heap && sqlite3_hard_heap_limit64(-1) == 0)
        sqlite3_hard_heap_limit64(MW_READER_HEAP_LIMIT);
    *db = NULL;
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3 *d = *db;
    sqlite3_extended_result_codes(d, 0);
    sqlite3_busy_timeout(d, 2000);
    /* Before anything reads the schema: it is not trusted, and nothing here writes. */
    int off = 0, on = 1;
    sqlite3_db_config(d, SQLITE_DBCONFIG_DEFENSIVE, on, NULL);
    sqlite3_db_config(d, SQLITE_DBCONFIG_TRUSTED_SCHEMA, off, NULL);
    sqlite3_db_config(d, SQLITE_DBCONFIG_ENABLE_TRIGGER, off, NULL);
    sqlite3_db_config(d, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, off, NULL);
    sqlite3_db_config(d, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, off, NULL);
    sqlite3_limit(d, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_limit(d, SQLITE_LIMIT_LENGTH, MW_READER_MAX_VALUE);
    sqlite3_progress_handler(d, STEP_CHECK, count_steps, g);
    /* Damage found as soon as a page is read, not after a query ran on it. */
    sqlite3_exec(d, "PRAGMA cell_size_check = ON", NULL, NULL, NULL);
    return SQLITE_OK;
}

const char *mw_reader_guard_reason(const struct mw_reader_guard *g, sqlite3 *db, char *buf,
                                   unsigned size)
{
    int code = sqlite3_errcode(db);
    if (g->stopped || code == SQLITE_INTERRUPT) {
        snprintf(buf, size, "it took more than the %llu million steps memwatch allows for a "
                            "trace of this size",
                 (unsigned long long)(g->budget / 1000000));
        return buf;
    }
    if (code == SQLITE_TOOBIG) {
        snprintf(buf, size, "a value is longer than the %d MiB memwatch reads",
                 MW_READER_MAX_VALUE >> 20);
        return buf;
    }
    if (code == SQLITE_NOMEM) {
        snprintf(buf, size, "it needs more than the %lld MiB of memory memwatch allows SQLite",
                 (long long)(MW_READER_HEAP_LIMIT >> 20));
        return buf;
    }
    return NULL;
}
