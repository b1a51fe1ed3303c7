/* The trace writer's copy of large objects' values (held values), so that a traced
 * process need not send the old bytes of their changes. Runs in `memwatch trace`.
 *
 * DESIGN
 * - Why: the writer codes each change's new bytes against its old bytes (codec.h), which
 *   are the object's value after its previous change. Keeping that value here lets the
 *   traced process send new bytes only: a third less copying on its side and half the
 *   bytes through the socket for a whole-array change (README, Large objects).
 * - Which: the traced process decides (src/python/check.c, held values) and numbers the
 *   changes of each object it counts (record.h: ordinal). A copy starts from an exact base
 *   (MW_REC_VALUE) or from a first change (ordinal 1) whose ranges cover the object, and
 *   each change numbered one more than the copy's count moves it on. Anything else (a
 *   change not numbered, a gap in the numbers, ranges out of order) ends the copy, and a
 *   change that wanted it gets "old bytes unavailable" instead: a lost record can make the
 *   trace say less, never something wrong.
 * - Whose: a copy belongs to the process that started it. Another process's changes of the
 *   same object (a fork child writing its own copy of inherited memory) leave it alone.
 * - Memory: the traced process holds at most MW_HELD_PROCESS_MAX bytes in copies (its
 *   budget), and the writer at most MW_HELD_WRITER_MAX in all; beyond, old bytes travel
 *   with the changes as before. A copy ends with its object's unwatch or its process. */
#ifndef MW_TRACE_HELD_VALUES_H
#define MW_TRACE_HELD_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* Objects smaller than this keep their old bytes in their changes. */
#define MW_HELD_MIN ((uint64_t)4 << 10)
/* What one traced process may have the writer hold, and the writer hold in all. */
#define MW_HELD_PROCESS_MAX ((uint64_t)512 << 20)
#define MW_HELD_WRITER_MAX ((uint64_t)2 << 30)

typedef struct mw_held_values mw_held_values;
struct mw_held;

int mw_held_create(mw_held_values **out);
void mw_held_destroy(mw_held_values *h);   /* accepts NULL */

/* A piece of an object's base (record.h, MW_REC_VALUE) from process pid. */
void mw_held_base(mw_held_values *h, int64_t pid, const struct mw_rec_value *v);

/* A change of object_id (size bytes) begins: the copy it reads and moves on, or NULL. */
struct mw_held *mw_held_begin_change(mw_held_values *h, int64_t pid, uint64_t object_id,
                                     uint64_t size, uint64_t ordinal);
/* The change's ranges as the store should see them: where old_held and the copy is whole,
 * ranges without old bytes get the copy's (in a scratch array of h's). *out is r itself
 * when nothing changed. 0, or -ENOMEM. */
int mw_held_old_bytes(mw_held_values *h, struct mw_held *e, int old_held,
                      const struct mw_rec_range *r, uint32_t n, const struct mw_rec_range **out);
/* After the store has taken them: the ranges' new bytes go into the copy. */
void mw_held_apply(mw_held_values *h, struct mw_held *e, const struct mw_rec_range *r,
                   uint32_t n);
/* The change's last frame is in (complete: all of it came): the copy is now the value
 * after change ordinal, or ends. */
void mw_held_end_change(mw_held_values *h, struct mw_held *e, uint64_t ordinal, int complete);

void mw_held_drop_object(mw_held_values *h, uint64_t object_id);
void mw_held_drop_process(mw_held_values *h, int64_t pid);
void mw_held_drop_all(mw_held_values *h);
/* Bytes held now. */
uint64_t mw_held_bytes(const mw_held_values *h);

#endif
