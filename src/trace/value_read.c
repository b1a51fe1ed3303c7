/* Reading a change's bytes back (see value_read.h). */
#include "value_read.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "big_alloc.h"
#include "codec.h"
#include "mw_error.h"
#include "mw_grow.h"

/* An object's value as its history rebuilds it. */
struct ostate {
    uint64_t id, size;
    unsigned char *val;           /* size bytes */
    uint64_t *known;              /* one bit per byte */
    uint64_t at;                  /* the last change applied; 0: none */
};

static void free_state(struct ostate *s);

enum { Q_CHANGE, Q_RANGES, Q_CHUNKS, Q_BETWEEN, Q_SIZE, Q_COUNT };

struct mw_value_reader {
    sqlite3 *db;
    int version;
    mw_codec_ctx *codec;
    sqlite3_stmt *q[Q_COUNT];
    struct ostate *states;
    size_t nstates, capstates;
    /* the change being decoded: its ranges, and its old and new bytes one range after
     * another (the streams of schemas/trace.sql) */
    struct mw_value_change cur;
    uint64_t decoded;             /* cur is change `decoded`, decoded in full; 0: none */
    struct mw_value_range *ranges;
    size_t capranges;
    unsigned char *olds, *news;
    size_t capolds, capnews;
    uint64_t total;               /* bytes of the streams */
    unsigned char *rowbytes;      /* old/new bytes of a change kept in its rows */
    size_t caprowbytes;
    char err[256];
};

static const char *const sql_v2[Q_COUNT] = {
    [Q_CHANGE] = "SELECT object_id, kept, offset, length, old, new, complete FROM changes"
                 " WHERE seq = ?",
    [Q_RANGES] = "SELECT offset, length, old, new, complete FROM ranges WHERE seq = ?"
                 " ORDER BY offset",
    [Q_CHUNKS] = "SELECT role, part, codec, lane, size, data FROM chunks"
                 " WHERE object_id = ? AND seq = ? ORDER BY role, part",
    [Q_BETWEEN] = "SELECT seq FROM changes WHERE object_id = ? AND seq > ? AND seq < ?"
                  " ORDER BY seq",
    [Q_SIZE] = "SELECT size FROM objects WHERE id = ?",
};

/* Version 1: no kept, no range in the change's row, no chunks. */
static const char *const sql_v1[Q_COUNT] = {
    [Q_CHANGE] = "SELECT object_id, NULL, NULL, NULL, NULL, NULL, NULL FROM changes"
                 " WHERE seq = ?",
    [Q_RANGES] = "SELECT offset, length, old, new, complete FROM ranges WHERE seq = ?"
                 " ORDER BY offset",
    [Q_CHUNKS] = "SELECT 0, 0, 0, 0, 0, x'' WHERE 0 AND ? AND ?",
    [Q_BETWEEN] = "SELECT seq FROM changes WHERE object_id = ? AND seq > ? AND seq < ?"
                  " ORDER BY seq",
    [Q_SIZE] = "SELECT size FROM objects WHERE id = ?",
};

static int fail(mw_value_reader *v, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(mw_value_reader *v, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err, sizeof v->err, fmt, ap);
    va_end(ap);
    return status;
}

static int db_fail(mw_value_reader *v)
{
    int code = sqlite3_errcode(v->db);
    return fail(v, code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? MW_EFORMAT : MW_ETRACE,
                "cannot read the trace's values: %s", sqlite3_errmsg(v->db));
}

static int damaged(mw_value_reader *v, uint64_t seq, const char *what)
{
    return fail(v, MW_EFORMAT, "change %" PRIu64 " in the trace is damaged: %s", seq, what);
}

const char *mw_kept_name(int kept)
{
    switch (kept) {
    case MW_KEPT_NONE: return "none";
    case MW_KEPT_CHUNKS: return "chunks";
    case MW_KEPT_DROPPED: return "dropped";
    default: return "rows";
    }
}

const char *mw_value_reader_errmsg(const mw_value_reader *v)
{
    return v && v->err[0] ? v->err : "no error";
}

int mw_value_reader_create(sqlite3 *db, int version, mw_value_reader **out)
{
    *out = NULL;
    mw_value_reader *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->db = db;
    v->version = version;
    int rc = mw_codec_ctx_create(&v->codec);
    const char *const *sql = version >= 2 ? sql_v2 : sql_v1;
    for (int i = 0; rc == 0 && i < Q_COUNT; i++)
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &v->q[i], NULL) !=
            SQLITE_OK)
            rc = db_fail(v);
    if (rc) {
        mw_value_reader_destroy(v);
        return rc;
    }
    *out = v;
    return 0;
}

void mw_value_reader_destroy(mw_value_reader *v)
{
    if (!v)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(v->q[i]);
    for (size_t i = 0; i < v->nstates; i++)
        free_state(&v->states[i]);
    free(v->states);
    free(v->ranges);
    free(v->olds);
    free(v->news);
    free(v->rowbytes);
    mw_codec_ctx_destroy(v->codec);
    free(v);
}

/* ---- known bits ---------------------------------------------------------------------- */

static void set_known(uint64_t *k, uint64_t lo, uint64_t hi, int on)
{
    for (uint64_t b = lo; b < hi;) {
        if (b % 64 == 0 && hi - b >= 64) {
            k[b / 64] = on ? ~(uint64_t)0 : 0;
            b += 64;
        } else {
            if (on)
                k[b / 64] |= (uint64_t)1 << (b % 64);
            else
                k[b / 64] &= ~((uint64_t)1 << (b % 64));
            b++;
        }
    }
}

static int all_known(const uint64_t *k, uint64_t lo, uint64_t hi)
{
    for (uint64_t b = lo; b < hi;) {
        if (b % 64 == 0 && hi - b >= 64) {
            if (k[b / 64] != ~(uint64_t)0)
                return 0;
            b += 64;
        } else {
            if (!(k[b / 64] >> (b % 64) & 1))
                return 0;
            b++;
        }
    }
    return 1;
}

/* ---- object states -------------------------------------------------------------------- */

/* Objects larger than this are refused: beyond any machine's memory, and a bitmap of
 * known bytes that large is already 2 TiB of address space. */
#define READER_MAX_OBJECT ((uint64_t)1 << 44)

static size_t known_bytes(const struct ostate *s)
{
    return (size_t)(s->size / 64 + 1) * sizeof *s->known;
}

static void free_state(struct ostate *s)
{
    mw_big_free(s->val, (size_t)s->size);
    mw_big_free(s->known, known_bytes(s));
}

static struct ostate *find_state(mw_value_reader *v, uint64_t id)
{
    for (size_t i = 0; i < v->nstates; i++)
        if (v->states[i].id == id)
            return &v->states[i];
    return NULL;
}

/* A new state for object id: nothing known yet. NULL with a message. */
static struct ostate *new_state(mw_value_reader *v, uint64_t id)
{
    sqlite3_stmt *q = v->q[Q_SIZE];
    sqlite3_bind_int64(q, 1, (int64_t)id);
    int rc = sqlite3_step(q);
    int64_t size = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        db_fail(v);
        return NULL;
    }
    if (size < 0 || (uint64_t)size > READER_MAX_OBJECT || (uint64_t)size > SIZE_MAX / 2) {
        fail(v, MW_EFORMAT, "the trace's object %" PRIu64 " has no usable size", id);
        return NULL;
    }
    if (MW_GROW(v->states, v->capstates, v->nstates + 1) != 0) {
        fail(v, -ENOMEM, "out of memory");
        return NULL;
    }
    struct ostate *s = &v->states[v->nstates];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->size = (uint64_t)size;
    s->val = mw_big_zalloc((size_t)s->size);
    s->known = mw_big_zalloc(known_bytes(s));
    if (!s->val || !s->known) {
        free_state(s);
        fail(v, -ENOMEM, "out of memory: object %" PRIu64 " has %" PRIu64 " bytes", id, s->size);
        return NULL;
    }
    v->nstates++;
    return s;
}

static void forget(struct ostate *s)
{
    mw_big_clear(s->known, known_bytes(s));
    s->at = 0;
}

/* ---- one change's rows ------------------------------------------------------------------ */

static int grow_bytes(unsigned char **p, size_t *cap, uint64_t need)
{
    if (need > SIZE_MAX / 2)
        return -ENOMEM;
    return MW_GROW(*p, *cap, (size_t)need ? (size_t)need : 1);
}

/* Appends a range read from a row: its bytes (when the row has them) go to rowbytes. */
static int add_row_range(mw_value_reader *v, uint64_t seq, sqlite3_stmt *q, int col,
                         uint64_t *byte_at)
{
    int64_t off = sqlite3_column_int64(q, col), len = sqlite3_column_int64(q, col + 1);
    if (off < 0 || len < 0 || (uint64_t)off + (uint64_t)len < (uint64_t)off)
        return damaged(v, seq, "a range has a negative offset or length");
    if (MW_GROW(v->ranges, v->capranges, v->cur.n + 1) != 0)
        return fail(v, -ENOMEM, "out of memory");
    struct mw_value_range *g = &v->ranges[v->cur.n++];
    memset(g, 0, sizeof *g);
    g->offset = (uint64_t)off;
    g->length = (uint64_t)len;
    g->complete = sqlite3_column_type(q, col + 4) == SQLITE_NULL ? 1
                                                                  : sqlite3_column_int(q, col + 4);
    /* The row's bytes, kept as offsets into rowbytes (its buffer may move). */
    for (int k = 0; k < 2; k++) {
        if (sqlite3_column_type(q, col + 2 + k) == SQLITE_NULL)
            continue;
        const void *b = sqlite3_column_blob(q, col + 2 + k);
        if ((uint64_t)sqlite3_column_bytes(q, col + 2 + k) != g->length)
            return damaged(v, seq, k ? "new bytes do not match its length"
                                      : "old bytes do not match its length");
        if (grow_bytes(&v->rowbytes, &v->caprowbytes, *byte_at + g->length) != 0)
            return fail(v, -ENOMEM, "out of memory");
        if (g->length)
            memcpy(v->rowbytes + *byte_at, b, (size_t)g->length);
        /* 1 + offset, so that 0 stays "none" until the pointers are made */
        if (k)
            g->new_ = (const unsigned char *)(uintptr_t)(*byte_at + 1);
        else
            g->old = (const unsigned char *)(uintptr_t)(*byte_at + 1);
        *byte_at += g->length;
    }
    return 0;
}

/* Reads change seq's row and ranges into v->cur. 1, 0 (no such change), or negative. */
static int load_change(mw_value_reader *v, uint64_t seq)
{
    sqlite3_stmt *q = v->q[Q_CHANGE];
    sqlite3_bind_int64(q, 1, (int64_t)seq);
    int rc = sqlite3_step(q);
    v->decoded = 0;
    v->cur = (struct mw_value_change){.seq = seq};
    uint64_t byte_at = 0;
    if (rc == SQLITE_ROW) {
        v->cur.object_id = (uint64_t)sqlite3_column_int64(q, 0);
        v->cur.kept = sqlite3_column_type(q, 1) == SQLITE_NULL ? MW_KEPT_ROWS
                                                                : sqlite3_column_int(q, 1);
        if (v->cur.kept < MW_KEPT_NONE || v->cur.kept > MW_KEPT_DROPPED)
            rc = damaged(v, seq, "it says its bytes are kept in an unknown way");
        else if (sqlite3_column_type(q, 2) != SQLITE_NULL)
            rc = add_row_range(v, seq, q, 2, &byte_at);
        else
            rc = SQLITE_DONE + 1000;   /* its ranges are in `ranges` */
    } else if (rc != SQLITE_DONE) {
        rc = db_fail(v);
    }
    sqlite3_reset(q);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc < 0)
        return rc;
    if (rc == SQLITE_DONE + 1000) {
        q = v->q[Q_RANGES];
        sqlite3_bind_int64(q, 1, (int64_t)seq);
        while ((rc = sqlite3_step(q)) == SQLITE_ROW && (rc = add_row_range(v, seq, q, 0, &byte_at)) == 0)
            rc = SQLITE_ROW;
        if (rc != SQLITE_DONE && rc >= 0)
            rc = db_fail(v);
        sqlite3_reset(q);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < v->cur.n; i++) {
        struct mw_value_range *g = &v->ranges[i];
        if (g->old)
            g->old = v->rowbytes + ((uintptr_t)g->old - 1);
        if (g->new_)
            g->new_ = v->rowbytes + ((uintptr_t)g->new_ - 1);
        if (i && g->offset < v->ranges[i - 1].offset + v->ranges[i - 1].length)
            return damaged(v, seq, "its ranges overlap");
    }
    v->cur.ranges = v->ranges;
    return 1;
}

/* ---- chunks --------------------------------------------------------------------------------- */

/* Where the stream bytes of range i start, and the streams' total (into v->total). */
static int stream_room(mw_value_reader *v)
{
    uint64_t total = 0;
    for (size_t i = 0; i < v->cur.n; i++)
        total += v->ranges[i].length;
    v->total = total;
    if (grow_bytes(&v->olds, &v->capolds, total) != 0 || grow_bytes(&v->news, &v->capnews, total))
        return fail(v, -ENOMEM, "out of memory: change %" PRIu64 " has %" PRIu64 " bytes",
                    v->cur.seq, total);
    return 0;
}

/* 1 when every range overlapping stream bytes [lo, hi) has its old bytes known. */
static int ref_known(const mw_value_reader *v, const unsigned char *old_ok, uint64_t lo,
                     uint64_t hi)
{
    uint64_t at = 0;
    for (size_t i = 0; i < v->cur.n && at < hi; i++) {
        uint64_t b = at + v->ranges[i].length;
        if (b > lo && !old_ok[i])
            return 0;
        at = b;
    }
    return 1;
}

/* What decoding one change found in its chunks. */
struct decoding {
    struct ostate *st;            /* NULL: the change needs no state (kept in its rows) */
    unsigned char *old_ok;        /* per range: its old bytes are known */
    uint64_t old_filled, new_filled;
    int settled;                  /* the old bytes are settled (settle_old) */
};

/* The change's old bytes, range by range: from its old stream where that is whole and the
 * range's were available, else from the state; into olds, and into the state. */
static void settle_old(mw_value_reader *v, struct decoding *d)
{
    int has_old = d->old_filled == v->total && v->total > 0;
    uint64_t at = 0;
    for (size_t i = 0; i < v->cur.n; i++) {
        const struct mw_value_range *g = &v->ranges[i];
        struct ostate *st = d->st;
        if (has_old && g->complete && st) {
            memcpy(st->val + g->offset, v->olds + at, (size_t)g->length);
            set_known(st->known, g->offset, g->offset + g->length, 1);
        }
        d->old_ok[i] = (has_old && g->complete) ||
                       (st && all_known(st->known, g->offset, g->offset + g->length));
        if (d->old_ok[i] && st)
            memcpy(v->olds + at, st->val + g->offset, (size_t)g->length);
        at += g->length;
    }
    d->settled = 1;
}

/* One chunk row of the change: a piece of the object's base (into the state), of its old
 * stream (into olds) or of its new stream (into news, coded against olds). */
static int decode_piece(mw_value_reader *v, struct decoding *d, sqlite3_stmt *q)
{
    int role = sqlite3_column_int(q, 0);
    int64_t part = sqlite3_column_int64(q, 1), size = sqlite3_column_int64(q, 4);
    int codec = sqlite3_column_int(q, 2), lane = sqlite3_column_int(q, 3);
    const unsigned char *data = sqlite3_column_blob(q, 5);
    size_t len = (size_t)sqlite3_column_bytes(q, 5);
    if (role == 0 && !d->st)
        return 0;
    uint64_t limit = role == 0 ? d->st->size : v->total;
    if (part < 0 || size < 0 || (uint64_t)size > MW_CODEC_PIECE || role < 0 || role > 2 ||
        (uint64_t)part > limit / MW_CODEC_PIECE ||
        (uint64_t)size > limit - (uint64_t)part * MW_CODEC_PIECE)
        return damaged(v, v->cur.seq, "a chunk lies outside its stream");
    uint64_t at = (uint64_t)part * MW_CODEC_PIECE, end = at + (uint64_t)size;
    int rc;
    if (role == 0) {
        rc = mw_codec_decode(v->codec, codec, (unsigned)lane, data, len, NULL, d->st->val + at,
                             (size_t)size);
        if (rc == 0)
            set_known(d->st->known, at, end, 1);
        return rc ? damaged(v, v->cur.seq, "its object's value does not decode") : 0;
    }
    if (role == 1) {
        rc = mw_codec_decode(v->codec, codec, (unsigned)lane, data, len, NULL, v->olds + at,
                             (size_t)size);
        d->old_filled += rc == 0 ? (uint64_t)size : 0;
        return rc ? damaged(v, v->cur.seq, "its old bytes do not decode") : 0;
    }
    if (!d->settled)
        settle_old(v, d);
    if (codec == MW_CODEC_DELTA && !ref_known(v, d->old_ok, at, end))
        return 0;   /* coded against old bytes nobody knows: these new ones are unknown */
    rc = mw_codec_decode(v->codec, codec, (unsigned)lane, data, len, v->olds + at, v->news + at,
                         (size_t)size);
    d->new_filled += rc == 0 ? (uint64_t)size : 0;
    return rc ? damaged(v, v->cur.seq, "its new bytes do not decode") : 0;
}

/* The change's chunk rows (base, old stream, new stream), in that order. */
static int read_chunks(mw_value_reader *v, struct decoding *d)
{
    sqlite3_stmt *q = v->q[Q_CHUNKS];
    sqlite3_bind_int64(q, 1, (int64_t)v->cur.object_id);
    sqlite3_bind_int64(q, 2, (int64_t)v->cur.seq);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if ((rc = decode_piece(v, d, q)) != 0)
            break;
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = db_fail(v);
    sqlite3_reset(q);
    return rc;
}

/* Decodes v->cur, loaded, against st (NULL: no state kept for its object) and moves st
 * past it: each range's old and new bytes where known. */
static int apply_change(mw_value_reader *v, struct ostate *st)
{
    int rc = stream_room(v);
    if (rc)
        return rc;
    unsigned char *old_ok = calloc(v->cur.n ? v->cur.n : 1, 1);
    if (!old_ok)
        return fail(v, -ENOMEM, "out of memory");
    struct decoding d = {.st = st, .old_ok = old_ok};
    int kept = v->cur.kept;
    /* Chunks: always for a change kept in them; for others only the base a state needs
     * (the first change of an object under --values=full has it whatever its size). */
    if (kept == MW_KEPT_CHUNKS || (st && v->version >= 2))
        rc = read_chunks(v, &d);
    if (rc == 0 && !d.settled)
        settle_old(v, &d);
    if (rc == 0 && kept == MW_KEPT_CHUNKS && d.new_filled != v->total)
        v->cur.kept = MW_KEPT_DROPPED;   /* its new bytes went (the run did not end) */
    uint64_t at = 0;
    for (size_t i = 0; rc == 0 && i < v->cur.n; i++) {
        struct mw_value_range *g = &v->ranges[i];
        int from_rows = kept == MW_KEPT_ROWS;
        if (!from_rows || !g->old)
            g->old = old_ok[i] ? v->olds + at : NULL;
        if (!from_rows)
            g->new_ = v->cur.kept == MW_KEPT_CHUNKS ? v->news + at : NULL;
        if (st) {
            if (g->new_)
                memcpy(st->val + g->offset, g->new_, (size_t)g->length);
            set_known(st->known, g->offset, g->offset + g->length, g->new_ != NULL);
        }
        at += g->length;
    }
    if (st && rc == 0)
        st->at = v->cur.seq;
    free(old_ok);
    return rc;
}

/* ---- catching up ----------------------------------------------------------------------------- */

/* The ranges must lie inside the object (a hand-made trace may claim otherwise). */
static int inside(mw_value_reader *v, const struct ostate *st)
{
    for (size_t i = 0; i < v->cur.n; i++)
        if (v->ranges[i].offset > st->size || v->ranges[i].length > st->size - v->ranges[i].offset)
            return damaged(v, v->cur.seq, "a range lies outside its object");
    return 0;
}

/* Moves st to just before change seq: its changes after where it stands, in order (from
 * its first one when it stands past seq). Returns how many it applied (v->cur is then
 * another change's), or negative. */
static int catch_up(mw_value_reader *v, struct ostate *st, uint64_t seq)
{
    int restarted = st->at >= seq;
    if (restarted)
        forget(st);
    sqlite3_stmt *q = v->q[Q_BETWEEN];
    uint64_t *todo = NULL;
    size_t n = 0, cap = 0;
    int rc;
    sqlite3_bind_int64(q, 1, (int64_t)st->id);
    sqlite3_bind_int64(q, 2, (int64_t)st->at);
    sqlite3_bind_int64(q, 3, seq > INT64_MAX ? INT64_MAX : (int64_t)seq);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (MW_GROW(todo, cap, n + 1) != 0) {
            rc = fail(v, -ENOMEM, "out of memory");
            break;
        }
        todo[n++] = (uint64_t)sqlite3_column_int64(q, 0);
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = db_fail(v);
    sqlite3_reset(q);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = load_change(v, todo[i]);
        if (rc == 1 && (rc = inside(v, st)) == 0)
            rc = apply_change(v, st);
    }
    free(todo);
    if (rc < 0)
        return rc;
    return n > INT32_MAX ? INT32_MAX : (int)n + restarted;
}

/* Loads change seq and decodes it, with a state for its object when it needs one (or
 * want_state). 1, 0 (no such change) or negative; *stp gets the state or NULL. */
static int decode(mw_value_reader *v, uint64_t seq, int want_state, struct ostate **stp)
{
    *stp = NULL;
    /* The change decoded last, asked for again (mw_old then mw_new of one range, each range
     * of a change in turn): its state stands just after it, and starting the object's
     * history over to decode it again would make a statement's work grow with the square
     * of the changes. */
    if (seq != 0 && v->decoded == seq) {
        struct ostate *st = find_state(v, v->cur.object_id);
        if (!want_state || (st && st->at == seq)) {
            *stp = st;
            return 1;
        }
    }
    int rc = load_change(v, seq);
    if (rc <= 0)
        return rc;
    struct ostate *st = find_state(v, v->cur.object_id);
    if (!st && (want_state || v->cur.kept == MW_KEPT_CHUNKS)) {
        if (!(st = new_state(v, v->cur.object_id)))
            return v->err[0] ? MW_ETRACE : -ENOMEM;
    }
    if (st) {
        if ((rc = inside(v, st)) != 0)
            return rc;
        /* None to apply when changes are read in order: one look at the index. */
        if ((rc = catch_up(v, st, seq)) < 0)
            return rc;
        if (rc > 0 && (rc = load_change(v, seq)) <= 0)
            return rc;
    }
    if ((rc = apply_change(v, st)) != 0)
        return rc;
    v->decoded = seq;
    *stp = st;
    return 1;
}

int mw_value_reader_change(mw_value_reader *v, uint64_t seq, struct mw_value_change *out)
{
    struct ostate *st;
    int rc = decode(v, seq, 0, &st);
    if (rc == 1)
        *out = v->cur;
    return rc;
}

int mw_value_reader_change_with_state(mw_value_reader *v, uint64_t seq,
                                      struct mw_value_change *out)
{
    struct ostate *st;
    int rc = decode(v, seq, 1, &st);
    if (rc == 1)
        *out = v->cur;
    return rc;
}

int mw_value_reader_state(mw_value_reader *v, uint64_t object_id, const unsigned char **bytes,
                          const uint64_t **known, uint64_t *size, int *all)
{
    struct ostate *st = find_state(v, object_id);
    if (!st)
        return 0;
    *bytes = st->val;
    *known = st->known;
    *size = st->size;
    *all = all_known(st->known, 0, st->size);
    return 1;
}

int mw_value_reader_value_after(mw_value_reader *v, uint64_t seq, const unsigned char **bytes,
                                uint64_t *size, int *known)
{
    struct ostate *st;
    int rc = decode(v, seq, 1, &st);
    if (rc != 1)
        return rc;
    *bytes = st->val;
    *size = st->size;
    *known = all_known(st->known, 0, st->size);
    return 1;
}
