/* The trace writer's bulk bytes: the chunks table (schemas/trace.sql, VALUES), the
 * --values policy and --max-trace-size. Runs in `memwatch trace`, off the traced process.
 *
 * DESIGN
 * - Streams, not whole values: a change's bytes arrive in frames of at most 16 MiB and
 *   leave in pieces of MW_CODEC_PIECE bytes, each coded and inserted as soon as it is
 *   full, so the writer holds two pieces per stream whatever the size of the object.
 * - Coded against what a reader will know: a piece of new bytes is coded as its difference
 *   to the old bytes (codec.h), which the reader rebuilds from the object's history. The
 *   writer keeps, per object, the byte ranges that history covers (the group's cover):
 *   ranges earlier changes brought, or the whole object when its base is exact (every
 *   byte what the check saw: record.h). A change with bytes outside the cover stores its
 *   old bytes too (role 1), so a reader never decodes against a byte it may have wrong.
 * - Groups: under --values=last:N and --max-trace-size values are kept in groups of
 *   consecutive changes of one object, each decodable on its own: its first change stores
 *   its old bytes, and later changes are coded against what the group covers. Dropping old
 *   values drops whole groups, oldest first, so what stays always decodes. last:N keeps at
 *   least the last N changes of each object (groups of N: at most 2N - 1); a size limit
 *   closes a group at 1/16 of the limit and drops the groups closed first.
 * - The limit is the file's: SQLite's max_page_count stops the file at the limit whatever
 *   happens, and the writer makes room before it is reached (page_count - freelist_count,
 *   with room kept for the index built at the end of the run). Change rows are never
 *   deleted: when values alone cannot make room, new changes are not recorded, and counted.
 * Memory: two pieces per open stream, and per object a few words (its group and the byte
 * ranges the group covers, at most MW_COVER_MAX of them). */
#ifndef MW_TRACE_VALUE_STORE_H
#define MW_TRACE_VALUE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "run_settings.h"

typedef struct sqlite3 sqlite3;
typedef struct mw_value_store mw_value_store;

/* What the run asked for (cmd_trace: --values, --max-trace-size). */
struct mw_values_config {
    enum mw_values_policy values;
    unsigned last;                /* MW_VALUES_LAST: N */
    uint64_t max_size;            /* bytes; 0: no limit */
};

/* The chunk roles (schemas/trace.sql). */
enum { MW_ROLE_BASE = 0, MW_ROLE_OLD = 1, MW_ROLE_NEW = 2 };

/* Byte ranges of an object a group covers, at most; beyond, changes store their old. */
#define MW_COVER_MAX 256

/* A group of changes of one object (see DESIGN); first_seq 0: none. */
struct mw_value_group {
    uint64_t first_seq, last_seq;
    uint64_t changes;             /* whose values it holds */
    uint64_t stored;              /* bytes of its chunks in the file */
    uint64_t decoded;             /* bytes they decode to */
    uint64_t fifo;                /* its place in the queue of closed groups, + 1 */
};

/* What the writer keeps per object for values: about 150 bytes. Never moves once
 * registered (mw_value_store_object). */
struct mw_value_object {
    uint64_t id;
    uint64_t size;
    unsigned lane;
    int has_base;                 /* its base is in the current group: every byte known */
    struct mw_value_group cur, prev;   /* prev: last:N's group before the current one */
    uint64_t *cover;              /* the current group's [lo, hi) pairs, sorted, apart */
    unsigned ncover, capcover;
};

/* One stream of one change being stored. */
struct mw_value_stream {
    struct mw_value_object *obj;
    uint64_t seq;
    int role;
    int delta;                    /* code pieces against their old bytes where known */
    uint32_t part;
    size_t fill;                  /* bytes in piece (and ref) */
    int ref_known;                /* every byte in ref is known */
    unsigned char *piece, *ref;   /* MW_CODEC_PIECE bytes each */
    int failed;                   /* no room: the stream was abandoned */
};

int mw_value_store_create(sqlite3 *db, const struct mw_values_config *cfg, mw_value_store **out);
void mw_value_store_destroy(mw_value_store *v);
/* Finalizes its statements, so that the connection can close; only destroy may follow. */
void mw_value_store_release_db(mw_value_store *v);
const char *mw_value_store_errmsg(const mw_value_store *v);
const struct mw_values_config *mw_value_store_config(const mw_value_store *v);

/* Registers object id (size bytes, coded by lanes of lane bytes); the object, or NULL when
 * out of memory. Ids come in increasing order; a repeated id gets the same object. */
struct mw_value_object *mw_value_store_object(mw_value_store *v, uint64_t id, uint64_t size,
                                              unsigned lane);
/* The object registered under id, or NULL. */
struct mw_value_object *mw_value_store_find(mw_value_store *v, uint64_t id);

/* Stores the bytes [offset, offset + n) of obj's base (its whole value before change seq);
 * offset is a multiple of MW_CODEC_PIECE. exact: the traced process vouches that every
 * byte is what the check saw (record.h), so later changes may be coded against any of
 * them; else only against bytes changes brought. */
int mw_value_store_base(mw_value_store *v, struct mw_value_object *obj, uint64_t seq,
                        uint64_t offset, const unsigned char *bytes, size_t n, int exact);

/* Whether change seq of obj, with the n ranges [lo, hi) in ranges (pairs), must store its
 * old bytes (role 1) for a reader to decode it. Opens a group when none is open. */
int mw_value_store_needs_old(mw_value_store *v, struct mw_value_object *obj, uint64_t seq,
                             const uint64_t *ranges, size_t n);

/* A stream of change seq: bytes (and, for delta coding, their old bytes; NULL where
 * unknown) in order, then end. Returns 0 even when the stream was abandoned for lack of
 * room (s->failed); negative on a write error. */
void mw_value_stream_begin(struct mw_value_stream *s, struct mw_value_object *obj,
                           uint64_t seq, int role, int delta);
int mw_value_stream_add(mw_value_store *v, struct mw_value_stream *s, const unsigned char *bytes,
                        const unsigned char *old, size_t n);
int mw_value_stream_end(mw_value_store *v, struct mw_value_stream *s);
/* Gives up a stream (its change is not stored after all): deletes its pieces. */
int mw_value_stream_abandon(mw_value_store *v, struct mw_value_stream *s);

/* After change seq of obj was stored: its ranges extend the group's cover, the group may
 * close, and last:N drops the group before. decoded: its bytes (new, and old if stored). */
int mw_value_store_change_done(mw_value_store *v, struct mw_value_object *obj, uint64_t seq,
                               const uint64_t *ranges, size_t n, uint64_t decoded);

/* Makes room for a row of about bytes (under --max-trace-size): 0, 1 when even dropping
 * every value left cannot (the row must not be written), or negative on a write error.
 * busy: an object whose open group must stay (the change being stored), or NULL. */
int mw_value_store_room_for_row(mw_value_store *v, uint64_t bytes,
                                const struct mw_value_object *busy);

/* Under --max-trace-size the -wal file stays within an eighth of the limit: before the
 * writer's open transaction would store more than its share of that room, commit(ctx, err,
 * size) is called to commit it and open the next (0, or a negative status with why in err);
 * batch_ended: the writer committed or rolled back its transaction. */
void mw_value_store_set_committer(mw_value_store *v,
                                  int (*commit)(void *ctx, char *err, size_t size), void *ctx);
void mw_value_store_batch_ended(mw_value_store *v);

/* A change whose values could not be stored at all (no room): counted as dropped. */
void mw_value_store_note_dropped(mw_value_store *v, uint64_t bytes);
/* What was dropped: changes whose values were, and their decoded bytes. */
void mw_value_store_dropped(const mw_value_store *v, uint64_t *changes, uint64_t *bytes);
/* At the end of the run: marks the changes whose values were dropped (kept = 3). */
int mw_value_store_finish(mw_value_store *v);

#endif
