/* The trace writer's inserts into change_rows (see change_rows.h). */
#include "change_rows.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "mw_grow.h"

#define COLUMNS 12

/* A row waiting, its bytes at `at` in the batch's bytes (old, when kept, then new): its
 * row's pointers are not used any more. */
struct waiting {
    struct mw_change_row row;
    size_t at;
    int old_kept;
};

struct mw_change_rows {
    sqlite3 *db;
    sqlite3_stmt *one, *many;    /* one row; per_insert rows */
    int per_insert;
    struct waiting rows[MW_CHANGE_ROWS_PER_INSERT];
    int n;
    unsigned char *bytes;
    size_t len, cap;
};

static sqlite3_stmt *prepare(sqlite3 *db, int rows)
{
    static const char head[] = "INSERT INTO change_rows (seq, time_ns, object_id, site_id,"
                               " nranges, changed_bytes, kept, offset, length, old, new,"
                               " complete) VALUES ";
    static const char one[] = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    size_t size = sizeof head + (size_t)rows * sizeof one + 1;
    char *sql = malloc(size);
    if (!sql)
        return NULL;
    size_t at = (size_t)snprintf(sql, size, "%s", head);
    for (int i = 0; i < rows; i++)
        at += (size_t)snprintf(sql + at, size - at, "%s%s", i ? "," : "", one);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        s = NULL;
    free(sql);
    return s;
}

int mw_change_rows_create(sqlite3 *db, int per_insert, mw_change_rows **out)
{
    *out = NULL;
    if (per_insert < 1 || per_insert > MW_CHANGE_ROWS_PER_INSERT)
        return MW_EINVAL;
    mw_change_rows *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->db = db;
    r->per_insert = per_insert;
    r->one = prepare(db, 1);
    r->many = per_insert > 1 ? prepare(db, per_insert) : NULL;
    if (!r->one || (per_insert > 1 && !r->many)) {
        mw_change_rows_destroy(r);
        return MW_ETRACE;
    }
    *out = r;
    return 0;
}

void mw_change_rows_release_db(mw_change_rows *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->one);
    sqlite3_finalize(r->many);
    r->one = r->many = NULL;
}

void mw_change_rows_destroy(mw_change_rows *r)
{
    if (!r)
        return;
    mw_change_rows_release_db(r);
    free(r->bytes);
    free(r);
}

static void bind_bytes(sqlite3_stmt *st, int i, const unsigned char *b, uint64_t n)
{
    if (n)
        sqlite3_bind_blob64(st, i, b, n, SQLITE_STATIC);   /* reset right after the step */
    else
        sqlite3_bind_zeroblob(st, i, 0);
}

static void bind_int_or_null(sqlite3_stmt *st, int i, int known, int64_t v)
{
    if (known)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Binds every column of w from parameter first on: none is left from a row before. */
static void bind_row(const mw_change_rows *r, sqlite3_stmt *st, int first,
                     const struct waiting *w)
{
    const struct mw_change_row *g = &w->row;
    sqlite3_bind_int64(st, first, (int64_t)g->seq);
    sqlite3_bind_int64(st, first + 1, (int64_t)g->time_ns);
    sqlite3_bind_int64(st, first + 2, (int64_t)g->object_id);
    bind_int_or_null(st, first + 3, g->site != 0, g->site);
    sqlite3_bind_int64(st, first + 4, (int64_t)g->nranges);
    sqlite3_bind_int64(st, first + 5, (int64_t)g->changed_bytes);
    sqlite3_bind_int(st, first + 6, g->kept);
    bind_int_or_null(st, first + 7, g->has_range, (int64_t)g->offset);
    bind_int_or_null(st, first + 8, g->has_range, (int64_t)g->length);
    const unsigned char *b = r->bytes + w->at;
    int old_kept = w->old_kept;
    if (old_kept)
        bind_bytes(st, first + 9, b, g->length);
    else
        sqlite3_bind_null(st, first + 9);
    if (g->has_range && g->bytes)
        bind_bytes(st, first + 10, b + (old_kept ? g->length : 0), g->length);
    else
        sqlite3_bind_null(st, first + 10);
    bind_int_or_null(st, first + 11, g->has_range, g->complete);
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : MW_ETRACE;
}

int mw_change_rows_flush(mw_change_rows *r)
{
    int rc = 0;
    if (r->n == r->per_insert && r->many) {
        for (int i = 0; i < r->n; i++)
            bind_row(r, r->many, 1 + i * COLUMNS, &r->rows[i]);
        rc = run(r->many);
    } else {
        for (int i = 0; rc == 0 && i < r->n; i++) {
            bind_row(r, r->one, 1, &r->rows[i]);
            rc = run(r->one);
        }
    }
    r->n = 0;
    r->len = 0;
    return rc;
}

void mw_change_rows_forget(mw_change_rows *r)
{
    r->n = 0;
    r->len = 0;
}

int mw_change_rows_add(mw_change_rows *r, const struct mw_change_row *row)
{
    size_t need = row->has_range && row->bytes
                      ? (size_t)row->length * (row->old ? 2 : 1) : 0;
    if (MW_GROW(r->bytes, r->cap, r->len + need + 1) != 0)
        return -ENOMEM;
    struct waiting *w = &r->rows[r->n++];
    w->row = *row;
    w->at = r->len;
    w->old_kept = need && row->old;
    if (need) {
        if (row->old)
            memcpy(r->bytes + r->len, row->old, row->length);
        memcpy(r->bytes + r->len + (row->old ? row->length : 0), row->new_, row->length);
        r->len += need;
    }
    w->row.old = w->row.new_ = NULL;
    return r->n == r->per_insert ? mw_change_rows_flush(r) : 0;
}
