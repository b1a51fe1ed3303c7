/* The trace writer's changes: what becomes of MW_REC_OBJECT, MW_REC_VALUE, MW_REC_CHANGE
 * and MW_REC_RANGES records, as rows of objects' element layouts, change_rows, sites,
 * ranges, change_stats and (through value_store.c) chunks. writer.c owns the file and the
 * batches; this owns what a change is stored as.
 *
 * DESIGN
 * - A change is stored when its last frame is in (record.h's `more`), as one row of
 *   change_rows when it has one range (most do), with ranges rows only for the others:
 *   one row per small change, inserted many rows a statement (change_rows.h). Where it
 *   was written from is a site (site_store.h) that its row names by id, so the row is a
 *   few numbers and its bytes, not a file name, function and thread name again.
 * - Its bytes go where --values says (schemas/trace.sql, VALUES): in the rows when small
 *   (at most MW_INLINE_MAX bytes) under --values=full without a size limit, in chunks
 *   otherwise, nowhere under --values=summary. Frames are consumed as they come: the
 *   writer never holds a whole large change.
 * - The numeric summary (change_stats) and the NaN/Inf history of typed objects are
 *   computed here, from every change's old and new bytes, whatever the policy: under
 *   --values=summary they are what the trace keeps. */
#ifndef MW_TRACE_CHANGE_STORE_H
#define MW_TRACE_CHANGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "value_store.h"
#include "writer.h"

/* Changes of at most this many bytes keep them in their rows (full policy, no limit). */
#define MW_INLINE_MAX 256
/* Under --values=summary a change keeps at most this many ranges: closer ones are joined
 * (their unchanged bytes between them included). */
#define MW_SUMMARY_RANGES 64

typedef struct mw_change_store mw_change_store;

/* What a record added to the file: for the end-of-run line's counts. */
struct mw_stored {
    uint64_t changes, ranges;
};

int mw_change_store_create(sqlite3 *db, const struct mw_values_config *cfg,
                           mw_change_store **out);
void mw_change_store_destroy(mw_change_store *s);   /* accepts NULL */
/* Finalizes its statements, so that the connection can close; what it counted stays
 * readable (nonfinite, dropped); only destroy may follow. */
void mw_change_store_release_db(mw_change_store *s);
const char *mw_change_store_errmsg(const mw_change_store *s);

/* Each returns 0 or a negative status with the message in mw_change_store_errmsg. */
int mw_change_store_object(mw_change_store *s, const struct mw_rec_object *o);
int mw_change_store_value(mw_change_store *s, const struct mw_rec_value *v);
int mw_change_store_change(mw_change_store *s, const struct mw_rec_change *c,
                           struct mw_stored *done);
int mw_change_store_ranges(mw_change_store *s, const struct mw_rec_ranges *r,
                           struct mw_stored *done);
/* Stores a change whose last frame never came (the traced process died sending it) as far
 * as it came. */
int mw_change_store_flush(mw_change_store *s, struct mw_stored *done);

/* Puts the rows still waiting (change_rows.h) in the file: before every commit. 0 or a
 * negative status with the message in mw_change_store_errmsg. */
int mw_change_store_flush_rows(mw_change_store *s);
/* The writer's transaction was rolled back: what it added is gone, and so are the rows
 * still waiting (site_store.h, change_rows.h). */
void mw_change_store_rolled_back(mw_change_store *s);
/* Under --max-trace-size: how the writer's transaction is committed in the middle of a
 * record, to keep the -wal file small; batch_ended: it was committed or rolled back
 * (value_store.h). */
void mw_change_store_set_committer(mw_change_store *s,
                                   int (*commit)(void *ctx, char *err, size_t size), void *ctx);
void mw_change_store_batch_ended(mw_change_store *s);

/* The object is no longer watched, or the process ended: the writer's copies of their
 * values go (held_values.h). */
void mw_change_store_unwatch(mw_change_store *s, uint64_t object_id);
void mw_change_store_process_end(mw_change_store *s, int64_t pid);

/* The i-th typed object in which a NaN or Inf appeared (see writer.h). */
int mw_change_store_nonfinite(const mw_change_store *s, size_t i, struct mw_trace_nonfinite *out);
/* What --values and --max-trace-size left out: changes whose values were dropped, their
 * bytes, and changes not recorded at all for lack of room. */
void mw_change_store_dropped(const mw_change_store *s, uint64_t *values_changes,
                             uint64_t *values_bytes, uint64_t *not_recorded);
/* At the end of the run: the meta keys of the values (policy, limit, what was dropped). */
int mw_change_store_finish(mw_change_store *s);

#endif
