/* The injected `memwatch` module: shared declarations between its files. */
#ifndef MW_MODULE_H
#define MW_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "buffers.h"
#include "watcher.h"

typedef struct WatcherObject WatcherObject;

/* One watched object. Reference-counted, because a check in progress may still hold it
 * while the script unwatches it (from a callback or a finalizer). Protected by the GIL. */
struct mw_watched {
    WatcherObject *owner;    /* borrowed: set to NULL when the owner lets go */
    PyObject *tag;           /* str */
    uint64_t region_id;
    uint64_t object_id;      /* the object's id in the trace */
    struct mw_buffer buf;
    /* The span's bytes as of the last check, kept when the value must be exact (a callback
     * that receives full values, or a strided view whose changes are re-derived in its own
     * coordinates): values are then built from what the checks saw, never from memory that
     * other threads may be writing at that moment. NULL when not kept. */
    unsigned char *shadow;
    struct mw_elem_layout *layout; /* element layout of a typed object, else NULL */
    int refs;
    int live;                /* still registered with the engine */
    struct mw_watched *next; /* in the owner's list */
};

struct WatcherObject {
    PyObject_HEAD
    mw_watcher *core;
    PyObject *callback;          /* None or a callable */
    int callback_takes_change;   /* fn(change) rather than fn(tag, old, new) */
    int capture_full_values;
    enum mw_backend backend;
    PyObject *by_tag;            /* dict: tag -> int (address of its struct mw_watched) */
    struct mw_watched *watched;  /* list of live entries */
    PyObject *pending;           /* list of Change objects waiting for the callback */
    Py_ssize_t found;            /* changes found since the last check_changes() */
    size_t shadow_bytes;         /* memory held by the shadows of this watcher's objects */
    WatcherObject *next_live;    /* in the list of live watchers (for the end of the run) */
    PyObject *weakrefs;
};

extern PyTypeObject mw_WatcherType;

int mw_watcher_type_ready(PyObject *module);
/* Runs one check of every watched page; routes each change to the trace and to its
 * watcher. Needs the GIL. Returns the number of changes found or -1 with an exception. */
Py_ssize_t mw_check_all(void);
/* The same for automatic checks, which are skipped while another check is running. */
Py_ssize_t mw_check_all_ex(int automatic);
/* The end of the run: a final check, then every watch of every watcher is dropped and
 * its memory unprotected. Needs the GIL. */
void mw_finish_all(void);

/* autocheck.c */
int mw_autocheck_start(PyObject *module);
void mw_autocheck_stop(void);
/* After a check made elsewhere (watcher_object.c): when --on-nan has a message waiting,
 * asks the main thread to tell the script at its next safe point, as after autocheck's
 * own checks. Needs the GIL. */
void mw_autocheck_after_check(void);
/* In a forked child: the poller thread does not exist there. */
void mw_autocheck_after_fork(void);

#endif
