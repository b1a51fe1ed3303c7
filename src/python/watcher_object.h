/* memwatch.MemoryWatcher. Needs the GIL. */
#ifndef MW_WATCHER_OBJECT_H
#define MW_WATCHER_OBJECT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Readies the type and adds it to module as MemoryWatcher. 0, or -1 with an exception. */
int mw_watcher_object_add_type(PyObject *module);
/* A new MemoryWatcher with the default settings; NULL with an exception. */
PyObject *mw_watcher_object_new_default(void);
/* The end of the run: a final check, then every watch of every watcher is dropped and its
 * memory unprotected, and the run's statistics go to the trace. */
void mw_finish_all(void);
/* In a fork child, with the GIL: every live watcher keeps its watches on memory shared
 * with the parent, with a new engine watcher, and lets the others go (fork.h). */
void mw_watcher_objects_after_fork(void);

struct mw_owner;
struct mw_watched;
/* What the registry sees of a MemoryWatcher (NULL for another object). */
struct mw_owner *mw_watcher_object_owner(PyObject *watcher);
/* The entry of any live watcher that watches the trace's object object_id at start (a
 * process may map the same shared object twice), or NULL. */
struct mw_watched *mw_watcher_objects_find(uint64_t object_id, const void *start);
/* Ends every watch of every live watcher for which gone(w) says 1, as unwatch would. */
void mw_watcher_objects_drop_if(int (*gone)(const struct mw_watched *w));

#endif
