/* Reading a trace file: validation, tags, filtered iteration, per-tag summary.
 *
 * Validation order decides which message a person sees, so it goes from the outside in:
 * can the file be opened at all (errno), is it SQLite (SQLITE_NOTADB), is it a trace (a
 * meta table with schema_version), can this memwatch read it (meta.read_compat, defaulting
 * to PRAGMA user_version, against the embedded schema's version). */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elements.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "reader_guard.h"
#include "reader_schema.h"
#include "schema.h"
#include "value_read.h"

struct layout_entry {
    uint64_t id;
    mw_elem_layout *layout;
    int typed;
};

struct mw_trace_reader {
    sqlite3 *db;
    struct mw_reader_guard guard;   /* the connection's bounds (reader_guard.h) */
    char *path;
    int has_stats;              /* -1: not looked yet; 0/1: the trace has change_stats */
    struct layout_entry *layouts;   /* objects asked about, in no order */
    size_t nlayouts, caplayouts;
    int version;                /* the file's schema version, once validated */
    mw_value_reader *values;    /* decodes changes' bytes; made when first needed */
    char errmsg[1024];
    char reason[256];           /* mw_trace_reader_guard_reason's */
};

/* Changes in seq order (stmt), each decoded once and handed out range by range. */
struct mw_trace_iter {
    mw_trace_reader *r;
    sqlite3_stmt *stmt;
    struct mw_value_change change;
    size_t next;                /* its next range */
    uint64_t rows, limit;
};

static int set_err(mw_trace_reader *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(mw_trace_reader *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    return status;
}

static int db_err(mw_trace_reader *r, const char *what)
{
    char why[256];
    if (mw_reader_guard_reason(&r->guard, r->db, why, sizeof why))
        return set_err(r, MW_EFORMAT, "cannot %s '%s': %s", what, r->path, why);
    int code = sqlite3_errcode(r->db);
    if (code == SQLITE_NOTADB)
        return set_err(r, MW_EFORMAT, "'%s' is not an SQLite database", r->path);
    if (code == SQLITE_CORRUPT)
        return set_err(r, MW_EFORMAT, "'%s' is damaged: %s", r->path, sqlite3_errmsg(r->db));
    return set_err(r, MW_ETRACE, "cannot %s '%s': %s", what, r->path, sqlite3_errmsg(r->db));
}

/* Runs a one-value query; 1 and *out (malloc'd, may be NULL for SQL NULL) when a row came,
 * 0 when none, negative on error (message set). */
static int query_text(mw_trace_reader *r, const char *sql, char **out)
{
    sqlite3_stmt *s;
    *out = NULL;
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        if (t && !(*out = strdup((const char *)t))) {
            sqlite3_finalize(s);
            return set_err(r, -ENOMEM, "out of memory");
        }
        sqlite3_finalize(s);
        return 1;
    }
    if (rc != SQLITE_DONE) {
        rc = db_err(r, "read");
        sqlite3_finalize(s);
        return rc;
    }
    sqlite3_finalize(s);
    return 0;
}

static int validate(mw_trace_reader *r, int *found_version)
{
    /* Touching the schema is what makes SQLite read the header: NOTADB shows here. */
    char *v = NULL;
    int rc = query_text(r, "SELECT count(*) FROM sqlite_master", &v);
    free(v);
    if (rc < 0)
        return rc;
    /* Before anything reads a table: each must be one (reader_schema.h). */
    char why[256];
    rc = mw_reader_schema_check(r->db, why, sizeof why);
    if (rc < 0)
        return db_err(r, "read");
    if (rc == MW_SCHEMA_NOT_TRACE)
        return set_err(r, MW_ETRACE, "'%s' is an SQLite database but not a memwatch trace",
                       r->path);
    if (rc == MW_SCHEMA_HOSTILE)
        return set_err(r, MW_ETRACE, "'%s' is not a trace memwatch can read safely: %s",
                       r->path, why);
    rc = query_text(r, "PRAGMA user_version", &v);
    long version = rc > 0 && v ? strtol(v, NULL, 10) : 0;
    free(v);
    if (rc < 0)
        return rc;
    rc = query_text(r, "SELECT value FROM meta WHERE key = 'schema_version'", &v);
    int has_version = rc > 0 && v;
    free(v);
    if (rc < 0)
        return rc;
    if (!has_version || version <= 0)
        return set_err(r, MW_ETRACE, "'%s' is an SQLite database but not a memwatch trace",
                       r->path);
    if (found_version)
        *found_version = (int)version;
    r->version = (int)version;
    rc = query_text(r, "SELECT value FROM meta WHERE key = 'read_compat'", &v);
    long compat = rc > 0 && v ? strtol(v, NULL, 10) : version;
    free(v);
    if (rc < 0)
        return rc;
    if (compat > mw_trace_schema_version)
        return set_err(r, MW_ESCHEMA,
                       "'%s' was written with trace schema version %ld, newer than this "
                       "memwatch reads (%d): use a newer memwatch",
                       r->path, version, mw_trace_schema_version);
    return 0;
}

/* A regular file, and so are the -wal, -shm and -journal SQLite would open next to it:
 * anything else (a FIFO, a device) could block the open or never end. Opened without
 * blocking and checked with fstat, so a FIFO is refused, not waited on. Its size (with its
 * -wal) into *bytes. */
static int check_file(mw_trace_reader *r, const char *path, uint64_t *bytes)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return set_err(r, -ENOENT, "no trace file '%s'", path);
        return set_err(r, -e, "cannot open '%s': %s", path, strerror(e));
    }
    int fst = fstat(fd, &st), e = errno;
    close(fd);
    if (fst != 0)
        return set_err(r, -e, "cannot open '%s': %s", path, strerror(e));
    if (S_ISDIR(st.st_mode))
        return set_err(r, -EISDIR, "'%s' is a directory, not a trace", path);
    if (!S_ISREG(st.st_mode))
        return set_err(r, -EINVAL, "'%s' is not a regular file (memwatch reads traces only "
                                   "from regular files)", path);
    *bytes = (uint64_t)st.st_size;
    static const char *const sidecars[] = {"-wal", "-shm", "-journal"};
    char side[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof sidecars / sizeof *sidecars; i++) {
        snprintf(side, sizeof side, "%s%s", path, sidecars[i]);
        if (stat(side, &st) != 0)
            continue;
        if (!S_ISREG(st.st_mode))
            return set_err(r, -EINVAL, "'%s' next to the trace is not a regular file", side);
        if (i == 0)
            *bytes += (uint64_t)st.st_size;
    }
    return 0;
}

static int open_checked(const char *path, mw_trace_reader **out, int *found_version,
                        int limit_heap)
{
    *out = NULL;
    mw_trace_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return -ENOMEM;
    }
    r->has_stats = -1;
    *out = r;
    /* errno first: SQLite's "unable to open database file" does not say why. */
    uint64_t bytes = 0;
    int rc = check_file(r, path, &bytes);
    if (rc)
        return rc;
    if (mw_reader_guard_open(path, bytes, limit_heap, &r->guard, &r->db) != SQLITE_OK)
        return set_err(r, MW_ETRACE, "cannot open '%s': %s", path,
                       r->db ? sqlite3_errmsg(r->db) : "out of memory");
    return validate(r, found_version);
}

int mw_trace_reader_open(const char *path, mw_trace_reader **out, int *found_version)
{
    return open_checked(path, out, found_version, 1);
}

const char *mw_trace_change_table(sqlite3 *db)
{
    sqlite3_stmt *s;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            version = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
    }
    return version >= 3 ? "change_rows" : "changes";
}

int mw_trace_file_is_trace(const char *path)
{
    mw_trace_reader *r;
    int rc = open_checked(path, &r, NULL, 0);
    mw_trace_reader_close(r);
    return rc == 0 || rc == MW_ESCHEMA;
}

void mw_trace_reader_close(mw_trace_reader *r)
{
    if (!r)
        return;
    mw_value_reader_destroy(r->values);
    sqlite3_close(r->db);
    for (size_t i = 0; i < r->nlayouts; i++)
        mw_elem_layout_destroy(r->layouts[i].layout);
    free(r->layouts);
    free(r->path);
    free(r);
}

const char *mw_trace_reader_errmsg(const mw_trace_reader *r)
{
    if (!r)
        return "out of memory";
    return r->errmsg[0] ? r->errmsg : "no error";
}

sqlite3 *mw_trace_reader_db(mw_trace_reader *r)
{
    return r->db;
}

const char *mw_trace_reader_guard_reason(mw_trace_reader *r)
{
    return mw_reader_guard_reason(&r->guard, r->db, r->reason, sizeof r->reason);
}

int mw_trace_reader_refused_write(const mw_trace_reader *r)
{
    return r->guard.denied_write;
}

int mw_trace_reader_counts(mw_trace_reader *r, uint64_t *objects, uint64_t *changes)
{
    char *v;
    int rc = query_text(r, "SELECT count(*) FROM objects", &v);
    if (rc < 0)
        return rc;
    *objects = v ? strtoull(v, NULL, 10) : 0;
    free(v);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", mw_trace_change_table(r->db));
    rc = query_text(r, sql, &v);
    if (rc < 0)
        return rc;
    *changes = v ? strtoull(v, NULL, 10) : 0;
    free(v);
    return 0;
}

void mw_trace_reader_free_tags(char **tags)
{
    if (!tags)
        return;
    for (char **t = tags; *t; t++)
        free(*t);
    free(tags);
}

int mw_trace_reader_tags(mw_trace_reader *r, char ***tags_out, size_t *n_out)
{
    sqlite3_stmt *s;
    *tags_out = NULL;
    if (n_out)
        *n_out = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT tag FROM objects GROUP BY tag ORDER BY min(id)", -1,
                           &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    /* NULL-terminated all along. */
    size_t n = 0, cap = 0;
    char **tags = NULL;
    int oom = MW_GROW(tags, cap, 1) != 0, rc = SQLITE_DONE;
    if (!oom)
        tags[0] = NULL;
    while (!oom && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        oom = MW_GROW(tags, cap, n + 2) != 0 || !(tags[n] = strdup(t ? t : ""));
        if (!oom)
            tags[++n] = NULL;
    }
    if (oom) {
        sqlite3_finalize(s);
        mw_trace_reader_free_tags(tags);
        return set_err(r, -ENOMEM, "out of memory");
    }
    if (rc != SQLITE_DONE) {
        rc = db_err(r, "read");
        sqlite3_finalize(s);
        mw_trace_reader_free_tags(tags);
        return rc;
    }
    sqlite3_finalize(s);
    *tags_out = tags;
    if (n_out)
        *n_out = n;
    return 0;
}

int mw_trace_reader_has_tag(mw_trace_reader *r, const char *tag)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM objects WHERE tag = ? LIMIT 1", -1, &s, NULL) !=
        SQLITE_OK)
        return db_err(r, "read");
    sqlite3_bind_text(s, 1, tag, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = 1;
    else if (rc == SQLITE_DONE)
        rc = 0;
    else
        rc = db_err(r, "read");
    sqlite3_finalize(s);
    return rc;
}

static int64_t clamp(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static void bind_bounds(sqlite3_stmt *s, const struct mw_trace_filter *f)
{
    sqlite3_bind_int64(s, 1, f && f->has_since ? clamp(f->since) : INT64_MIN);
    sqlite3_bind_int64(s, 2, f && f->has_until ? clamp(f->until) : INT64_MAX);
    if (f && f->tag)
        sqlite3_bind_text(s, 3, f->tag, -1, SQLITE_STATIC);
    if (f && f->pid)
        sqlite3_bind_int64(s, 4, f->pid);
}

mw_value_reader *mw_trace_reader_values(mw_trace_reader *r)
{
    if (!r->values) {
        int rc = mw_value_reader_create(r->db, r->version, &r->values);
        if (rc)
            set_err(r, rc, "%s", rc == -ENOMEM ? "out of memory" : "cannot read the trace's values");
    }
    return r->values;
}

int mw_trace_reader_has_pid(mw_trace_reader *r)
{
    sqlite3_stmt *s;
    int has = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM pragma_table_info('changes') WHERE name = 'pid'",
                           -1, &s, NULL) == SQLITE_OK) {
        has = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
    }
    return has;
}

int mw_trace_iter_start(mw_trace_reader *r, const struct mw_trace_filter *f, mw_trace_iter **out)
{
    /* The tag becomes a set of object ids, so that changes_by_object (object_id, seq)
     * drives the scan; without a tag the changes' primary key does. Each change's ranges
     * and bytes come from the value reader, however they are kept. */
    char sql[1024];
    /* Version 1 traces have no processes. */
    int has_pid = mw_trace_reader_has_pid(r);
    snprintf(sql, sizeof(sql),
             "SELECT c.seq, c.time_ns, o.tag, c.object_id, o.size, c.file, c.line,"
             " c.function, c.thread_id, c.thread_name, c.native_symbol, %s"
             " FROM changes AS c JOIN objects AS o ON o.id = c.object_id"
             " WHERE c.seq BETWEEN ?1 AND ?2%s%s"
             " ORDER BY c.seq",
             has_pid ? "c.pid" : "NULL",
             f && f->tag ? " AND c.object_id IN (SELECT id FROM objects WHERE tag = ?3)" : "",
             f && f->pid ? (has_pid ? " AND c.pid = ?4" : " AND 0") : "");
    *out = NULL;
    if (!mw_trace_reader_values(r))
        return r->errmsg[0] ? MW_ETRACE : -ENOMEM;
    mw_trace_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return set_err(r, -ENOMEM, "out of memory");
    it->r = r;
    it->limit = f ? f->limit : 0;
    if (sqlite3_prepare_v2(r->db, sql, -1, &it->stmt, NULL) != SQLITE_OK) {
        int rc = db_err(r, "read");
        free(it);
        return rc;
    }
    bind_bounds(it->stmt, f);
    *out = it;
    return 0;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s, i);
}

/* The next change that has ranges, decoded. 1, 0 at the end, negative on error. */
static int next_change(mw_trace_iter *it)
{
    sqlite3_stmt *s = it->stmt;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return db_err(it->r, "read");
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        rc = mw_value_reader_change(it->r->values, seq, &it->change);
        if (rc < 0)
            return set_err(it->r, rc, "%s", mw_value_reader_errmsg(it->r->values));
        it->next = 0;
        if (rc == 1 && it->change.n > 0)
            return 1;
    }
}

int mw_trace_iter_next(mw_trace_iter *it, struct mw_trace_row *row)
{
    if (it->limit && it->rows >= it->limit)
        return 0;
    if (it->next >= it->change.n) {
        int rc = next_change(it);
        if (rc <= 0)
            return rc;
    }
    sqlite3_stmt *s = it->stmt;
    const struct mw_value_range *g = &it->change.ranges[it->next++];
    memset(row, 0, sizeof(*row));
    row->seq = (uint64_t)sqlite3_column_int64(s, 0);
    row->time_ns = (uint64_t)sqlite3_column_int64(s, 1);
    row->tag = col_text(s, 2);
    row->object_id = (uint64_t)sqlite3_column_int64(s, 3);
    row->object_size = (uint64_t)sqlite3_column_int64(s, 4);
    row->offset = g->offset;
    row->length = g->length;
    row->old = g->old;
    row->new_ = g->new_;
    row->complete = g->complete;
    row->kept = it->change.kept;
    row->file = col_text(s, 5);
    row->line = sqlite3_column_int(s, 6);
    row->function = col_text(s, 7);
    row->thread_id = sqlite3_column_int64(s, 8);
    row->thread_name = col_text(s, 9);
    row->native_symbol = col_text(s, 10);
    row->pid = sqlite3_column_int64(s, 11);
    if (!row->tag)
        row->tag = "";
    it->rows++;
    return 1;
}

void mw_trace_iter_finish(mw_trace_iter *it)
{
    if (!it)
        return;
    sqlite3_finalize(it->stmt);
    free(it);
}

/* 1 when the trace has the change_stats table (traces made before it do not). */
static int has_stats(mw_trace_reader *r)
{
    if (r->has_stats < 0) {
        char *v = NULL;
        int rc = query_text(r, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                               " AND name = 'change_stats'", &v);
        r->has_stats = rc > 0 && v && strcmp(v, "1") == 0;
        free(v);
    }
    return r->has_stats;
}

/* The numeric summary of tag t->tag over the filter's seq bounds. */
static int tag_numbers(mw_trace_reader *r, const struct mw_trace_filter *f,
                       struct mw_trace_tag_summary *t)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT count(*), sum(s.elements), sum(s.unknown), sum(s.deltas),"
                           " min(s.delta_min), max(s.delta_max), sum(s.delta_mean * s.deltas),"
                           " sum(s.nan_appeared), sum(s.nan_gone), sum(s.inf_appeared),"
                           " sum(s.inf_gone),"
                           " min(CASE WHEN s.nan_appeared + s.inf_appeared > 0 THEN s.seq END)"
                           " FROM change_stats AS s JOIN changes AS c ON c.seq = s.seq"
                           " JOIN objects AS o ON o.id = c.object_id"
                           " WHERE s.seq BETWEEN ?1 AND ?2 AND o.tag = ?3",
                           -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    bind_bounds(s, f);
    sqlite3_bind_text(s, 3, t->tag, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        t->has_numbers = sqlite3_column_int64(s, 0) > 0;
        t->elements = (uint64_t)sqlite3_column_int64(s, 1);
        t->unknown = (uint64_t)sqlite3_column_int64(s, 2);
        t->deltas = (uint64_t)sqlite3_column_int64(s, 3);
        t->delta_min = sqlite3_column_double(s, 4);
        t->delta_max = sqlite3_column_double(s, 5);
        t->delta_mean = t->deltas ? sqlite3_column_double(s, 6) / (double)t->deltas : 0;
        t->nan_appeared = (uint64_t)sqlite3_column_int64(s, 7);
        t->nan_gone = (uint64_t)sqlite3_column_int64(s, 8);
        t->inf_appeared = (uint64_t)sqlite3_column_int64(s, 9);
        t->inf_gone = (uint64_t)sqlite3_column_int64(s, 10);
        t->has_first_nonfinite = sqlite3_column_type(s, 11) != SQLITE_NULL;
        t->first_nonfinite_seq = (uint64_t)sqlite3_column_int64(s, 11);
        rc = 0;
    } else {
        rc = db_err(r, "read");
    }
    sqlite3_finalize(s);
    return rc;
}

int mw_trace_reader_change_summary(mw_trace_reader *r, uint64_t seq,
                                   struct mw_trace_change_summary *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    const char *sql = r->version >= 2 ? "SELECT changed_bytes FROM changes WHERE seq = ?"
                                      : "SELECT NULL FROM changes WHERE seq = ?";
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    sqlite3_bind_int64(s, 1, clamp(seq));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        out->has_changed_bytes = 1;
        out->changed_bytes = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(r, "read");
    if (has_stats(r) != 1)
        return 0;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT elements, unknown, deltas, delta_min, delta_max, delta_mean,"
                           " nan_appeared, nan_gone, inf_appeared, inf_gone"
                           " FROM change_stats WHERE seq = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    sqlite3_bind_int64(s, 1, clamp(seq));
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->has_stats = 1;
        out->elements = (uint64_t)sqlite3_column_int64(s, 0);
        out->unknown = (uint64_t)sqlite3_column_int64(s, 1);
        out->deltas = (uint64_t)sqlite3_column_int64(s, 2);
        out->delta_min = sqlite3_column_double(s, 3);
        out->delta_max = sqlite3_column_double(s, 4);
        out->delta_mean = sqlite3_column_double(s, 5);
        out->nan_appeared = (uint64_t)sqlite3_column_int64(s, 6);
        out->nan_gone = (uint64_t)sqlite3_column_int64(s, 7);
        out->inf_appeared = (uint64_t)sqlite3_column_int64(s, 8);
        out->inf_gone = (uint64_t)sqlite3_column_int64(s, 9);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(r, "read");
}

int mw_trace_reader_parse_dims(const char *text, int64_t *v, int max)
{
    const char *p = text;
    int n = 0;
    if (!p)
        return -1;
    while (*p == ' ')
        p++;
    if (*p++ != '[')
        return -1;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == ']')
            return n;
        if (n == max)
            return -1;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno)
            return -1;
        v[n++] = x;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p != ']')
            return -1;
    }
}

int mw_trace_reader_layout(mw_trace_reader *r, uint64_t object_id,
                           const struct mw_elem_layout **out, int *typed)
{
    /* Newest first: rows of one object come together. */
    for (size_t i = r->nlayouts; i-- > 0;)
        if (r->layouts[i].id == object_id) {
            *out = r->layouts[i].layout;
            if (typed)
                *typed = r->layouts[i].typed;
            return 0;
        }
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT format, type_name, itemsize, ndim, shape, strides, size"
                           " FROM objects WHERE id = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    sqlite3_bind_int64(s, 1, (int64_t)object_id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? set_err(r, MW_EFORMAT, "the trace names object %" PRIu64
                                         " but has no such object", object_id)
                               : db_err(r, "read");
        sqlite3_finalize(s);
        return rc;
    }
    int64_t shape[MW_REC_MAX_NDIM], strides[MW_REC_MAX_NDIM];
    const char *shape_t = col_text(s, 4), *strides_t = col_text(s, 5);
    int ndim = sqlite3_column_type(s, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 3);
    int ns = mw_trace_reader_parse_dims(shape_t, shape, MW_REC_MAX_NDIM);
    int nt = mw_trace_reader_parse_dims(strides_t, strides, MW_REC_MAX_NDIM);
    if (ndim < 0 || ndim > MW_REC_MAX_NDIM || (ndim > 0 && ns != ndim))
        ndim = -1;   /* shape unknown: one dimension */
    struct mw_elem_desc d = {
        .format = col_text(s, 0),
        .type_name = col_text(s, 1),
        .itemsize = sqlite3_column_int64(s, 2),
        .ndim = ndim,
        .shape = ndim >= 0 ? shape : NULL,
        .strides = ndim >= 0 && nt == ndim ? strides : NULL,
        .size = (uint64_t)sqlite3_column_int64(s, 6),
        .contiguous = -1,
    };
    mw_elem_layout *l = NULL;
    int is_typed = 0;
    rc = d.format ? mw_elem_layout_create(&d, &l) : MW_EFORMAT;
    if (rc == 0) {
        is_typed = mw_elem_layout_typed(l);
    } else if (rc != -ENOMEM) {
        /* Shown as bytes. */
        struct mw_elem_desc b = {.format = "B", .itemsize = 1, .ndim = -1, .size = d.size,
                                 .contiguous = 1};
        rc = mw_elem_layout_create(&b, &l);
    }
    sqlite3_finalize(s);
    if (rc)
        return set_err(r, rc == -ENOMEM ? -ENOMEM : MW_EFORMAT, "cannot lay out object %" PRIu64,
                       object_id);
    if (MW_GROW(r->layouts, r->caplayouts, r->nlayouts + 1) != 0) {
        mw_elem_layout_destroy(l);
        return set_err(r, -ENOMEM, "out of memory");
    }
    r->layouts[r->nlayouts++] = (struct layout_entry){object_id, l, is_typed};
    *out = l;
    if (typed)
        *typed = is_typed;
    return 0;
}

int mw_trace_reader_summary(mw_trace_reader *r, const struct mw_trace_filter *f,
                            mw_trace_summary_fn fn, void *ctx)
{
    char sql[1024];
    /* Version 2 counts a change's ranges and changed bytes in its row (ranges may include
     * unchanged bytes); version 1 and changes made by hand have their ranges to count.
     * The changes are on the right of a LEFT JOIN: the view changes would be built whole
     * first, so version 3's change_rows is read. */
    if (r->version >= 2)
        snprintf(sql, sizeof(sql),
                 "SELECT o.tag, count(DISTINCT o.id), count(c.seq),"
                 " coalesce(sum(coalesce(c.nranges,"
                 "  (SELECT count(*) FROM ranges AS g WHERE g.seq = c.seq))), 0),"
                 " coalesce(sum(coalesce(c.changed_bytes,"
                 "  (SELECT sum(g.length) FROM ranges AS g WHERE g.seq = c.seq))), 0),"
                 " min(c.seq), max(c.seq)"
                 " FROM objects AS o"
                 " LEFT JOIN %s AS c ON c.object_id = o.id AND c.seq BETWEEN ?1 AND ?2"
                 "%s GROUP BY o.tag ORDER BY min(o.id)",
                 mw_trace_change_table(r->db), f && f->tag ? " WHERE o.tag = ?3" : "");
    else
        snprintf(sql, sizeof(sql),
                 "SELECT o.tag, count(DISTINCT o.id), count(DISTINCT c.seq), count(g.seq),"
                 " coalesce(sum(g.length), 0), min(c.seq), max(c.seq)"
                 " FROM objects AS o"
                 " LEFT JOIN changes AS c ON c.object_id = o.id AND c.seq BETWEEN ?1 AND ?2"
                 " LEFT JOIN ranges AS g ON g.seq = c.seq"
                 "%s GROUP BY o.tag ORDER BY min(o.id)",
                 f && f->tag ? " WHERE o.tag = ?3" : "");
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_err(r, "read");
    bind_bounds(s, f);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct mw_trace_tag_summary t = {0};
        t.tag = col_text(s, 0);
        if (!t.tag)
            t.tag = "";
        t.objects = (uint64_t)sqlite3_column_int64(s, 1);
        t.changes = (uint64_t)sqlite3_column_int64(s, 2);
        t.ranges = (uint64_t)sqlite3_column_int64(s, 3);
        t.bytes = (uint64_t)sqlite3_column_int64(s, 4);
        t.has_changes = sqlite3_column_type(s, 5) != SQLITE_NULL;
        t.first_seq = (uint64_t)sqlite3_column_int64(s, 5);
        t.last_seq = (uint64_t)sqlite3_column_int64(s, 6);
        if (has_stats(r) == 1 && (rc = tag_numbers(r, f, &t)) < 0) {
            sqlite3_finalize(s);
            return rc;
        }
        int stop = fn(&t, ctx);
        if (stop) {
            sqlite3_finalize(s);
            return stop;
        }
    }
    if (rc != SQLITE_DONE)
        rc = db_err(r, "read");
    else
        rc = 0;
    sqlite3_finalize(s);
    return rc;
}
