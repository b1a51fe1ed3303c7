/* The trace writer: record stream -> SQLite rows.
 *
 * DESIGN: one connection, owned by the thread that calls these functions. Records are
 * applied inside a transaction opened lazily by the first record of a batch; a batch is
 * committed when it holds BATCH_RECORDS records or when its first record is BATCH_NS old,
 * whichever comes first, so after a crash of either process the file holds every record
 * that arrived up to 100 ms before it. WAL with synchronous=NORMAL: a commit survives the
 * death of the process (not of the machine) without an fsync per batch. At close the WAL is
 * checkpointed and the file switched back to a rollback journal, so the finished trace is
 * one self-contained file that can be copied or opened from a read-only directory. */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elements.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "outfile.h"
#include "schema.h"

#ifndef MEMWATCH_VERSION
#define MEMWATCH_VERSION "unknown"
#endif

#define BATCH_RECORDS 8192
#define BATCH_NS (100 * 1000 * 1000ull)
#define READ_SIZE (256 * 1024)

enum {
    ST_OBJECT, ST_UNWATCH, ST_CHANGE, ST_RANGE, ST_STATS, ST_HELLO, ST_META, ST_ELEM_STATS,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_OBJECT] = "INSERT INTO objects (id, tag, type_name, address, size, readonly, format,"
                  " itemsize, ndim, shape, strides, watched_ns)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_UNWATCH] = "UPDATE objects SET unwatched_ns = ? WHERE id = ?",
    [ST_CHANGE] = "INSERT INTO changes (seq, time_ns, object_id, thread_id, thread_name, file,"
                  " line, function, native_symbol, native_library)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_RANGE] = "INSERT INTO ranges (seq, offset, length, old, new, complete)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
    [ST_STATS] = "UPDATE run SET faults = ?, checks = ?, changes = ?, old_unavailable = ?,"
                 " tracked_objects_peak = ? WHERE id = 1",
    [ST_HELLO] = "UPDATE run SET python_version = ?, pid = ? WHERE id = 1",
    [ST_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
    /* OR REPLACE: a change continued in MW_REC_RANGES frames is stored again, summed. */
    [ST_ELEM_STATS] = "INSERT OR REPLACE INTO change_stats (seq, elements, unknown, deltas,"
                      " delta_min, delta_max, delta_mean, nan_appeared, nan_gone, inf_appeared,"
                      " inf_gone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
};

/* A watched object with an element type: its layout, for the numeric summary of its
 * changes, and its NaN/Inf history for the end-of-run line. Objects of plain bytes have
 * none, so a run that watches a million bytearrays pays nothing here. */
struct typed_object {
    uint64_t id;
    mw_elem_layout *layout;
    char *tag;
    uint64_t nan_appeared, inf_appeared;
    uint64_t first_seq, first_nan, first_inf;
    char *first_file;
    int first_line;
};

struct mw_trace_writer {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    int in_txn;                 /* a batch is open */
    size_t batch_records;
    uint64_t batch_start_ns;    /* CLOCK_MONOTONIC of the batch's first record */
    int have_change;            /* last_seq is valid (for MW_REC_RANGES) */
    uint64_t last_seq;
    uint64_t dropped;
    struct mw_trace_totals totals;    /* committed: what the file holds */
    struct mw_trace_totals pending;   /* in the open batch, counted once it commits */
    /* typed objects, in id order (ids only grow); the change being stored and its
     * numeric summary so far (a change may continue in MW_REC_RANGES frames) */
    struct typed_object *typed;
    size_t ntyped, captyped;
    struct typed_object *cur_typed;
    struct mw_elem_stats cur_stats;
    char *cur_file;
    int cur_line;
    struct mw_outfile out;      /* the file claimed (outfile.h) */
    int finished, finish_rc;    /* mw_trace_writer_finish ran, and how it went */
    int placed;                 /* ... and the trace is at its path */
    char errmsg[512];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int set_err(mw_trace_writer *w, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(mw_trace_writer *w, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
    va_end(ap);
    return status;
}

static int db_err(mw_trace_writer *w, const char *what)
{
    return set_err(w, MW_ETRACE, "%s: %s", what, sqlite3_errmsg(w->db));
}

static int exec(mw_trace_writer *w, const char *sql)
{
    if (sqlite3_exec(w->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_err(w, sql);
    return 0;
}

/* Runs a prepared statement to completion and resets it. */
static int step(mw_trace_writer *w, int which)
{
    sqlite3_stmt *s = w->stmt[which];
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return db_err(w, "cannot write the trace");
    return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);   /* reset right after the step */
    else
        sqlite3_bind_null(s, i);
}

static void bind_blob(sqlite3_stmt *s, int i, const unsigned char *p, uint64_t n)
{
    if (!p)
        sqlite3_bind_null(s, i);
    else if (n == 0)
        sqlite3_bind_zeroblob(s, i, 0);
    else
        sqlite3_bind_blob64(s, i, p, n, SQLITE_STATIC);
}

/* ---- a tiny JSON builder for argv, shape and strides ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (MW_GROW(b->p, b->cap, b->len + n + 1) != 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_json_string(struct sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_add(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            sb_add(b, esc, 6);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static char *json_argv(int argc, char *const *argv)
{
    struct sbuf b = {0};
    sb_str(&b, "[");
    for (int i = 0; i < argc; i++) {
        if (i)
            sb_str(&b, ", ");
        sb_json_string(&b, argv[i] ? argv[i] : "");
    }
    sb_str(&b, "]");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static char *json_ints(const int64_t *v, int n)
{
    struct sbuf b = {0};
    sb_str(&b, "[");
    for (int i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof(num), "%s%" PRId64, i ? ", " : "", v[i]);
        sb_str(&b, num);
    }
    sb_str(&b, "]");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- lifecycle ---- */

/* The output file is claimed first (outfile.h: what -f may replace, one writer, a new
 * file in place or a replacement written aside); SQLite then creates the trace in it. */
int mw_trace_writer_open(const char *path, int force, mw_trace_writer **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    mw_trace_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = mw_outfile_claim(&w->out, path, force, MW_OUTFILE_TRACE);
    if (rc) {
        if (errlen)
            snprintf(err, errlen, "%s", w->out.err);
        free(w);
        return rc;
    }
    const char *file = mw_outfile_write_path(&w->out);
    if (sqlite3_open_v2(file, &w->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = db_err(w, "cannot open the trace");
        goto fail;
    }
    sqlite3_extended_result_codes(w->db, 1);
    if ((rc = exec(w, "PRAGMA journal_mode = WAL")) ||
        (rc = exec(w, "PRAGMA synchronous = NORMAL")) ||
        /* Index pages stay in memory instead of being read back for each batch, and the WAL
         * is folded into the file less often (it is truncated at close anyway). */
        (rc = exec(w, "PRAGMA cache_size = -65536")) ||
        (rc = exec(w, "PRAGMA wal_autocheckpoint = 16384")) ||
        (rc = exec(w, "BEGIN")) || (rc = exec(w, mw_trace_schema_sql)))
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->stmt[i],
                               NULL) != SQLITE_OK) {
            rc = db_err(w, "cannot prepare the trace statements");
            goto fail;
        }
    }
    sqlite3_bind_text(w->stmt[ST_META], 1, "memwatch_version", -1, SQLITE_STATIC);
    sqlite3_bind_text(w->stmt[ST_META], 2, MEMWATCH_VERSION, -1, SQLITE_STATIC);
    if ((rc = step(w, ST_META)) || (rc = exec(w, "COMMIT")))
        goto fail;
    *out = w;
    return 0;

fail:
    /* Keep nothing half-made on disk. */
    if (errlen)
        snprintf(err, errlen, "cannot write trace '%s': %s", path, w->errmsg);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(w->stmt[i]);
    sqlite3_close(w->db);
    mw_outfile_abandon(&w->out);
    free(w);
    return rc;
}

int mw_trace_writer_create(const char *path, int force, mw_trace_writer **out)
{
    return mw_trace_writer_open(path, force, out, NULL, 0);
}

const char *mw_trace_writer_errmsg(const mw_trace_writer *w)
{
    if (!w)
        return "no trace writer";
    return w->errmsg[0] ? w->errmsg : "no error";
}

static int put_meta_text(mw_trace_writer *w, const char *key, const char *value)
{
    sqlite3_stmt *s = w->stmt[ST_META];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    return step(w, ST_META);
}

int mw_trace_writer_begin_run(mw_trace_writer *w, const struct mw_run_info *run)
{
    char *argv = json_argv(run->argc, run->argv);
    if (!argv)
        return set_err(w, -ENOMEM, "out of memory");
    sqlite3_stmt *s;
    int rc = 0;
    if (sqlite3_prepare_v2(w->db,
                           "UPDATE run SET mode = ?, target = ?, argv = ?, cwd = ?,"
                           " start_unix_ns = ? WHERE id = 1",
                           -1, &s, NULL) != SQLITE_OK) {
        free(argv);
        return db_err(w, "cannot record the run");
    }
    bind_text(s, 1, run->mode);
    bind_text(s, 2, run->target);
    sqlite3_bind_text(s, 3, argv, -1, free);
    bind_text(s, 4, run->cwd);
    sqlite3_bind_int64(s, 5, run->start_unix_ns);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(w, "cannot record the run");
    sqlite3_finalize(s);
    /* The interpreter, beside run.python_version (which the traced process sends). */
    if (rc == 0 && run->python_path)
        rc = put_meta_text(w, "python_path", run->python_path);
    if (rc == 0 && run->python_chosen_by)
        rc = put_meta_text(w, "python_chosen_by", run->python_chosen_by);
    return rc;
}

/* Where a record just stored is counted: the open batch's counts reach the totals only
 * when it commits, so a summary after a failed commit (a full disk) says what was saved. */
static struct mw_trace_totals *counted(mw_trace_writer *w)
{
    return w->in_txn ? &w->pending : &w->totals;
}

static int begin_batch(mw_trace_writer *w)
{
    if (w->in_txn)
        return 0;
    int rc = exec(w, "BEGIN");
    if (rc)
        return rc;
    w->in_txn = 1;
    w->batch_records = 0;
    w->batch_start_ns = now_ns();
    return 0;
}

int mw_trace_writer_commit(mw_trace_writer *w)
{
    if (!w->in_txn)
        return 0;
    int rc = exec(w, "COMMIT");
    if (rc) {
        /* Leave no transaction open: the caller may go on and end the run. */
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    } else {
        w->totals.objects += w->pending.objects;
        w->totals.changes += w->pending.changes;
        w->totals.ranges += w->pending.ranges;
    }
    memset(&w->pending, 0, sizeof w->pending);
    w->in_txn = 0;
    w->batch_records = 0;
    return rc;
}

static int insert_ranges(mw_trace_writer *w, uint64_t seq, uint32_t n,
                         const struct mw_rec_range *r)
{
    sqlite3_stmt *s = w->stmt[ST_RANGE];
    for (uint32_t i = 0; i < n; i++) {
        sqlite3_bind_int64(s, 1, (int64_t)seq);
        sqlite3_bind_int64(s, 2, (int64_t)r[i].offset);
        sqlite3_bind_int64(s, 3, (int64_t)r[i].length);
        bind_blob(s, 4, r[i].old, r[i].length);
        bind_blob(s, 5, r[i].new_ ? r[i].new_ : (const unsigned char *)"", r[i].length);
        sqlite3_bind_int(s, 6, r[i].old != NULL);
        int rc = step(w, ST_RANGE);
        if (rc)
            return rc;
        counted(w)->ranges++;
    }
    return 0;
}

/* Remembers o's layout when it has an element type. A format this cannot read is not an
 * error: the object's changes are simply stored without a numeric summary. */
static int add_typed(mw_trace_writer *w, const struct mw_rec_object *o)
{
    if (!o->format || o->ndim > MW_REC_MAX_NDIM)
        return 0;
    struct mw_elem_desc d = {
        .format = o->format,
        .type_name = o->type_name,
        .itemsize = o->itemsize,
        .ndim = o->ndim,
        .shape = o->shape,
        .strides = o->strides,
        .size = o->size,
        .contiguous = -1,
    };
    mw_elem_layout *l;
    int rc = mw_elem_layout_create(&d, &l);
    if (rc == -ENOMEM)
        return set_err(w, rc, "out of memory");
    if (rc)
        return 0;
    if (!mw_elem_layout_typed(l)) {
        mw_elem_layout_destroy(l);
        return 0;
    }
    size_t cap = w->captyped;
    if (MW_GROW(w->typed, w->captyped, w->ntyped + 1) != 0) {
        mw_elem_layout_destroy(l);
        return set_err(w, -ENOMEM, "out of memory");
    }
    if (w->captyped != cap)
        w->cur_typed = NULL;   /* may have moved */
    struct typed_object *t = &w->typed[w->ntyped];
    memset(t, 0, sizeof *t);
    t->id = o->id;
    t->layout = l;
    if (!(t->tag = strdup(o->tag ? o->tag : ""))) {
        mw_elem_layout_destroy(l);
        return set_err(w, -ENOMEM, "out of memory");
    }
    /* Ids only grow in one run; keep the array sorted for the lookup anyway. */
    size_t at = w->ntyped;
    while (at > 0 && w->typed[at - 1].id > o->id) {
        struct typed_object tmp = w->typed[at - 1];
        w->typed[at - 1] = w->typed[at];
        w->typed[at] = tmp;
        at--;
    }
    w->ntyped++;
    return 0;
}

static int cmp_typed_id(const void *a, const void *b)
{
    uint64_t x = ((const struct typed_object *)a)->id, y = ((const struct typed_object *)b)->id;
    return x < y ? -1 : x > y;
}

static struct typed_object *find_typed(mw_trace_writer *w, uint64_t id)
{
    struct typed_object key = {.id = id};
    return bsearch(&key, w->typed, w->ntyped, sizeof(*w->typed), cmp_typed_id);
}

static int stats_elem(const struct mw_elem_change *c, void *ctx)
{
    mw_elem_stats_add(ctx, c);
    return 0;
}

/* Adds the elements of ranges to the current change's summary and stores it. */
static int store_elem_stats(mw_trace_writer *w, uint64_t seq, uint32_t n,
                            const struct mw_rec_range *r)
{
    struct typed_object *t = w->cur_typed;
    if (!t)
        return 0;
    struct mw_elem_stats before = w->cur_stats;
    /* Ranges past the object (a hand-made stream) only lose their summary. */
    if (mw_elem_diff(t->layout, r, n, NULL, NULL, 0, stats_elem, &w->cur_stats) == -ENOMEM)
        return set_err(w, -ENOMEM, "out of memory");
    const struct mw_elem_stats *st = &w->cur_stats;
    if (st->elements == 0)
        return 0;
    sqlite3_stmt *s = w->stmt[ST_ELEM_STATS];
    sqlite3_bind_int64(s, 1, (int64_t)seq);
    sqlite3_bind_int64(s, 2, (int64_t)st->elements);
    sqlite3_bind_int64(s, 3, (int64_t)st->unknown);
    sqlite3_bind_int64(s, 4, (int64_t)st->deltas);
    if (st->deltas) {
        sqlite3_bind_double(s, 5, st->delta_min);
        sqlite3_bind_double(s, 6, st->delta_max);
        sqlite3_bind_double(s, 7, st->delta_sum / (double)st->deltas);
    }
    sqlite3_bind_int64(s, 8, (int64_t)st->nan_appeared);
    sqlite3_bind_int64(s, 9, (int64_t)st->nan_gone);
    sqlite3_bind_int64(s, 10, (int64_t)st->inf_appeared);
    sqlite3_bind_int64(s, 11, (int64_t)st->inf_gone);
    int rc = step(w, ST_ELEM_STATS);
    if (rc)
        return rc;
    uint64_t nan = st->nan_appeared - before.nan_appeared;
    uint64_t inf = st->inf_appeared - before.inf_appeared;
    if (nan || inf) {
        t->nan_appeared += nan;
        t->inf_appeared += inf;
        if (!t->first_seq || t->first_seq == seq) {
            if (!t->first_seq && w->cur_file && !(t->first_file = strdup(w->cur_file)))
                return set_err(w, -ENOMEM, "out of memory");
            t->first_seq = seq;
            t->first_line = w->cur_line;
            t->first_nan += nan;
            t->first_inf += inf;
        }
    }
    return 0;
}

static int apply_object(mw_trace_writer *w, const struct mw_rec_object *o)
{
    sqlite3_stmt *s = w->stmt[ST_OBJECT];
    char *shape = NULL, *strides = NULL;
    if (o->ndim >= 0 && o->shape && !(shape = json_ints(o->shape, o->ndim)))
        return set_err(w, -ENOMEM, "out of memory");
    if (o->ndim >= 0 && o->strides && !(strides = json_ints(o->strides, o->ndim))) {
        free(shape);
        return set_err(w, -ENOMEM, "out of memory");
    }
    sqlite3_bind_int64(s, 1, (int64_t)o->id);
    bind_text(s, 2, o->tag);
    bind_text(s, 3, o->type_name);
    sqlite3_bind_int64(s, 4, (int64_t)o->address);
    sqlite3_bind_int64(s, 5, (int64_t)o->size);
    sqlite3_bind_int(s, 6, o->readonly != 0);
    bind_text(s, 7, o->format);
    if (o->itemsize > 0)
        sqlite3_bind_int64(s, 8, o->itemsize);
    if (o->ndim >= 0)
        sqlite3_bind_int(s, 9, o->ndim);
    if (shape)
        sqlite3_bind_text(s, 10, shape, -1, free);
    if (strides)
        sqlite3_bind_text(s, 11, strides, -1, free);
    sqlite3_bind_int64(s, 12, (int64_t)o->time_ns);
    int rc = step(w, ST_OBJECT);
    if (!rc)
        counted(w)->objects++;
    if (!rc)
        rc = add_typed(w, o);
    return rc;
}

static int put_meta_number(mw_trace_writer *w, const char *key, uint64_t value)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, value);
    sqlite3_stmt *s = w->stmt[ST_META];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, num, -1, SQLITE_TRANSIENT);
    return step(w, ST_META);
}

/* The engine's counters at the end of the run: run's columns, and in meta how writes were
 * found and what watching did to the memory layout (schemas/trace.sql). */
static int apply_stats(mw_trace_writer *w, const struct mw_rec_stats *st)
{
    sqlite3_stmt *s = w->stmt[ST_STATS];
    sqlite3_bind_int64(s, 1, (int64_t)st->faults);
    sqlite3_bind_int64(s, 2, (int64_t)st->checks);
    sqlite3_bind_int64(s, 3, (int64_t)st->changes);
    sqlite3_bind_int64(s, 4, (int64_t)st->old_unavailable);
    sqlite3_bind_int64(s, 5, (int64_t)st->tracked_objects_peak);
    int rc = step(w, ST_STATS);
    if (rc == 0)
        rc = put_meta_number(w, "changes_found_by_trap", st->changes - st->changes_compared);
    if (rc == 0)
        rc = put_meta_number(w, "changes_found_by_comparison", st->changes_compared);
    if (rc == 0)
        rc = put_meta_number(w, "isolated_objects_peak", st->isolated_objects_peak);
    if (rc == 0)
        rc = put_meta_number(w, "isolated_pages_peak", st->isolated_pages_peak);
    if (rc == 0)
        rc = put_meta_number(w, "open_pages_peak", st->open_pages_peak);
    /* Memory that ran out mid-run is flagged, never silent: a lost change counts as dropped. */
    w->totals.short_of_memory = st->short_of_memory;
    w->totals.lost_for_memory = st->lost_for_memory;
    if (rc == 0)
        rc = put_meta_number(w, "changes_short_of_memory", st->short_of_memory);
    w->dropped += st->lost_for_memory;   /* run.changes_dropped, stored when the run ends */
    return rc;
}

static int apply_change(mw_trace_writer *w, const struct mw_rec_change *c)
{
    sqlite3_stmt *s = w->stmt[ST_CHANGE];
    sqlite3_bind_int64(s, 1, (int64_t)c->seq);
    sqlite3_bind_int64(s, 2, (int64_t)c->time_ns);
    sqlite3_bind_int64(s, 3, (int64_t)c->object_id);
    if (c->thread_id)
        sqlite3_bind_int64(s, 4, c->thread_id);
    bind_text(s, 5, c->thread_name);
    bind_text(s, 6, c->file);
    if (c->line > 0)
        sqlite3_bind_int(s, 7, c->line);
    bind_text(s, 8, c->function);
    bind_text(s, 9, c->native_symbol);
    bind_text(s, 10, c->native_library);
    int rc = step(w, ST_CHANGE);
    if (rc)
        return rc;
    counted(w)->changes++;
    w->have_change = 1;
    w->last_seq = c->seq;
    if ((rc = insert_ranges(w, c->seq, c->nranges, c->ranges)))
        return rc;
    w->cur_typed = w->ntyped ? find_typed(w, c->object_id) : NULL;
    if (!w->cur_typed)
        return 0;
    mw_elem_stats_init(&w->cur_stats);
    free(w->cur_file);
    w->cur_file = NULL;
    if (c->file && !(w->cur_file = strdup(c->file)))
        return set_err(w, -ENOMEM, "out of memory");
    w->cur_line = c->line;
    return store_elem_stats(w, c->seq, c->nranges, c->ranges);
}

int mw_trace_writer_apply(mw_trace_writer *w, const struct mw_rec_decoded *rec)
{
    int rc = begin_batch(w);
    if (rc)
        return rc;
    w->batch_records++;
    sqlite3_stmt *s;
    switch (rec->type) {
    case MW_REC_HELLO: {
        const struct mw_rec_hello *h = &rec->u.hello;
        s = w->stmt[ST_HELLO];
        bind_text(s, 1, h->python_version);
        sqlite3_bind_int64(s, 2, h->pid);
        if ((rc = step(w, ST_HELLO)))
            return rc;
        char num[32];
        snprintf(num, sizeof(num), "%" PRId64, h->page_size);
        s = w->stmt[ST_META];
        sqlite3_bind_text(s, 1, "page_size", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, num, -1, SQLITE_TRANSIENT);
        if ((rc = step(w, ST_META)))
            return rc;
        sqlite3_bind_text(s, 1, "backend", -1, SQLITE_STATIC);
        bind_text(s, 2, h->backend);
        return step(w, ST_META);
    }
    case MW_REC_OBJECT:
        return apply_object(w, &rec->u.object);
    case MW_REC_UNWATCH:
        s = w->stmt[ST_UNWATCH];
        sqlite3_bind_int64(s, 1, (int64_t)rec->u.unwatch.time_ns);
        sqlite3_bind_int64(s, 2, (int64_t)rec->u.unwatch.id);
        return step(w, ST_UNWATCH);
    case MW_REC_CHANGE:
        return apply_change(w, &rec->u.change);
    case MW_REC_RANGES:
        if (!w->have_change || rec->u.ranges.seq != w->last_seq)
            return set_err(w, MW_EFORMAT, "ranges of change %" PRIu64 " arrived after another change",
                           rec->u.ranges.seq);
        if ((rc = insert_ranges(w, rec->u.ranges.seq, rec->u.ranges.nranges,
                                rec->u.ranges.ranges)))
            return rc;
        return store_elem_stats(w, rec->u.ranges.seq, rec->u.ranges.nranges,
                                rec->u.ranges.ranges);
    case MW_REC_STATS:
        return apply_stats(w, &rec->u.stats);
    }
    return set_err(w, MW_EFORMAT, "unknown record type %d", (int)rec->type);
}

static int store_dropped(mw_trace_writer *w)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE run SET changes_dropped = %" PRIu64 " WHERE id = 1",
             w->dropped);
    return exec(w, sql);
}

int mw_trace_writer_consume_fd(mw_trace_writer *w, int fd)
{
    mw_rec_decoder *d;
    int rc = mw_rec_decoder_create(&d);
    unsigned char *buf = malloc(READ_SIZE);
    if (rc || !buf) {
        mw_rec_decoder_destroy(d);
        free(buf);
        return set_err(w, -ENOMEM, "out of memory");
    }
    uint64_t offset = 0;   /* bytes consumed, for messages */
    for (;;) {
        int timeout = -1;
        if (w->in_txn) {
            uint64_t age = now_ns() - w->batch_start_ns;
            if (age >= BATCH_NS) {
                if ((rc = mw_trace_writer_commit(w)))
                    goto out;
                continue;
            }
            timeout = (int)((BATCH_NS - age + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = set_err(w, -errno, "cannot wait for records: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            continue;   /* the batch is due: committed at the top */
        ssize_t got = read(fd, buf, READ_SIZE);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            rc = set_err(w, -errno, "cannot read records: %s", strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        offset += (uint64_t)got;
        if ((rc = mw_rec_decoder_feed(d, buf, (size_t)got))) {
            set_err(w, rc, "out of memory");
            goto out;
        }
        struct mw_rec_decoded rec;
        while ((rc = mw_rec_decoder_next(d, &rec)) == 1) {
            if ((rc = mw_trace_writer_apply(w, &rec)))
                goto out;
            if (w->batch_records >= BATCH_RECORDS ||
                ((w->batch_records & 63) == 0 && now_ns() - w->batch_start_ns >= BATCH_NS))
                if ((rc = mw_trace_writer_commit(w)))
                    goto out;
        }
        if (rc < 0) {
            set_err(w, rc, "malformed record in the stream (within its first %" PRIu64 " bytes)",
                    offset);
            goto out;
        }
    }
    /* End of the stream. A partial frame means the traced process died while sending it. */
    int type;
    if (mw_rec_decoder_pending(d, &type) > 0 && (type == MW_REC_CHANGE || type == MW_REC_RANGES)) {
        w->dropped++;
        if ((rc = begin_batch(w)) || (rc = store_dropped(w)))
            goto out;
    }
    rc = mw_trace_writer_commit(w);
out:
    if (rc)
        mw_trace_writer_commit(w);   /* keep what was applied */
    mw_rec_decoder_destroy(d);
    free(buf);
    return rc;
}

int mw_trace_writer_end_run(mw_trace_writer *w, const struct mw_run_end *end)
{
    int rc = mw_trace_writer_commit(w);
    if (rc)
        return rc;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(w->db,
                           "UPDATE run SET end_unix_ns = ?, duration_ns = ?, exit_status = ?,"
                           " end_signal = ?, core_dumped = ?, ended_by = ?,"
                           " changes_dropped = ? WHERE id = 1",
                           -1, &s, NULL) != SQLITE_OK)
        return db_err(w, "cannot record the end of the run");
    sqlite3_bind_int64(s, 1, end->end_unix_ns);
    sqlite3_bind_int64(s, 2, end->duration_ns);
    if (end->exit_status >= 0)
        sqlite3_bind_int(s, 3, end->exit_status);
    if (end->signal > 0)
        sqlite3_bind_int(s, 4, end->signal);
    sqlite3_bind_int(s, 5, end->core_dumped != 0);
    if (end->signal > 0)
        sqlite3_bind_text(s, 6, "signal", -1, SQLITE_STATIC);
    else if (end->exit_status >= 0)
        sqlite3_bind_text(s, 6, "exit", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, (int64_t)w->dropped);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(w, "cannot record the end of the run");
    sqlite3_finalize(s);
    return rc;
}

void mw_trace_writer_totals(const mw_trace_writer *w, struct mw_trace_totals *out)
{
    *out = w->totals;
}

int mw_trace_writer_nonfinite(const mw_trace_writer *w, size_t i, struct mw_trace_nonfinite *out)
{
    for (size_t k = 0; k < w->ntyped; k++) {
        const struct typed_object *t = &w->typed[k];
        if (!t->first_seq || i-- > 0)
            continue;
        *out = (struct mw_trace_nonfinite){
            .tag = t->tag,
            .object_id = t->id,
            .nan_appeared = t->nan_appeared,
            .inf_appeared = t->inf_appeared,
            .first_seq = t->first_seq,
            .first_nan = t->first_nan,
            .first_inf = t->first_inf,
            .first_file = t->first_file,
            .first_line = t->first_line,
        };
        return 1;
    }
    return 0;
}

/* Commits, checkpoints and leaves the trace as one self-contained file, then moves it into
 * place when it replaces another (outfile.h). */
int mw_trace_writer_finish(mw_trace_writer *w)
{
    if (w->finished)
        return w->finish_rc;
    w->finished = 1;
    int rc = mw_trace_writer_commit(w);
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(w->stmt[i]);
        w->stmt[i] = NULL;
    }
    if (!rc)
        rc = exec(w, "PRAGMA wal_checkpoint(TRUNCATE)");
    if (!rc)
        rc = exec(w, "PRAGMA journal_mode = DELETE");
    if (sqlite3_close(w->db) != SQLITE_OK && !rc)
        rc = set_err(w, MW_ETRACE, "cannot close the trace");
    w->db = NULL;
    /* Moved into place even after a failure above: what was written is the run's. */
    int placed = mw_outfile_commit(&w->out);
    w->placed = placed == 0;
    if (placed) {
        snprintf(w->errmsg, sizeof w->errmsg, "%.*s", (int)sizeof w->errmsg - 1, w->out.err);
        rc = placed;
    }
    return w->finish_rc = rc;
}

int mw_trace_writer_placed(const mw_trace_writer *w)
{
    return w->placed;
}

int mw_trace_writer_close(mw_trace_writer *w)
{
    if (!w)
        return 0;
    int rc = mw_trace_writer_finish(w);
    for (size_t i = 0; i < w->ntyped; i++) {
        mw_elem_layout_destroy(w->typed[i].layout);
        free(w->typed[i].tag);
        free(w->typed[i].first_file);
    }
    free(w->typed);
    free(w->cur_file);
    free(w);
    return rc;
}
