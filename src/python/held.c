/* Which objects' values the trace writer holds (see held.h). */
#include "held.h"

#include "channel_link.h"
#include "config.h"
#include "held_values.h"
#include "memory_map.h"
#include "registry.h"

/* Bytes of this process's objects the writer holds (or is about to). */
static uint64_t held_bytes;

/* Whether the bytes [start, start + len) lie in memory of this process's own: with its
 * other writers in other processes, the writer's copy would miss their writes. */
static int private_memory(uintptr_t start, size_t len)
{
    struct mw_vma_identity first, last;
    return mw_vma_identify(start, &first) == 0 && !first.shared &&
           mw_vma_identify(start + len - 1, &last) == 0 && !last.shared;
}

static int may_hold(const struct mw_watched *w)
{
    size_t span = w->buf.span;
        return mw_run.traced && mw_run.on_nan == MW_ON_NAN_OFF &&
           w->buf.contiguous && !w->borrowed && w->shared_slot < 0 && span >= MW_HELD_MIN &&
           span <= MW_HELD_PROCESS_MAX - held_bytes &&
           private_memory((uintptr_t)w->buf.start, span);
}

/* Whether the writer may still hold w's value: it forgets a process's copies when its
 * connection closes, which a process that connects again (the script closed its socket)
 * survives. */
static int same_connection(const struct mw_watched *w)
{
    return w->hold_connection == mw_link_resumes();
}

uint64_t mw_held_count_change(struct mw_watched *w)
{
    if (w->hold == MW_HOLD_UNDECIDED) {
        w->hold = may_hold(w) ? MW_HOLD_COUNTED : MW_HOLD_NEVER;
        w->hold_connection = mw_link_resumes();
        if (w->hold == MW_HOLD_COUNTED)
            held_bytes += w->buf.span;
    } else if (w->hold != MW_HOLD_NEVER && !same_connection(w)) {
        mw_held_end(w);
    }
    return w->hold == MW_HOLD_NEVER ? 0 : ++w->ordinal;
}

void mw_held_sent(struct mw_watched *w, uint64_t ordinal, int sent, int established)
{
    if (ordinal == 0)
        return;
    if (!sent || (ordinal == 1 && !established))
        mw_held_end(w);
    else
        w->hold = MW_HOLD_HELD;
}

int mw_held_by_writer(const struct mw_watched *w)
{
    return w->hold == MW_HOLD_HELD && same_connection(w);
}

void mw_held_after_fork(void)
{
    held_bytes = 0;   /* the parent's copies are not the child's */
}

void mw_held_end(struct mw_watched *w)
{
    if (w->hold == MW_HOLD_COUNTED || w->hold == MW_HOLD_HELD)
        held_bytes -= w->buf.span;
    w->hold = MW_HOLD_NEVER;
}
