/* The guards around a reader's SQLite connection (see reader_guard.h). */
#include "reader_guard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/* SQL functions a statement on a trace may call: SQLite's own scalar, aggregate, window,
 * date, math and JSON functions, which read their arguments and nothing else (the longest
 * value they can make is bounded by SQLITE_LIMIT_LENGTH). Not here, so refused:
 * fts3_tokenizer (its result is a pointer, and with two arguments it installs one),
 * load_extension, the full-text and R-tree helpers, and anything an extension adds.
 * memwatch's value functions are listed too: they read the trace's values and nothing else. */
static const char *const safe_functions[] = {
    "abs", "avg", "changes", "char", "coalesce", "count", "cume_dist", "current_date",
    "current_time", "current_timestamp", "date", "datetime", "dense_rank", "first_value",
    "format", "glob", "group_concat", "hex", "ifnull", "iif", "instr", "julianday", "lag",
    "last_insert_rowid", "last_value", "lead", "length", "like", "likelihood", "likely",
    "lower", "ltrim", "max", "min", "nth_value", "ntile", "nullif", "percent_rank", "printf",
    "quote", "random", "randomblob", "rank", "replace", "round", "row_number", "rtrim", "sign",
    "soundex", "sqlite_version", "strftime", "substr", "substring", "sum", "time", "total",
    "total_changes", "trim", "typeof", "unhex", "unicode", "unixepoch", "unlikely", "upper",
    "zeroblob",
    /* math */
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    /* JSON */
    "json", "json_array", "json_array_length", "json_each", "json_extract",
    "json_group_array", "json_group_object", "json_insert", "json_object", "json_patch",
    "json_quote", "json_remove", "json_replace", "json_set", "json_tree", "json_type",
    "json_valid", "->", "->>",
    /* memwatch's own (value_sql.h): a change's bytes, rebuilt within the reader's bounds */
    "mw_old", "mw_new", "mw_value",
};

/* PRAGMAs that only tell something, whatever their argument (a table's name). */
static const char *const reading_pragmas[] = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "collation_list", "function_list", "module_list", "pragma_list",
    "database_list", "compile_options", "integrity_check", "quick_check",
};

/* PRAGMAs that read a setting when they have no argument (with one they change it). */
static const char *const setting_pragmas[] = {
    "user_version", "application_id", "schema_version", "data_version", "page_size",
    "page_count", "freelist_count", "encoding", "journal_mode", "auto_vacuum", "cache_size",
    "cell_size_check",
};

static int listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return 1;
    return 0;
}

#define LISTED(name, list) listed(name, list, sizeof(list) / sizeof((list)[0]))

/* What a refused action would have done, for the message. */
static const char *action_words(int action)
{
    switch (action) {
    case SQLITE_INSERT: return "insert rows";
    case SQLITE_UPDATE: return "update rows";
    case SQLITE_DELETE: return "delete rows";
    case SQLITE_ANALYZE: return "write statistics";
    case SQLITE_REINDEX: return "rebuild an index";
    case SQLITE_ALTER_TABLE: return "alter a table";
    default: return "change the schema";
    }
}

/* Reads, and the functions and PRAGMAs above; nothing else. The reason for a refusal is
 * kept on the guard: SQLite's own message is only "not authorized". */
static int authorize(void *ctx, int action, const char *a, const char *b, const char *db,
                     const char *inner)
{
    (void)db, (void)inner;
    struct mw_reader_guard *g = ctx;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        return SQLITE_OK;
    case SQLITE_UPDATE:
        /* The first use of a table-valued function (json_each, pragma_table_info) makes
         * SQLite register it with a nested statement that updates sqlite_master, on the
         * connection's own schema in memory. A statement of the user's cannot: the
         * connection is read-only and defensive, and sqlite_master is never writable. */
        if (a && strcmp(a, "sqlite_master") == 0)
            return SQLITE_OK;
        break;
    case SQLITE_FUNCTION:
        if (LISTED(b, safe_functions))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied,
                 "the SQL function %.64s() is not allowed on a trace (only SQLite's own "
                 "functions that read their arguments are)", b ? b : "?");
        g->denied_write = 0;
        return SQLITE_DENY;
    case SQLITE_PRAGMA:
        if (LISTED(a, reading_pragmas) || (!b && LISTED(a, setting_pragmas)))
            return SQLITE_OK;
        snprintf(g->denied, sizeof g->denied, "PRAGMA %.64s%s%.64s is not allowed on a trace",
                 a ? a : "?", b ? " = " : "", b ? b : "");
        g->denied_write = 0;
        return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
        snprintf(g->denied, sizeof g->denied,
                 "ATTACH and DETACH are not allowed: memwatch reads one trace at a time");
        g->denied_write = 0;
        return SQLITE_DENY;
    default:
        break;
    }
    snprintf(g->denied, sizeof g->denied, "the statement would %s", action_words(action));
    g->denied_write = 1;
    return SQLITE_DENY;
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
    /* Damage found as soon as a page is read, not after a query ran on it (before the
     * authorizer, which refuses PRAGMAs that set something). */
    sqlite3_exec(d, "PRAGMA cell_size_check = ON", NULL, NULL, NULL);
    sqlite3_progress_handler(d, STEP_CHECK, count_steps, g);
    sqlite3_set_authorizer(d, authorize, g);
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
    /* A refused function is an SQLITE_ERROR, "not authorized to use function: ...". */
    if (g->denied[0] && (code == SQLITE_AUTH || (code == SQLITE_ERROR &&
                                                 strncmp(sqlite3_errmsg(db), "not authorized",
                                                         14) == 0))) {
        snprintf(buf, size, "%s", g->denied);
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
