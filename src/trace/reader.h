/* Reading a trace file (schemas/trace.sql): open and validate it, list its tags, iterate
 * its changed ranges with filters. Used by `memwatch query` and `memwatch diff`.
 *
 * The file is opened read-only (SQLITE_OPEN_READONLY): nothing here can change a trace.
 * A trace may be hostile: the reader opens regular files only, checks the schema before it
 * reads, and bounds the work and memory of everything run on the file (reader_guard.h). */
#ifndef MW_TRACE_READER_H
#define MW_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_trace_reader mw_trace_reader;
typedef struct sqlite3 sqlite3;
typedef struct mw_value_reader mw_value_reader;
struct mw_elem_layout;

/* Opens and validates path. Statuses, each with its own message on the handle:
 *   -ENOENT (or another -errno)  the file cannot be opened
 *   -EISDIR, -EINVAL             a directory; not a regular file (a FIFO, a device), or a
 *                                -wal, -shm or -journal next to it that is not one
 *   MW_EFORMAT                   not an SQLite database
 *   MW_ETRACE                    an SQLite database, but not a memwatch trace, or one
 *                                whose schema is not memwatch's (reader_schema.h)
 *   MW_ESCHEMA                   a trace from a newer memwatch (see found_version)
 * On failure *out is still set when a handle exists, for mw_trace_reader_errmsg; close it.
 * found_version may be NULL; it receives the file's schema version when one was read. */
int mw_trace_reader_open(const char *path, mw_trace_reader **out, int *found_version);
void mw_trace_reader_close(mw_trace_reader *r);
/* 1 when path is a memwatch trace the reader opens (a newer version's too), else 0: what
 * `memwatch trace -f` may replace (outfile.h). The same guards as mw_trace_reader_open,
 * without the process-wide heap limit (the caller is a writer). */
int mw_trace_file_is_trace(const char *path);
const char *mw_trace_reader_errmsg(const mw_trace_reader *r);
/* The read-only connection, for statements of the user's own (query --sql) and the
 * report's. It keeps the reader's guards (reader_guard.h): bounded work and memory. */
sqlite3 *mw_trace_reader_db(mw_trace_reader *r);
/* The table of the changes' own columns (seq, time_ns, object_id, nranges, changed_bytes,
 * kept, offset, length, old, new, complete) in the trace open on db: change_rows from
 * version 3 on, changes before. A statement that needs none of a change's site (who
 * wrote it) reads this instead of the view changes, which joins every row to its site:
 * counting a million changes through the view takes ten times longer. */
const char *mw_trace_change_table(sqlite3 *db);
/* After a statement on that connection failed: why, in words, when one of the guards
 * stopped or refused it; else NULL (SQLite's own message says why). */
const char *mw_trace_reader_guard_reason(mw_trace_reader *r);
/* 1 when the last refusal of the guards was of a statement that would change the database
 * (INSERT, CREATE, ...), 0 for anything else (ATTACH, an unsafe function or PRAGMA). */
int mw_trace_reader_refused_write(const mw_trace_reader *r);
/* The decoder of the trace's values (value_read.h), made on first use; NULL with the
 * message on the reader when it cannot be. */
mw_value_reader *mw_trace_reader_values(mw_trace_reader *r);

/* Counts of the whole trace. */
int mw_trace_reader_counts(mw_trace_reader *r, uint64_t *objects, uint64_t *changes);
/* The distinct tags in watch order, as a NULL-terminated array the caller frees with
 * mw_trace_reader_free_tags. */
int mw_trace_reader_tags(mw_trace_reader *r, char ***tags_out, size_t *n_out);
void mw_trace_reader_free_tags(char **tags);
/* 1 when some object has this tag, 0 when none, negative on error. */
int mw_trace_reader_has_tag(mw_trace_reader *r, const char *tag);

/* Which ranges to visit. Bounds are inclusive; a zero-initialized filter selects all. */
struct mw_trace_filter {
    const char *tag;          /* NULL: every tag */
    int has_since, has_until;
    uint64_t since, until;    /* seq bounds */
    uint64_t limit;           /* 0: no limit (counts ranges) */
    int64_t pid;              /* 0: every process */
};

/* One changed range with its change and object. Pointers stay valid until the next call
 * on the iterator. */
struct mw_trace_row {
    uint64_t seq;
    uint64_t time_ns;
    const char *tag;
    uint64_t object_id;
    uint64_t object_size;
    uint64_t offset, length;
    const unsigned char *old;   /* NULL: unavailable or not kept */
    const unsigned char *new_;  /* NULL: not kept (kept says why) */
    int complete;               /* the traced process kept the old bytes */
    int kept;                   /* enum mw_kept (value_read.h): where the bytes were */
    const char *file;           /* NULL: unknown */
    int line;                   /* 0: unknown */
    const char *function;       /* NULL: unknown */
    int64_t thread_id;          /* 0: unknown */
    const char *thread_name;    /* NULL: unknown */
    const char *native_symbol;  /* NULL: unknown */
    int64_t pid;                /* the writing process; 0: unknown */
};

/* 1 when the trace's changes name their process (changes.pid), else 0. */
int mw_trace_reader_has_pid(mw_trace_reader *r);

typedef struct mw_trace_iter mw_trace_iter;
/* Rows in (seq, offset) order, with their bytes however the trace keeps them. */
int mw_trace_iter_start(mw_trace_reader *r, const struct mw_trace_filter *f, mw_trace_iter **out);
/* 1 and fills *row, 0 at the end, negative on error (message on the reader). */
int mw_trace_iter_next(mw_trace_iter *it, struct mw_trace_row *row);
void mw_trace_iter_finish(mw_trace_iter *it);

/* One tag's totals (query --summary), over the changes the filter selects (limit ignored). */
struct mw_trace_tag_summary {
    const char *tag;
    uint64_t objects;
    uint64_t changes;
    uint64_t ranges;
    uint64_t bytes;
    int has_changes;            /* 0: first_seq/last_seq are meaningless */
    uint64_t first_seq, last_seq;
    /* Numeric summary of the changes of typed objects (table change_stats); has_numbers
     * is 0 when the tag has none (bytes, or a trace without the table). */
    int has_numbers;
    uint64_t elements, unknown, deltas;
    double delta_min, delta_max, delta_mean;    /* meaningful when deltas > 0 */
    uint64_t nan_appeared, nan_gone, inf_appeared, inf_gone;
    int has_first_nonfinite;
    uint64_t first_nonfinite_seq;               /* the first change where NaN/Inf appeared */
};
typedef int (*mw_trace_summary_fn)(const struct mw_trace_tag_summary *s, void *ctx);
/* Calls fn for each tag in watch order; stops and returns fn's value when it is not 0. */
int mw_trace_reader_summary(mw_trace_reader *r, const struct mw_trace_filter *f,
                            mw_trace_summary_fn fn, void *ctx);

/* What a change keeps of itself besides its ranges' bytes: how many bytes differ, and for
 * a typed object its numeric summary (change_stats): what readers show where the bytes
 * were not kept. */
struct mw_trace_change_summary {
    int has_changed_bytes;
    uint64_t changed_bytes;
    int has_stats;
    uint64_t elements, unknown, deltas;
    double delta_min, delta_max, delta_mean;    /* meaningful when deltas > 0 */
    uint64_t nan_appeared, nan_gone, inf_appeared, inf_gone;
};
/* 0 and *out (zeros where the trace has nothing), or negative with the message. */
int mw_trace_reader_change_summary(mw_trace_reader *r, uint64_t seq,
                                   struct mw_trace_change_summary *out);

/* The objects table's shape and strides text, "[3, 4]": up to max integers into v; the
 * count, or -1 when text is NULL or not such an array. */
int mw_trace_reader_parse_dims(const char *text, int64_t *v, int max);

/* The element layout of an object (elements.h), read from its objects row and kept by the
 * reader: 0 and *out, valid until the reader is closed. An object of plain bytes, without
 * a format, or with a format this cannot read gets a layout of bytes (format 'B'); *typed
 * says whether it has an element type (mw_elem_layout_typed). */
int mw_trace_reader_layout(mw_trace_reader *r, uint64_t object_id,
                           const struct mw_elem_layout **out, int *typed);

#endif
