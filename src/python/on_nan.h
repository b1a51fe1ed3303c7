/* --on-nan: a NaN or Inf appearing in a watched float array, told to the script once. */
#ifndef MW_ON_NAN_H
#define MW_ON_NAN_H

#include "change.h"

/* Looks at a change just put in the trace; when a NaN or Inf appeared in it, and the script
 * has not been told of an earlier one yet, keeps the message for mw_on_nan_raise_pending.
 * Only records: whoever checks asks mw_on_nan_pending() afterwards. Needs the GIL. */
void mw_on_nan_note(const struct mw_change_info *c);
/* 1 when a message waits to be told to the script. Needs the GIL. */
int mw_on_nan_pending(void);
/* Tells the script what waits, once: raises FloatingPointError (--on-nan=raise, returns -1)
 * or warns with a RuntimeWarning (warn: returns what PyErr_WarnEx does). 0 when nothing
 * waits. Needs the GIL. */
int mw_on_nan_raise_pending(void);

#endif
