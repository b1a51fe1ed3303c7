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

#include "change_store.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "outfile.h"
#include "schema.h"

#ifndef MEMWATCH_VERSION
#define MEMWATCH_VERSION "unknown"
#endif

#define BATCH_RECORDS 8192
#define BATCH_NS (100 * 1000 * 1000ull)

enum { ST_OBJECT, ST_UNWATCH, ST_STATS, ST_HELLO, ST_META, ST_COUNT };

static const char *const stmt_sql[ST_COUNT] = {
    [ST_OBJECT] = "INSERT INTO objects (id, tag, type_name, address, size, readonly, format,"
                  " itemsize, ndim, shape, strides, watched_ns)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_UNWATCH] = "UPDATE objects SET unwatched_ns = ? WHERE id = ?",
    [ST_STATS] = "UPDATE run SET faults = ?, checks = ?, changes = ?, old_unavailable = ?,"
                 " tracked_objects_peak = ? WHERE id = 1",
    [ST_HELLO] = "UPDATE run SET python_version = ?, pid = ? WHERE id = 1",
    [ST_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
};

struct mw_trace_writer {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    int in_txn;                 /* a batch is open */
    size_t batch_records;
    uint64_t batch_start_ns;    /* CLOCK_MONOTONIC of the batch's first record */
    uint64_t dropped;
    struct mw_trace_totals totals;    /* committed: what the file holds */
    struct mw_trace_totals pending;   /* in the open batch, counted once it commits */
    mw_change_store *store;     /* changes, their values and summaries (change_store.h) */
    int file_finished;          /* the end-of-run part of the schema ran */
    struct mw_outfile out;      /* the file claimed (outfile.h) */
    int finished, finish_rc;    /* mw_trace_writer_finish ran, and how it went */
    int placed;                 /* ... and the trace is at its path */
    char errmsg[512];
};

/* A batch's age, asked after every record: the coarse clock (a few ms apart) is plenty
 * for 100 ms batches, and costs a quarter of the precise one. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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

/* A status of the change store, with its message. */
static int store_err(mw_trace_writer *w, int status)
{
    return set_err(w, status, "%s", mw_change_store_errmsg(w->store));
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

/* The schema's statements (end_of_run 0) or those it leaves for the end of the run (1):
 * schemas/trace.sql says where they part. */
static int exec_schema(mw_trace_writer *w, int end_of_run)
{
    static const char marker[] = "-- AT THE END OF THE RUN";
    const char *cut = strstr(mw_trace_schema_sql, marker);
    if (!cut)
        return end_of_run ? 0 : exec(w, mw_trace_schema_sql);
    if (end_of_run)
        return exec(w, cut);
    char *head = strndup(mw_trace_schema_sql, (size_t)(cut - mw_trace_schema_sql));
    if (!head)
        return set_err(w, -ENOMEM, "out of memory");
    int rc = exec(w, head);
    free(head);
    return rc;
}

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
    /* NOMUTEX: one thread uses this connection (see DESIGN); SQLite's own locking of it
     * cost the writer 5% of its time per small change. */
    if (sqlite3_open_v2(file, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = db_err(w, "cannot open the trace");
        goto fail;
    }
    sqlite3_extended_result_codes(w->db, 1);
    /* Pages of 16 KiB: a small change's row costs the B-tree a fifth less than in 4 KiB
     * pages (fewer splits and page writes); set before the first table. */
    if ((rc = exec(w, "PRAGMA page_size = 16384")) ||
        (rc = exec(w, "PRAGMA journal_mode = WAL")) ||
        (rc = exec(w, "PRAGMA synchronous = NORMAL")) ||
        /* Index pages stay in memory instead of being read back for each batch, and the WAL
         * is folded into the file less often (it is truncated at close anyway). */
        (rc = exec(w, "PRAGMA cache_size = -65536")) ||
        (rc = exec(w, "PRAGMA wal_autocheckpoint = 16384")) ||
        (rc = exec(w, "BEGIN")) || (rc = exec_schema(w, 0)))
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
    struct mw_values_config full = {.values = MW_VALUES_FULL};
    if ((rc = mw_change_store_create(w->db, &full, &w->store)))
        goto fail;
    *out = w;
    return 0;

fail:
    /* Keep nothing half-made on disk. */
    if (errlen)
        snprintf(err, errlen, "cannot write trace '%s': %s", path, w->errmsg);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(w->stmt[i]);
    mw_change_store_destroy(w->store);
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
    /* A job's rank, so that several traces read as one timeline name their process. */
    if (rc == 0 && run->rank)
        rc = put_meta_text(w, "rank", run->rank);
    if (rc == 0 && run->rank && run->rank_from)
        rc = put_meta_text(w, "rank_from", run->rank_from);
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
    int rc = mw_change_store_flush_rows(w->store);
    if (rc)
        store_err(w, rc);
    else
        rc = exec(w, "COMMIT");
    if (rc) {
        /* Leave no transaction open: the caller may go on and end the run. */
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        mw_change_store_rolled_back(w->store);
    } else {
        w->totals.objects += w->pending.objects;
        w->totals.changes += w->pending.changes;
        w->totals.ranges += w->pending.ranges;
    }
    memset(&w->pending, 0, sizeof w->pending);
    w->in_txn = 0;
    w->batch_records = 0;
    mw_change_store_batch_ended(w->store);
    return rc;
}

void mw_trace_writer_abandon(mw_trace_writer *w)
{
    if (!w->in_txn)
        return;
    sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    mw_change_store_rolled_back(w->store);
    memset(&w->pending, 0, sizeof w->pending);
    w->in_txn = 0;
    w->batch_records = 0;
    mw_change_store_batch_ended(w->store);
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
    if (!rc && (rc = mw_change_store_object(w->store, o)))
        store_err(w, rc);
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

/* What a change record added, counted in the open batch. */
static int stored(mw_trace_writer *w, int rc, const struct mw_stored *done)
{
    if (rc)
        return store_err(w, rc);
    counted(w)->changes += done->changes;
    counted(w)->ranges += done->ranges;
    return 0;
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
        mw_change_store_unwatch(w->store, rec->u.unwatch.id);
        s = w->stmt[ST_UNWATCH];
        sqlite3_bind_int64(s, 1, (int64_t)rec->u.unwatch.time_ns);
        sqlite3_bind_int64(s, 2, (int64_t)rec->u.unwatch.id);
        return step(w, ST_UNWATCH);
    case MW_REC_CHANGE: {
        struct mw_stored done = {0};
        return stored(w, mw_change_store_change(w->store, &rec->u.change, &done), &done);
    }
    case MW_REC_RANGES: {
        struct mw_stored done = {0};
        return stored(w, mw_change_store_ranges(w->store, &rec->u.ranges, &done), &done);
    }
    case MW_REC_STATS:
        return apply_stats(w, &rec->u.stats);
    case MW_REC_VALUE:
        if ((rc = mw_change_store_value(w->store, &rec->u.value)))
            return store_err(w, rc);
        return 0;
    case MW_REC_END:
    case MW_REC_LOST:
        return 0;   /* the connection's business (serve.c) */
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

int mw_trace_writer_end_stream(mw_trace_writer *w, int cut_change)
{
    /* A change whose last frame never came is stored as far as it came; a frame cut off
     * means the traced process died while sending it. */
    struct mw_stored done = {0};
    int rc;
    if ((rc = begin_batch(w)) ||
        (rc = stored(w, mw_change_store_flush(w->store, &done), &done)))
        return rc;
    if (cut_change) {
        w->dropped++;
        if ((rc = store_dropped(w)))
            return rc;
    }
    return 0;
}

int mw_trace_writer_due(mw_trace_writer *w, int *timeout_ms)
{
    *timeout_ms = -1;
    if (!w->in_txn)
        return 0;
    uint64_t age = now_ns() - w->batch_start_ns;
    if (age >= BATCH_NS || w->batch_records >= BATCH_RECORDS)
        return mw_trace_writer_commit(w);
    *timeout_ms = (int)((BATCH_NS - age + 999999) / 1000000);
    return 0;
}

/* The command line as a JSON array, from its arguments each NUL-terminated. */
static char *json_argv_nul(const char *args, size_t len)
{
    struct sbuf b = {0};
    sb_str(&b, "[");
    for (size_t at = 0, i = 0; at < len; i++) {
        if (i)
            sb_str(&b, ", ");
        sb_json_string(&b, args + at);
        at += strlen(args + at) + 1;
    }
    sb_str(&b, "]");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int mw_trace_writer_process(mw_trace_writer *w, const struct mw_trace_process *p)
{
    int rc = begin_batch(w);
    if (rc)
        return rc;
    char *argv = p->argv_len ? json_argv_nul(p->argv, p->argv_len) : NULL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(w->db,
                           "INSERT OR REPLACE INTO processes (pid, ppid, root, forked, argv,"
                           " start_unix_ns, traced) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           -1, &s, NULL) != SQLITE_OK) {
        free(argv);
        return db_err(w, "cannot record a process");
    }
    sqlite3_bind_int64(s, 1, p->pid);
    if (p->ppid > 0)
        sqlite3_bind_int64(s, 2, p->ppid);
    sqlite3_bind_int(s, 3, p->root != 0);
    sqlite3_bind_int(s, 4, p->forked != 0);
    if (argv)
        sqlite3_bind_text(s, 5, argv, -1, free);
    if (p->start_unix_ns)
        sqlite3_bind_int64(s, 6, p->start_unix_ns);
    sqlite3_bind_int(s, 7, p->traced != 0);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(w, "cannot record a process");
    sqlite3_finalize(s);
    return rc;
}

void mw_trace_writer_process_exiting(mw_trace_writer *w, int64_t pid)
{
    mw_change_store_process_end(w->store, pid);
}

int mw_trace_writer_process_end(mw_trace_writer *w, int64_t pid, int64_t end_unix_ns,
                                int exit_status, int signal)
{
    int rc = begin_batch(w);
    if (rc)
        return rc;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(w->db,
                           "UPDATE processes SET end_unix_ns = coalesce(?, end_unix_ns),"
                           " exit_status = coalesce(?, exit_status),"
                           " end_signal = coalesce(?, end_signal) WHERE pid = ?",
                           -1, &s, NULL) != SQLITE_OK)
        return db_err(w, "cannot record the end of a process");
    if (end_unix_ns)
        sqlite3_bind_int64(s, 1, end_unix_ns);
    if (exit_status >= 0)
        sqlite3_bind_int(s, 2, exit_status);
    if (signal > 0)
        sqlite3_bind_int(s, 3, signal);
    sqlite3_bind_int64(s, 4, pid);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_err(w, "cannot record the end of a process");
    sqlite3_finalize(s);
    return rc;
}

void mw_trace_writer_note_dropped(mw_trace_writer *w)
{
    w->dropped++;
}

int mw_trace_writer_fail(mw_trace_writer *w, int status, const char *message)
{
    return set_err(w, status, "%s", message);
}

int mw_trace_writer_meta(mw_trace_writer *w, const char *key, uint64_t value)
{
    int rc = begin_batch(w);
    return rc ? rc : put_meta_number(w, key, value);
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
    return mw_change_store_nonfinite(w->store, i, out);
}

void mw_trace_writer_dropped(const mw_trace_writer *w, uint64_t *values_changes,
                             uint64_t *values_bytes, uint64_t *not_recorded)
{
    mw_change_store_dropped(w->store, values_changes, values_bytes, not_recorded);
}

/* The value store's committer (value_store.h): the batch so far is committed and the
 * record being stored goes on in a new one. */
static int commit_and_go_on(void *ctx, char *err, size_t size)
{
    mw_trace_writer *w = ctx;
    int rc = mw_trace_writer_commit(w);
    if (rc == 0)
        rc = begin_batch(w);
    if (rc)
        snprintf(err, size, "%s", mw_trace_writer_errmsg(w));
    return rc;
}

int mw_trace_writer_set_values(mw_trace_writer *w, const struct mw_values_config *cfg)
{
    mw_change_store *s;
    int rc = mw_change_store_create(w->db, cfg, &s);
    if (rc)
        return set_err(w, rc, "%s", rc == -ENOMEM ? "out of memory"
                                                  : "cannot set up the trace's values");
    mw_change_store_destroy(w->store);
    w->store = s;
    mw_change_store_set_committer(s, commit_and_go_on, w);
    return 0;
}

/* The run's end for the file: what the values left out, and the end-of-run part of the
 * schema (an index), once. */
static int finish_file(mw_trace_writer *w)
{
    if (w->file_finished)
        return 0;
    w->file_finished = 1;
    int rc = begin_batch(w);
    if (!rc && (rc = mw_change_store_finish(w->store)))
        rc = store_err(w, rc);
    if (!rc)
        rc = mw_trace_writer_commit(w);
    /* Without the index the trace reads the same, more slowly: a file at its size limit
     * may have no room for it. */
    if (!rc && exec_schema(w, 1) != 0)
        w->errmsg[0] = '\0';
    return rc;
}

/* Commits, checkpoints and leaves the trace as one self-contained file, then moves it into
 * place when it replaces another (outfile.h). */
int mw_trace_writer_finish(mw_trace_writer *w)
{
    if (w->finished)
        return w->finish_rc;
    w->finished = 1;
    int rc = mw_trace_writer_commit(w);
    if (!rc)
        rc = finish_file(w);
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(w->stmt[i]);
        w->stmt[i] = NULL;
    }
    /* Its statements are on the connection, which does not close while they live. */
    mw_change_store_release_db(w->store);
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
    mw_change_store_destroy(w->store);
    free(w);
    return rc;
}
