/* The objects a MemoryWatcher watches: one struct mw_watched each, found by tag, announced
 * to the trace when watched and when let go. Needs the GIL. */
#ifndef MW_REGISTRY_H
#define MW_REGISTRY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "buffers.h"
#include "elements.h"
#include "watcher.h"

struct mw_watched;

/* One watcher as the registry and routing (check.c) see it; a MemoryWatcher embeds it
 * (watcher_object.c). Its entries, and what decides what becomes of their changes.
 * Protected by the GIL. */
struct mw_owner {
    mw_watcher *core;            /* the engine's watcher; NULL once closed */
    PyObject *by_tag;            /* dict: tag -> int (address of its struct mw_watched) */
    struct mw_watched *watched;  /* list of live entries */
    size_t shadow_bytes;         /* memory held by the shadows of its objects */
    size_t moved_bytes;          /* pages its moved objects take beyond their size */
    PyObject *callback;          /* None or a callable */
    int capture_full_values;
    PyObject *pending;           /* list of Change objects waiting for the callback */
    Py_ssize_t found;            /* changes found since the last check_changes() */
};

/* The owner has a callback, so its changes become Change objects. */
static inline int mw_owner_has_callback(const struct mw_owner *o)
{
    return o->callback && o->callback != Py_None;
}

/* One watched object. Reference-counted, because a check in progress may still hold it
 * while the script unwatches it (from a callback or a finalizer). Protected by the GIL. */
struct mw_watched {
    struct mw_owner *owner;  /* borrowed: set to NULL when the owner lets go */
    PyObject *tag;           /* str */
    uint64_t region_id;
    uint64_t object_id;      /* the object's id in the trace */
    struct mw_buffer buf;
    /* The span's bytes as of the last check, kept when the value must be exact (a callback
     * that receives full values, or a strided view whose changes are re-derived in its own
     * coordinates): values are then built from what the checks saw, never from memory that
     * other threads may be writing at that moment. NULL when not kept. */
    unsigned char *shadow;
    mw_elem_layout *layout;  /* element layout of a typed object, else NULL */
    int refs;
    int live;                /* still registered with the engine */
    /* The object is another process's: inherited through fork, or memory shared with the
     * process that watches it (shared_watch.c). Its end here is not its end in the trace. */
    int borrowed;
    int shared_slot;         /* its entry in the run's shared-watch table, or -1 */
    uint64_t shared_stamp;   /* that entry's stamp when it was published or adopted */
    /* Whether the trace writer holds its value (held.h), and its changes sent, numbered. */
    enum mw_hold { MW_HOLD_UNDECIDED, MW_HOLD_NEVER, MW_HOLD_COUNTED, MW_HOLD_HELD } hold;
    uint64_t ordinal;
    unsigned hold_connection;   /* the connection (mw_link_resumes) the writer holds it on */
    struct mw_watched *next; /* in the owner's list */
};

/* Watches buf under tag for o: registers it with the engine, keeps a shadow if needed,
 * and sends the object's record to the trace. Consumes buf on every path. 0, or -1 with an
 * exception whose message says what to do (a name in use, an empty object, ...). */
int mw_registry_add(struct mw_owner *o, PyObject *tag, struct mw_buffer *buf);
/* Whether tag can be a name: a str the trace can store exactly (no lone surrogate, no
 * NUL). 0, or -1 with TypeError or ValueError naming the problem. */
int mw_registry_check_name(PyObject *tag);
/* The entry watched under tag, or NULL (with an exception only if the lookup failed). */
struct mw_watched *mw_registry_find(struct mw_owner *o, PyObject *tag);
/* Takes w out of o's list and tells the trace it is no longer watched; drops the list's
 * reference. The caller has unregistered it from the engine and removed its tag. */
void mw_registry_detach(struct mw_owner *o, struct mw_watched *w);
/* Watches buf under tag for o as the trace's object object_id, which another process
 * announced (shared memory it watches, mapped here too): registered with the engine, not
 * announced again. Consumes buf. 0, or -1 with an exception. */
int mw_registry_adopt(struct mw_owner *o, PyObject *tag, struct mw_buffer *buf,
                      uint64_t object_id);
/* In a fork child: lets w go (its buffer released, its tag free) without telling the trace,
 * where the parent still watches it. */
void mw_registry_drop_in_child(struct mw_owner *o, struct mw_watched *w);
/* In a fork child: registers w again with o's (new) engine watcher; the trace knows it
 * already (the parent's object). 0 or a negative status. */
int mw_registry_rewatch_in_child(struct mw_owner *o, struct mw_watched *w);
/* Starts keeping w's shadow if o now needs exact values (see struct mw_watched), charged
 * to o's memory limit. 0, or -1 with MemoryLimitError or MemoryError. */
int mw_registry_keep_shadow(struct mw_owner *o, struct mw_watched *w);
void mw_registry_hold(struct mw_watched *w);
/* Drops a reference; the last one releases the buffer (the object is unpinned). */
void mw_registry_release(struct mw_watched *w);
/* What o may still spend under its memory limit (moving objects to pages of their own). */
size_t mw_registry_budget(struct mw_owner *o);
/* Objects watched at once at most during the run (for the trace's statistics). */
uint64_t mw_registry_objects_peak(void);

#endif
