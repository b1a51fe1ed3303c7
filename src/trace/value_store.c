/* The trace writer's bulk bytes (see value_store.h). */
#include "value_store.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mw_error.h"
#include "mw_grow.h"

/* Objects are allocated in slabs that never move (streams keep pointers to them). */
#define SLAB_OBJECTS 1024
/* A size limit closes a group once it holds this share of the limit. */
#define GROUP_SHARE 16
/* Bytes written between two looks at the file's real size. */
#define RECHECK_BYTES ((uint64_t)256 << 10)
/* Room kept free under the limit: per change row, the index built at the end of the run;
 * and a margin for SQLite's own pages (b-tree interior pages, the freelist's trunk). */
#define INDEX_BYTES_PER_ROW 32
#define MARGIN_BYTES ((uint64_t)64 << 10)

struct closed_group {
    uint64_t obj;
    struct mw_value_group g;
    int dropped;
};

struct mw_value_store {
    sqlite3 *db;
    struct mw_values_config cfg;
    mw_codec_ctx *codec;
    unsigned char *out;               /* mw_codec_bound(MW_CODEC_PIECE) */
    sqlite3_stmt *ins, *del_span, *del_stream;
    /* objects: slabs, and pointers sorted by id */
    struct mw_value_object **slabs;
    size_t nslabs, capslabs, used_in_slab;
    struct mw_value_object **by_id;
    size_t nobj, capobj;
    /* --max-trace-size */
    uint64_t page_size, used, since_look, rows;
    uint64_t batch_share, batch_bytes;   /* what a transaction may store; what it did */
    int (*commit)(void *ctx, char *err, size_t size);   /* the writer's: commits, opens */
    void *commit_ctx;
    struct closed_group *fifo;        /* closed groups, oldest first from fifo_head */
    size_t fifo_head, fifo_n, fifo_cap;
    size_t fifo_live;                 /* entries not marked dropped */
    uint64_t fifo_base;               /* fifo[fifo_head] is number fifo_base + 1 */
    uint64_t dropped_changes, dropped_bytes;
    char err[256];
};

static int fail(mw_value_store *v, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(mw_value_store *v, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err, sizeof v->err, fmt, ap);
    va_end(ap);
    return status;
}

static int db_fail(mw_value_store *v, const char *what)
{
    return fail(v, MW_ETRACE, "%s: %s", what, sqlite3_errmsg(v->db));
}

const char *mw_value_store_errmsg(const mw_value_store *v)
{
    return v->err[0] ? v->err : "no error";
}

const struct mw_values_config *mw_value_store_config(const mw_value_store *v)
{
    return &v->cfg;
}

/* One value of a PRAGMA that returns a number; -1 on error. */
static int64_t pragma_number(mw_value_store *v, const char *sql)
{
    sqlite3_stmt *s;
    int64_t n = -1;
    if (sqlite3_prepare_v2(v->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static int look_at_size(mw_value_store *v);

/* Under a size limit: the file stops at it (max_page_count), and the -wal file, which
 * holds pages on their way into it, is kept small. */
static int setup_limit(mw_value_store *v)
{
    int64_t ps = pragma_number(v, "PRAGMA page_size");
    if (ps <= 0)
        return db_fail(v, "cannot read the trace's page size");
    v->page_size = (uint64_t)ps;
    uint64_t pages = v->cfg.max_size / v->page_size;
    uint64_t wal = v->cfg.max_size / 8 < ((uint64_t)16 << 20) ? v->cfg.max_size / 8
                                                              : ((uint64_t)16 << 20);
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %" PRIu64, pages);
    if (pragma_number(v, sql) < 0)
        return db_fail(v, "cannot limit the trace's size");
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %" PRIu64, wal);
    sqlite3_exec(v->db, sql, NULL, NULL, NULL);
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %" PRIu64, wal / v->page_size / 4 + 1);
    sqlite3_exec(v->db, sql, NULL, NULL, NULL);
    /* Values dropped to make room are not overwritten with zeros where that costs writes
     * (SQLite's secure_delete, on in Debian's build, would put every freed page of them
     * through the -wal file: as many bytes as were dropped). */
    sqlite3_exec(v->db, "PRAGMA secure_delete = FAST", NULL, NULL, NULL);
    /* A transaction's pages reach the -wal file all at its commit, however large: it is
     * committed before it would store more than a quarter of the file's room, between two
     * pieces of one change if need be; a quarter is left to the pages not yet checkpointed
     * (above), the rest to the b-tree pages the bytes dirty on their way. A piece larger
     * than a quarter (1 MiB at most) is a transaction of its own. */
    v->batch_share = wal / 4;
    return 0;
}

int mw_value_store_create(sqlite3 *db, const struct mw_values_config *cfg, mw_value_store **out)
{
    *out = NULL;
    mw_value_store *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->db = db;
    v->cfg = *cfg;
    v->out = malloc(mw_codec_bound(MW_CODEC_PIECE));
    int rc = v->out ? mw_codec_ctx_create(&v->codec) : -ENOMEM;
    if (rc == 0 &&
        (sqlite3_prepare_v3(db, "INSERT INTO chunks (object_id, seq, role, part, codec, lane,"
                                " size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            -1, SQLITE_PREPARE_PERSISTENT, &v->ins, NULL) != SQLITE_OK ||
         sqlite3_prepare_v3(db, "DELETE FROM chunks WHERE object_id = ? AND seq BETWEEN ? AND ?",
                            -1, SQLITE_PREPARE_PERSISTENT, &v->del_span, NULL) != SQLITE_OK ||
         sqlite3_prepare_v3(db, "DELETE FROM chunks WHERE object_id = ? AND seq = ? AND role = ?",
                            -1, SQLITE_PREPARE_PERSISTENT, &v->del_stream, NULL) != SQLITE_OK))
        rc = MW_ETRACE;
    if (rc == 0 && cfg->max_size && (rc = setup_limit(v)) == 0)
        rc = look_at_size(v);
    if (rc) {
        mw_value_store_destroy(v);
        return rc;
    }
    *out = v;
    return 0;
}

void mw_value_store_release_db(mw_value_store *v)
{
    if (!v)
        return;
    sqlite3_finalize(v->ins);
    sqlite3_finalize(v->del_span);
    sqlite3_finalize(v->del_stream);
    v->ins = v->del_span = v->del_stream = NULL;
}

void mw_value_store_destroy(mw_value_store *v)
{
    if (!v)
        return;
    mw_value_store_release_db(v);
    for (size_t i = 0; i < v->nslabs; i++) {
        size_t n = i + 1 == v->nslabs ? v->used_in_slab : SLAB_OBJECTS;
        for (size_t k = 0; k < n; k++)
            free(v->slabs[i][k].cover);
        free(v->slabs[i]);
    }
    free(v->slabs);
    free(v->by_id);
    free(v->fifo);
    free(v->out);
    mw_codec_ctx_destroy(v->codec);
    free(v);
}

/* ---- objects ------------------------------------------------------------------------ */

static int cmp_id(const void *key, const void *elem)
{
    uint64_t a = *(const uint64_t *)key, b = (*(struct mw_value_object *const *)elem)->id;
    return a < b ? -1 : a > b;
}

struct mw_value_object *mw_value_store_find(mw_value_store *v, uint64_t id)
{
    if (v->nobj == 0)
        return NULL;
    /* Ids count from the first one without gaps in a run (the traced process numbers its
     * objects): then the object is at its id's place, found without a search. */
    uint64_t first = v->by_id[0]->id;
    if (id >= first && id - first < v->nobj && v->by_id[id - first]->id == id)
        return v->by_id[id - first];
    struct mw_value_object **p = bsearch(&id, v->by_id, v->nobj, sizeof *v->by_id, cmp_id);
    return p ? *p : NULL;
}

struct mw_value_object *mw_value_store_object(mw_value_store *v, uint64_t id, uint64_t size,
                                              unsigned lane)
{
    struct mw_value_object *o = mw_value_store_find(v, id);
    if (o)
        return o;
    if (v->nslabs == 0 || v->used_in_slab == SLAB_OBJECTS) {
        if (MW_GROW(v->slabs, v->capslabs, v->nslabs + 1) != 0)
            return NULL;
        if (!(v->slabs[v->nslabs] = calloc(SLAB_OBJECTS, sizeof **v->slabs)))
            return NULL;
        v->nslabs++;
        v->used_in_slab = 0;
    }
    if (MW_GROW(v->by_id, v->capobj, v->nobj + 1) != 0)
        return NULL;
    o = &v->slabs[v->nslabs - 1][v->used_in_slab++];
    o->id = id;
    o->size = size;
    o->lane = lane;
    /* Ids come in order; a hand-made stream's others are put in their place. */
    size_t at = v->nobj;
    while (at > 0 && v->by_id[at - 1]->id > id) {
        v->by_id[at] = v->by_id[at - 1];
        at--;
    }
    v->by_id[at] = o;
    v->nobj++;
    return o;
}

/* ---- room under the limit ------------------------------------------------------------ */

/* Bytes the file's pages hold now (free pages excluded). */
static int look_at_size(mw_value_store *v)
{
    int64_t pages = pragma_number(v, "PRAGMA page_count");
    int64_t free_pages = pragma_number(v, "PRAGMA freelist_count");
    if (pages < 0 || free_pages < 0)
        return db_fail(v, "cannot read the trace's size");
    v->used = (uint64_t)(pages - free_pages) * v->page_size;
    v->since_look = 0;
    return 0;
}

static void count_dropped(mw_value_store *v, const struct mw_value_group *g)
{
    v->dropped_changes += g->changes;
    v->dropped_bytes += g->decoded;
}

/* Deletes the chunks of object obj's group g. */
static int drop_group(mw_value_store *v, uint64_t obj, const struct mw_value_group *g)
{
    sqlite3_stmt *s = v->del_span;
    sqlite3_bind_int64(s, 1, (int64_t)obj);
    sqlite3_bind_int64(s, 2, (int64_t)g->first_seq);
    sqlite3_bind_int64(s, 3, (int64_t)g->last_seq);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(v, "cannot drop old values");
    count_dropped(v, g);
    v->used = v->used > g->stored ? v->used - g->stored : 0;
    return 0;
}

static void reset_group(struct mw_value_object *o)
{
    memset(&o->cur, 0, sizeof o->cur);
    o->has_base = 0;
    o->ncover = 0;
}

/* Drops the oldest values that may go: the first closed group still kept, else the open
 * group that began first (not busy's). 1 when it dropped something, 0 when nothing is
 * left, negative on error. */
static int drop_oldest(mw_value_store *v, const struct mw_value_object *busy)
{
    while (v->fifo_n > 0) {
        struct closed_group *c = &v->fifo[v->fifo_head];
        v->fifo_head++;
        v->fifo_n--;
        v->fifo_base++;
        if (c->dropped)
            continue;
        v->fifo_live--;
        struct mw_value_object *o = mw_value_store_find(v, c->obj);
        if (o && o->prev.fifo == v->fifo_base)   /* last:N's previous group: gone now */
            memset(&o->prev, 0, sizeof o->prev);
        int rc = drop_group(v, c->obj, &c->g);
        return rc < 0 ? rc : 1;
    }
    struct mw_value_object *oldest = NULL;
    for (size_t i = 0; i < v->nobj; i++) {
        struct mw_value_object *o = v->by_id[i];
        if (o != busy && o->cur.first_seq && o->cur.stored &&
            (!oldest || o->cur.first_seq < oldest->cur.first_seq))
            oldest = o;
    }
    if (!oldest)
        return 0;
    int rc = drop_group(v, oldest->id, &oldest->cur);
    reset_group(oldest);   /* its next change opens a new group */
    return rc < 0 ? rc : 1;
}

/* Room for incoming more bytes: 0, 1 when there is none even with every value that may
 * go dropped, negative on error. */
static int ensure_room(mw_value_store *v, uint64_t incoming, const struct mw_value_object *busy)
{
    if (!v->cfg.max_size)
        return 0;
    if (v->commit && v->batch_bytes && v->batch_bytes + incoming > v->batch_share) {
        int rc = v->commit(v->commit_ctx, v->err, sizeof v->err);   /* ends the batch */
        if (rc)
            return rc < 0 ? rc : MW_ETRACE;   /* its message in v->err */
    }
    uint64_t reserve = v->rows * INDEX_BYTES_PER_ROW + MARGIN_BYTES;
    for (;;) {
        int near = v->used + incoming + reserve + RECHECK_BYTES > v->cfg.max_size;
        if (near || v->since_look + incoming > RECHECK_BYTES) {
            int rc = look_at_size(v);
            if (rc)
                return rc;
        }
        if (v->used + incoming + reserve <= v->cfg.max_size) {
            v->used += incoming;
            v->since_look += incoming;
            v->batch_bytes += incoming;
            return 0;
        }
        int rc = drop_oldest(v, busy);
        if (rc <= 0)
            return rc < 0 ? rc : 1;
        v->since_look = RECHECK_BYTES;   /* look again: deleting freed pages */
    }
}

int mw_value_store_room_for_row(mw_value_store *v, uint64_t bytes,
                                const struct mw_value_object *busy)
{
    int rc = ensure_room(v, bytes + INDEX_BYTES_PER_ROW, busy);
    if (rc == 0)
        v->rows++;
    return rc;
}

void mw_value_store_set_committer(mw_value_store *v,
                                  int (*commit)(void *ctx, char *err, size_t size), void *ctx)
{
    v->commit = commit;
    v->commit_ctx = ctx;
}

void mw_value_store_batch_ended(mw_value_store *v)
{
    v->batch_bytes = 0;
}

/* ---- chunks --------------------------------------------------------------------------- */

/* Codes and inserts one piece. 0, 1 when there is no room for it, negative on error. */
static int put_piece(mw_value_store *v, struct mw_value_object *o, uint64_t seq, int role,
                     uint32_t part, const unsigned char *bytes, const unsigned char *ref,
                     size_t n)
{
    size_t len;
    int codec;
    int rc = mw_codec_encode(v->codec, bytes, ref, n, o->lane, MW_CODEC_LEVEL, v->out, &len,
                             &codec);
    if (rc)
        return fail(v, rc, "cannot code a value");
    if ((rc = ensure_room(v, len + 64, o)) != 0)
        return rc;
    sqlite3_stmt *s = v->ins;
    sqlite3_bind_int64(s, 1, (int64_t)o->id);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    sqlite3_bind_int(s, 3, role);
    sqlite3_bind_int64(s, 4, part);
    sqlite3_bind_int(s, 5, codec);
    sqlite3_bind_int(s, 6, (int)o->lane);
    sqlite3_bind_int64(s, 7, (int64_t)n);
    sqlite3_bind_blob64(s, 8, v->out, len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(v, "cannot write a value");
    o->cur.stored += len + 64;
    return 0;
}

static int delete_stream(mw_value_store *v, uint64_t obj, uint64_t seq, int role)
{
    sqlite3_stmt *s = v->del_stream;
    sqlite3_bind_int64(s, 1, (int64_t)obj);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    sqlite3_bind_int(s, 3, role);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : db_fail(v, "cannot drop a value");
}

static void cover_add(struct mw_value_object *o, uint64_t lo, uint64_t hi);

/* A group for obj beginning at seq, unless one is open. */
static void open_group(struct mw_value_object *o, uint64_t seq)
{
    if (!o->cur.first_seq) {
        reset_group(o);
        o->cur.first_seq = o->cur.last_seq = seq;
    }
}

int mw_value_store_base(mw_value_store *v, struct mw_value_object *o, uint64_t seq,
                        uint64_t offset, const unsigned char *bytes, size_t n, int exact)
{
    if (offset % MW_CODEC_PIECE || offset > o->size || n > o->size - offset)
        return fail(v, MW_EFORMAT, "a value of object %" PRIu64 " lies outside it", o->id);
    /* A new base starts a new group: everything after it decodes from it. */
    if (offset == 0) {
        reset_group(o);
        o->cur.first_seq = o->cur.last_seq = seq;
    }
    for (size_t at = 0; at < n || (n == 0 && at == 0); at += MW_CODEC_PIECE) {
        size_t m = n - at < MW_CODEC_PIECE ? n - at : MW_CODEC_PIECE;
        int rc = put_piece(v, o, seq, MW_ROLE_BASE, (uint32_t)((offset + at) / MW_CODEC_PIECE),
                           bytes + at, NULL, m);
        if (rc == 1)   /* no room: without all of it, the base is no use */
            return delete_stream(v, o->id, seq, MW_ROLE_BASE);
        if (rc)
            return rc;
        o->cur.decoded += m;
        if (n == 0)
            break;
    }
    if (offset + n == o->size) {
        o->has_base = 1;
        if (exact)
            cover_add(o, 0, o->size);   /* every byte known: the group covers it all */
    }
    return 0;
}

/* 1 when [lo, hi) is inside the group's cover. */
static int covered(const struct mw_value_object *o, uint64_t lo, uint64_t hi)
{
    for (unsigned i = 0; i < o->ncover; i++)
        if (o->cover[2 * i] <= lo && hi <= o->cover[2 * i + 1])
            return 1;
    return 0;
}

int mw_value_store_needs_old(mw_value_store *v, struct mw_value_object *o, uint64_t seq,
                             const uint64_t *ranges, size_t n)
{
    (void)v;
    open_group(o, seq);
    for (size_t i = 0; i < n; i++)
        if (!covered(o, ranges[2 * i], ranges[2 * i + 1]))
            return 1;
    return 0;
}

/* Adds [lo, hi) to the group's cover (merging what it touches), while there is room. */
static void cover_add(struct mw_value_object *o, uint64_t lo, uint64_t hi)
{
    unsigned i = 0;
    while (i < o->ncover && o->cover[2 * i + 1] < lo)
        i++;
    unsigned j = i;
    while (j < o->ncover && o->cover[2 * j] <= hi) {
        if (o->cover[2 * j] < lo)
            lo = o->cover[2 * j];
        if (o->cover[2 * j + 1] > hi)
            hi = o->cover[2 * j + 1];
        j++;
    }
    /* Pairs i..j-1 become one. */
    if (j == i) {
        if (o->ncover == MW_COVER_MAX)
            return;
        if (o->ncover == o->capcover) {
            unsigned cap = o->capcover ? 2 * o->capcover : 2;
            uint64_t *c = realloc(o->cover, 2 * cap * sizeof *c);
            if (!c)
                return;   /* not covered: later changes store their old bytes */
            o->cover = c;
            o->capcover = cap;
        }
        memmove(&o->cover[2 * i + 2], &o->cover[2 * i], 2 * (o->ncover - i) * sizeof *o->cover);
        o->ncover++;
    } else if (j > i + 1) {
        memmove(&o->cover[2 * i + 2], &o->cover[2 * j], 2 * (o->ncover - j) * sizeof *o->cover);
        o->ncover -= j - i - 1;
    }
    o->cover[2 * i] = lo;
    o->cover[2 * i + 1] = hi;
}

/* Removes the entries marked dropped from the queue of closed groups, renumbering the
 * ones kept (last:N's previous groups know their number). Without it, under last:N and a
 * limit never reached, the queue would grow by an entry per N changes for ever. */
static void compact_fifo(mw_value_store *v)
{
    size_t kept = 0;
    for (size_t i = 0; i < v->fifo_n; i++) {
        struct closed_group *c = &v->fifo[v->fifo_head + i];
        if (c->dropped)
            continue;
        uint64_t was = v->fifo_base + i + 1, now = v->fifo_base + kept + 1;
        struct mw_value_object *o = mw_value_store_find(v, c->obj);
        if (o && o->prev.fifo == was)
            o->prev.fifo = now;
        v->fifo[kept++] = *c;
    }
    v->fifo_head = 0;
    v->fifo_n = kept;
}

/* Puts obj's current group in the queue of closed groups (under a size limit). */
static int queue_group(mw_value_store *v, struct mw_value_object *o)
{
    if (!v->cfg.max_size)
        return 0;
    if (v->fifo_n >= 64 && v->fifo_live < v->fifo_n / 2)
        compact_fifo(v);
    if (v->fifo_head > 0 && v->fifo_head + v->fifo_n == v->fifo_cap) {
        memmove(v->fifo, v->fifo + v->fifo_head, v->fifo_n * sizeof *v->fifo);
        v->fifo_head = 0;
    }
    if (MW_GROW(v->fifo, v->fifo_cap, v->fifo_head + v->fifo_n + 1) != 0)
        return fail(v, -ENOMEM, "out of memory");
    v->fifo[v->fifo_head + v->fifo_n] = (struct closed_group){o->id, o->cur, 0};
    v->fifo_n++;
    v->fifo_live++;
    o->cur.fifo = v->fifo_base + v->fifo_n;
    return 0;
}

/* last:N: the group before the current one goes, the current one becomes it. */
static int rotate_groups(mw_value_store *v, struct mw_value_object *o)
{
    if (o->prev.first_seq) {
        if (o->prev.fifo > v->fifo_base) {
            v->fifo[v->fifo_head + (o->prev.fifo - v->fifo_base - 1)].dropped = 1;
            v->fifo_live--;
        }
        int rc = drop_group(v, o->id, &o->prev);
        if (rc)
            return rc;
    }
    o->prev = o->cur;
    reset_group(o);
    return 0;
}

int mw_value_store_change_done(mw_value_store *v, struct mw_value_object *o, uint64_t seq,
                               const uint64_t *ranges, size_t n, uint64_t decoded)
{
    open_group(o, seq);
    o->cur.last_seq = seq;
    o->cur.changes++;
    o->cur.decoded += decoded;
    for (size_t i = 0; i < n; i++)
        cover_add(o, ranges[2 * i], ranges[2 * i + 1]);
    int rc = 0;
    if (v->cfg.values == MW_VALUES_LAST && o->cur.changes >= v->cfg.last) {
        if ((rc = queue_group(v, o)) == 0)
            rc = rotate_groups(v, o);
    } else if (v->cfg.max_size && o->cur.stored >= v->cfg.max_size / GROUP_SHARE) {
        if ((rc = queue_group(v, o)) == 0)
            reset_group(o);
    }
    return rc;
}

/* ---- streams ---------------------------------------------------------------------------- */

void mw_value_stream_begin(struct mw_value_stream *s, struct mw_value_object *obj,
                           uint64_t seq, int role, int delta)
{
    unsigned char *piece = s->piece, *ref = s->ref;   /* buffers are the caller's */
    memset(s, 0, sizeof *s);
    s->piece = piece;
    s->ref = ref;
    s->obj = obj;
    s->seq = seq;
    s->role = role;
    s->delta = delta;
    s->ref_known = 1;
}

/* Stores the stream's next piece: n bytes, coded against ref (or alone, NULL). */
static int stream_piece(mw_value_store *v, struct mw_value_stream *s, const unsigned char *bytes,
                        const unsigned char *ref, size_t n)
{
    int rc = put_piece(v, s->obj, s->seq, s->role, s->part, bytes, ref, n);
    if (rc == 1) {   /* no room: the stream goes, whole */
        s->failed = 1;
        return delete_stream(v, s->obj->id, s->seq, s->role);
    }
    s->part++;
    return rc;
}

static int flush_piece(mw_value_store *v, struct mw_value_stream *s)
{
    if (s->failed || (s->fill == 0 && s->part > 0))
        return 0;
    int rc = stream_piece(v, s, s->piece, s->delta && s->ref_known ? s->ref : NULL, s->fill);
    s->fill = 0;
    s->ref_known = 1;
    return rc;
}

int mw_value_stream_add(mw_value_store *v, struct mw_value_stream *s, const unsigned char *bytes,
                        const unsigned char *old, size_t n)
{
    while (n > 0 && !s->failed) {
        if (s->fill == 0 && n >= MW_CODEC_PIECE) {
            /* A whole piece in the caller's bytes: coded from there, not copied first. */
            int rc = stream_piece(v, s, bytes, s->delta && old ? old : NULL, MW_CODEC_PIECE);
            if (rc)
                return rc;
            bytes += MW_CODEC_PIECE;
            if (old)
                old += MW_CODEC_PIECE;
            n -= MW_CODEC_PIECE;
            continue;
        }
        size_t m = MW_CODEC_PIECE - s->fill < n ? MW_CODEC_PIECE - s->fill : n;
        memcpy(s->piece + s->fill, bytes, m);
        if (s->delta && old)
            memcpy(s->ref + s->fill, old, m);
        else
            s->ref_known = 0;
        s->fill += m;
        bytes += m;
        if (old)
            old += m;
        n -= m;
        if (s->fill == MW_CODEC_PIECE) {
            int rc = flush_piece(v, s);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int mw_value_stream_end(mw_value_store *v, struct mw_value_stream *s)
{
    if (s->fill == 0 && s->part > 0)
        return 0;
    return flush_piece(v, s);
}

int mw_value_stream_abandon(mw_value_store *v, struct mw_value_stream *s)
{
    s->failed = 1;
    return delete_stream(v, s->obj->id, s->seq, s->role);
}

/* ---- the end ------------------------------------------------------------------------------ */

void mw_value_store_note_dropped(mw_value_store *v, uint64_t bytes)
{
    v->dropped_changes++;
    v->dropped_bytes += bytes;
}

void mw_value_store_dropped(const mw_value_store *v, uint64_t *changes, uint64_t *bytes)
{
    *changes = v->dropped_changes;
    *bytes = v->dropped_bytes;
}

int mw_value_store_finish(mw_value_store *v)
{
    if (!v->dropped_changes)
        return 0;
    /* A change whose new bytes are no longer in chunks had them dropped. */
    if (sqlite3_exec(v->db,
                     "UPDATE change_rows SET kept = 3 WHERE kept = 2 AND NOT EXISTS"
                     " (SELECT 1 FROM chunks AS k WHERE k.object_id = change_rows.object_id"
                     " AND k.seq = change_rows.seq AND k.role = 2)",
                     NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(v, "cannot mark the dropped values");
    return 0;
}
