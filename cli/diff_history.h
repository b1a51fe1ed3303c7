/* memwatch diff's history of a tag (see cmd_diff.c, DESIGN): every change of its objects,
 * loaded in seq order, and each object's state replayed change by change. */
#ifndef MW_CLI_DIFF_HISTORY_H
#define MW_CLI_DIFF_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "reader.h"

/* Byte states in a replay. */
enum { MW_DIFF_UNSEEN = 0, MW_DIFF_KNOWN = 1, MW_DIFF_UNKNOWN = 2 };

struct mw_diff_range {
    uint64_t offset, length;
    unsigned char *old;   /* NULL: unavailable */
    unsigned char *new_;  /* NULL: not kept (--values=summary, dropped) */
};

struct mw_diff_change {
    uint64_t seq, time_ns;
    size_t obj;           /* index into objects */
    char *file, *function, *thread_name, *native_symbol;
    int line;
    int64_t thread_id;
    int64_t pid;
    int kept;             /* enum mw_kept (value_read.h) */
    size_t first, n;      /* its ranges */
};

struct mw_diff_object {
    uint64_t id, size;
    const struct mw_elem_layout *layout;   /* NULL: shown as bytes */
    uint64_t lo, hi;      /* extent of the bytes the history touches */
    unsigned char *val, *state;   /* hi - lo bytes each; NULL when the extent is too large */
};

struct mw_diff_history {
    struct mw_diff_change *ch;
    size_t nch, capch;
    struct mw_diff_range *rg;
    size_t nrg, caprg;
    struct mw_diff_object *obj;
    size_t nobj, capobj;
};

/* Loads the tag's whole history, in seq order: 0, -1 (the reader's message says why) or
 * -2 (out of memory). */
int mw_diff_load(mw_trace_reader *r, const char *tag, struct mw_diff_history *h);
/* Element layouts of the history's typed objects (the others stay NULL: bytes). 0, -1 or
 * -2 as above. */
int mw_diff_find_layouts(mw_trace_reader *r, struct mw_diff_history *h);
void mw_diff_history_free(struct mw_diff_history *h);

/* Sets up each object's replay state: every byte at its value before the history began,
 * where some change's old bytes tell it. */
void mw_diff_replay_init(struct mw_diff_history *h);
/* Moves the replay past change c. */
void mw_diff_replay_apply(struct mw_diff_history *h, const struct mw_diff_change *c);
/* The byte at offset b of the current replay state: 1 and *v when known. */
int mw_diff_state_byte(const struct mw_diff_object *o, uint64_t b, unsigned char *v);

#endif
