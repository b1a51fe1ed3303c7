/* memwatch diff without loading the history first, for traces that know every byte of the
 * tag's objects (--values=full, version 2: each object's value is stored at its first
 * change). Each change is printed as soon as it is decoded, with its context from the
 * object's value as the trace rebuilds it (value_read.h), so the first block of a trace
 * holding gigabytes of values comes at once, and memory is that of the objects, not of
 * their history. Elements are printed as they are decoded, never gathered. Traces that do
 * not know every byte (version 1, --values=summary or last:N, hand-made) are left to the
 * loaded history of diff_history.c, which fills bytes in from later changes. */
#ifndef MW_CLI_DIFF_STREAM_H
#define MW_CLI_DIFF_STREAM_H

#include <stdint.h>

#include "reader.h"

struct mw_diff_options {
    unsigned ctx;                 /* rows of context */
    int color, bytes;             /* --color, --bytes */
    int net;                      /* --from/--to given */
    uint64_t from, to;            /* net: the difference after from up to to */
};

/* The exit status, or MW_DIFF_STREAM_NOT_HERE (nothing printed) when the trace does not
 * know every byte of the tag's first object. */
#define MW_DIFF_STREAM_NOT_HERE (-1000)
int mw_diff_stream(mw_trace_reader *r, const char *path, const char *tag,
                   const struct mw_diff_options *o);

#endif
