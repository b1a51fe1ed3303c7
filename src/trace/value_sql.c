/* memwatch query --sql's value functions (see value_sql.h). */
#include "value_sql.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>

#include "mw_error.h"

/* The integer argument i of function fn, or -1 with an error set when it is not one. */
static int64_t int_arg(sqlite3_context *ctx, sqlite3_value **argv, int i, const char *fn,
                       const char *what)
{
    if (sqlite3_value_numeric_type(argv[i]) != SQLITE_INTEGER) {
        char msg[96];
        sqlite3_snprintf(sizeof msg, msg, "%s(): %s must be an integer", fn, what);
        sqlite3_result_error(ctx, msg, -1);
        return -1;
    }
    return sqlite3_value_int64(argv[i]);
}

/* mw_old and mw_new: which is the function's own data (0 old, 1 new). */
struct range_fn {
    mw_value_reader *v;
    int want_new;
};

static void range_bytes(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const struct range_fn *f = sqlite3_user_data(ctx);
    const char *name = f->want_new ? "mw_new" : "mw_old";
    int64_t seq = int_arg(ctx, argv, 0, name, "seq");
    int64_t offset = seq < 0 ? -1 : int_arg(ctx, argv, 1, name, "offset");
    if (seq < 0 || offset < 0)
        return;   /* the error is set, or a negative number names nothing */
    struct mw_value_change c;
    int rc = mw_value_reader_change(f->v, (uint64_t)seq, &c);
    if (rc < 0) {
        sqlite3_result_error(ctx, mw_value_reader_errmsg(f->v), -1);
        return;
    }
    for (size_t i = 0; rc == 1 && i < c.n; i++) {
        if (c.ranges[i].offset != (uint64_t)offset)
            continue;
        const unsigned char *b = f->want_new ? c.ranges[i].new_ : c.ranges[i].old;
        if (b)
            sqlite3_result_blob64(ctx, b, c.ranges[i].length, SQLITE_TRANSIENT);
        return;
    }
    sqlite3_result_null(ctx);
}

static void whole_value(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    mw_value_reader *v = sqlite3_user_data(ctx);
    int64_t seq = int_arg(ctx, argv, 0, "mw_value", "seq");
    if (seq < 0)
        return;
    const unsigned char *bytes;
    uint64_t size;
    int known;
    int rc = mw_value_reader_value_after(v, (uint64_t)seq, &bytes, &size, &known);
    if (rc < 0)
        sqlite3_result_error(ctx, mw_value_reader_errmsg(v), -1);
    else if (rc == 1 && known)
        sqlite3_result_blob64(ctx, bytes, size, SQLITE_TRANSIENT);
    else
        sqlite3_result_null(ctx);
}

int mw_value_sql_register(sqlite3 *db, mw_value_reader *v)
{
    struct range_fn *old_fn = malloc(sizeof *old_fn), *new_fn = malloc(sizeof *new_fn);
    if (!old_fn || !new_fn) {
        free(old_fn);
        free(new_fn);
        return -ENOMEM;
    }
    *old_fn = (struct range_fn){v, 0};
    *new_fn = (struct range_fn){v, 1};
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    /* SQLite frees each function's data when the connection closes (or on failure). */
    if (sqlite3_create_function_v2(db, "mw_old", 2, flags, old_fn, range_bytes, NULL, NULL,
                                   free) != SQLITE_OK ||
        sqlite3_create_function_v2(db, "mw_new", 2, flags, new_fn, range_bytes, NULL, NULL,
                                   free) != SQLITE_OK ||
        sqlite3_create_function_v2(db, "mw_value", 1, flags, v, whole_value, NULL, NULL,
                                   NULL) != SQLITE_OK)
        return MW_ETRACE;
    return 0;
}
