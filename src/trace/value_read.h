/* Reading a change's bytes back however the trace keeps them (schemas/trace.sql, VALUES):
 * in its rows, in chunks coded against the object's history, or not at all. Used by the
 * trace reader's iterator, memwatch query --sql's functions, diff and report.
 *
 * DESIGN: chunks are coded against the bytes they replace, so decoding a change needs the
 * object's value just before it. The decoder keeps, per object it was asked about, that
 * value as the history rebuilds it (base, then each change's new bytes) with which of its
 * bytes are known, and the seq it stands at. Asked for change S of an object, it first
 * applies that object's changes between where it stands and S (none when changes are read
 * in order, as query and diff read them), or starts over from the object's first change
 * when S is behind it; asked again for the change it decoded last (mw_old, then mw_new, of
 * each of its ranges), it gives that one as decoded. Objects whose changes are all in
 * their rows need no such value.
 * Memory: about 1.2 times the size of each object whose chunks it decoded, plus the bytes
 * of the change being decoded. Nothing here guesses: a byte the history does not tell is
 * unknown, and a range whose old or new bytes are not all known gets NULL for them. */
#ifndef MW_TRACE_VALUE_READ_H
#define MW_TRACE_VALUE_READ_H

#include <stddef.h>
#include <stdint.h>

typedef struct sqlite3 sqlite3;
typedef struct mw_value_reader mw_value_reader;

/* changes.kept, as the decoder reports it (NULL in a trace is MW_KEPT_ROWS). */
enum mw_kept {
    MW_KEPT_NONE = 0,      /* --values=summary: no bytes */
    MW_KEPT_ROWS = 1,      /* in the rows */
    MW_KEPT_CHUNKS = 2,    /* in chunks */
    MW_KEPT_DROPPED = 3,   /* dropped later (--values=last:N, --max-trace-size) */
};

/* "rows", "chunks", "none", "dropped": what the change_ranges view calls them. */
const char *mw_kept_name(int kept);

struct mw_value_range {
    uint64_t offset, length;
    int complete;                   /* the traced process kept its old bytes */
    const unsigned char *old;       /* NULL: not known */
    const unsigned char *new_;      /* NULL: not kept */
};

struct mw_value_change {
    uint64_t seq, object_id;
    int kept;                       /* enum mw_kept */
    size_t n;
    const struct mw_value_range *ranges;   /* in offset order */
};

/* version: the trace's schema version (1 has no chunks). 0 or -ENOMEM. */
int mw_value_reader_create(sqlite3 *db, int version, mw_value_reader **out);
void mw_value_reader_destroy(mw_value_reader *v);   /* accepts NULL */
const char *mw_value_reader_errmsg(const mw_value_reader *v);

/* Change seq with its ranges and bytes: 1 and *out (valid until the next call), 0 when
 * the trace has no such change, negative on error (MW_EFORMAT: damaged values). */
int mw_value_reader_change(mw_value_reader *v, uint64_t seq, struct mw_value_change *out);

/* Like mw_value_reader_change, keeping the object's value as it goes even when its changes
 * would not need it (they are in their rows): for mw_value_reader_state. */
int mw_value_reader_change_with_state(mw_value_reader *v, uint64_t seq,
                                      struct mw_value_change *out);

/* The value of object_id just after the change last decoded for it (valid until the next
 * call): 1 with *bytes, *size, and *known (bit b of known[b / 64] set when byte b is
 * known) and *all_known; 0 when the decoder keeps no value for it. */
int mw_value_reader_state(mw_value_reader *v, uint64_t object_id, const unsigned char **bytes,
                          const uint64_t **known, uint64_t *size, int *all_known);

/* The whole value of change seq's object just after it: 1 with *bytes and *size (valid
 * until the next call) and *known (1 when every byte is known, else the unknown ones are
 * zeros), 0 when there is no such change, negative on error. */
int mw_value_reader_value_after(mw_value_reader *v, uint64_t seq, const unsigned char **bytes,
                                uint64_t *size, int *known);

#endif
