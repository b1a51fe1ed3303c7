/* Which objects' values the trace writer holds a copy of, so that their changes go to it
 * without their old bytes (src/trace/held_values.h has the writer's side and the DESIGN).
 *
 * The traced process decides at an object's first change: a contiguous object of its own
 * (not inherited through fork, not memory shared with other processes, whose other
 * writers the writer's copy would miss), of at least MW_HELD_MIN bytes, without --on-nan
 * (which compares each change with its old bytes here), under any --values policy (the
 * writer's summaries need the old bytes as much as its coded values do),
 * while the process's copies stay within MW_HELD_PROCESS_MAX. Its changes are numbered from
 * then on; from the second, whose old bytes the writer has, the large ones (harvest.c)
 * go without them. A change
 * that is not sent (memory ran out) ends the object's copy: its next changes carry their
 * old bytes again, unnumbered. All calls hold the GIL (checks run one at a time). */
#ifndef MW_PYTHON_HELD_H
#define MW_PYTHON_HELD_H

#include <stdint.h>

struct mw_watched;

/* The number of this change of w among those sent (0: not counted), deciding at its first. */
uint64_t mw_held_count_change(struct mw_watched *w);
/* After the change numbered ordinal was sent (sent: it reached the channel): whether the
 * writer now holds w's value. established: the first change gave the writer every byte
 * (an exact base before it, or ranges covering the object). */
void mw_held_sent(struct mw_watched *w, uint64_t ordinal, int sent, int established);
/* Whether w's changes may go without their old bytes. */
int mw_held_by_writer(const struct mw_watched *w);
/* w's change was lost, or w is no longer watched here: the copy ends. */
void mw_held_end(struct mw_watched *w);
/* In a fork child (pthread_atfork: async-signal-safe): nothing of its own is held yet. */
void mw_held_after_fork(void);

#endif
