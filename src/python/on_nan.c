/* --on-nan: the first NaN or Inf that appears in a watched float array becomes a
 * FloatingPointError (raise) or a RuntimeWarning (warn) in the script.
 *
 * DESIGN: noting and telling are separate. Routing notes each change as it goes into the
 * trace, in whichever thread checks (the poller too). The message is told only where an
 * exception may enter the script: check_changes(), autocheck's line trace (in the writing
 * thread, at its next line) and autocheck's signal handler (in the main thread, at its next
 * safe point). Nothing here asks for that: autocheck asks mw_on_nan_pending() after each
 * of its checks and after each check made elsewhere (watcher_object.c tells it), and has
 * the main thread run its handler when a message waits; on_nan.c calls nothing back. One
 * message at a time: while one waits, later ones are not recorded, so the script hears of
 * the first. Protected by the GIL. */
#include "on_nan.h"

#include <stdio.h>

#include "config.h"

static char message[1024];   /* fits every part below at its longest */
static int pending;

struct nonfinite_search {
    PyObject *tag;
    char name[200];
    const char *what;
    int found;
};

static int find_nonfinite(const struct mw_elem_change *c, void *ctx)
{
    struct nonfinite_search *s = ctx;
    if (!(c->flags & MW_ELEM_F_NONFINITE_APPEARED))
        return 0;
    const char *tag = PyUnicode_AsUTF8(s->tag);
    mw_elem_format_name(tag ? tag : "?", c->ndim, c->index, c->scalar, s->name, sizeof s->name);
    s->what = (c->flags & MW_ELEM_F_NAN_APPEARED) ? "NaN" : "Inf";
    s->found = 1;
    return 1;   /* the first one is enough */
}

void mw_on_nan_note(const struct mw_change_info *c)
{
    if (mw_run.on_nan == MW_ON_NAN_OFF || pending || !c->layout ||
        !mw_elem_layout_has_float(c->layout))
        return;
    struct nonfinite_search s = {.tag = c->tag};
    mw_elem_diff(c->layout, c->ranges, c->nranges, c->old_value, c->new_value, c->value_size,
                 find_nonfinite, &s);
    if (!s.found)
        return;
    const char *tag = PyUnicode_AsUTF8(c->tag);
    const struct mw_writer *wr = c->writer;
    if (wr->file[0])
        snprintf(message, sizeof message,
                 "%s appeared in watched '%.200s' at %s (change %llu), written by %s:%d in %s",
                 s.what, tag ? tag : "?", s.name, (unsigned long long)c->seq, wr->file, wr->line,
                 wr->function[0] ? wr->function : "?");
    else
        snprintf(message, sizeof message, "%s appeared in watched '%.200s' at %s (change %llu)",
                 s.what, tag ? tag : "?", s.name, (unsigned long long)c->seq);
    pending = 1;
}

int mw_on_nan_pending(void)
{
    return pending;
}

int mw_on_nan_raise_pending(void)
{
    if (!pending)
        return 0;
    pending = 0;
    if (mw_run.on_nan == MW_ON_NAN_RAISE) {
        PyErr_SetString(PyExc_FloatingPointError, message);
        return -1;
    }
    return PyErr_WarnEx(PyExc_RuntimeWarning, message, 1);
}
