/* memwatch.MemoryWatcher: watching and unwatching objects, the callback and its delivery,
 * statistics, and the end of every watcher.
 *
 * DESIGN: callbacks run only in check_changes(). Every check (automatic ones from --check
 * too) records changes into the trace and queues a Change for a watcher with a callback
 * (check.c); check_changes() delivers what is queued and returns how many changes were
 * found since the previous call. So a callback never runs inside a check, and changes it
 * causes are found by the next one. Every check made here is followed by
 * mw_autocheck_after_check(), so that a NaN it found reaches the script's main thread as
 * one found by an automatic check would (on_nan.c). Everything here runs with the GIL held,
 * which protects the statics below.
 *
 * In a process memwatch does not trace (a Python child of the traced script under
 * --no-follow: children.c) every watcher is untraced: it checks its arguments and
 * keeps its names exactly as a traced one, so that a program runs there as it does in the
 * traced process, but watches nothing. No page is protected and no object pinned or moved;
 * check_changes() returns 0, callbacks are never called, get_stats() counts zero with
 * backend None. */
#include "watcher_object.h"

#include <stdint.h>

#include "autocheck.h"
#include "change.h"
#include "channel.h"
#include "check.h"
#include "config.h"
#include "errors.h"
#include "relocate.h"
#include "mw_error.h"
#include "on_nan.h"
#include "pycompat.h"
#include "record.h"
#include "fork.h"
#include "registry.h"

typedef struct WatcherObject {
    PyObject_HEAD
    struct mw_owner state;       /* what the registry and routing see of it */
    int callback_takes_change;   /* fn(change) rather than fn(tag, old, new) */
    enum mw_backend backend;
    size_t max_bytes;            /* its memory limit (a fork child makes its watcher again) */
    struct WatcherObject *next_live;   /* in the list of live watchers (for the end of the run) */
    int untraced;                /* watches nothing (see the top of the file) */
    size_t limit_bytes;          /* max_memory_mb, for an untraced watcher's statistics */
    PyObject *weakrefs;
} WatcherObject;

static WatcherObject *live_watchers;
/* Engine counters of the watchers already closed; sent to the trace at the end of the run. */
static struct mw_rec_stats run_totals;

/* Every check the type makes (see DESIGN). */
static Py_ssize_t check_all(void)
{
    Py_ssize_t found = mw_check_all();
    mw_autocheck_after_check();
    return found;
}

static int parse_backend(PyObject *value, enum mw_backend *out)
{
    if (!value || value == Py_None) {
        *out = mw_run.backend;
        return 0;
    }
    const char *name = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
    if (!name || mw_parse_backend(name, out) != 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "backend must be 'auto', 'uffd' or 'mprotect'");
        return -1;
    }
    if (*out != MW_BACKEND_AUTO && !mw_engine_backend_available(*out)) {
        PyErr_Format(PyExc_ValueError,
                     "backend '%s' is not available on this system (use 'auto' or 'mprotect')", name);
        return -1;
    }
    return 0;
}

static int Watcher_init(WatcherObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_memory_mb", "capture_full_values", "backend", NULL};
    Py_ssize_t max_mb = 1024;
    int capture = 1;
    PyObject *backend = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|npO:MemoryWatcher", kwlist, &max_mb, &capture,
                                     &backend))
        return -1;
    if (max_mb <= 0) {
        PyErr_Format(PyExc_ValueError, "max_memory_mb must be positive, not %zd", max_mb);
        return -1;
    }
    if ((size_t)max_mb > SIZE_MAX / (1024 * 1024)) {
        PyErr_Format(PyExc_ValueError, "max_memory_mb is too large: %zd", max_mb);
        return -1;
    }
    if (self->state.core || self->untraced) {
        PyErr_SetString(PyExc_RuntimeError, "MemoryWatcher is already initialized");
        return -1;
    }
    if (parse_backend(backend, &self->backend) < 0)
        return -1;
    if (!mw_run.traced) {
        self->untraced = 1;
        self->limit_bytes = (size_t)max_mb * 1024 * 1024;
        Py_XSETREF(self->state.callback, Py_NewRef(Py_None));
        if (!self->state.by_tag && !(self->state.by_tag = PyDict_New()))
            return -1;
        if (!self->state.pending && !(self->state.pending = PyList_New(0)))
            return -1;
        return 0;
    }
    int status = mw_engine_init();
    if (status < 0) {
        mw_raise_status(status, "cannot start memwatch's engine");
        return -1;
    }
    struct mw_watcher_config config = {.max_memory_bytes = (size_t)max_mb * 1024 * 1024,
                                       .backend = self->backend};
    self->max_bytes = config.max_memory_bytes;
    status = mw_watcher_create(&config, &self->state.core);
    if (status < 0) {
        mw_raise_status(status, "cannot create a watcher");
        return -1;
    }
    self->state.capture_full_values = capture;
    Py_XSETREF(self->state.callback, Py_NewRef(Py_None));
    if (!self->state.by_tag && !(self->state.by_tag = PyDict_New()))
        return -1;
    if (!self->state.pending && !(self->state.pending = PyList_New(0)))
        return -1;
    self->next_live = live_watchers;
    live_watchers = self;
    return 0;
}

static int require_core(WatcherObject *self)
{
    if (!self->state.core) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this MemoryWatcher is closed (the run is ending) or was not initialized");
        return -1;
    }
    return 0;
}

/* An untraced watcher's watch: what a traced one would refuse, it refuses the same way;
 * otherwise it keeps the name only. */
static PyObject *untraced_watch(WatcherObject *self, PyObject *tag, size_t size)
{
    if (mw_registry_check_name(tag) < 0)
        return NULL;
    int has = PyDict_Contains(self->state.by_tag, tag);
    if (has < 0)
        return NULL;
    if (has)
        return PyErr_Format(PyExc_ValueError,
                            "'%U' is already watched: unwatch it first or choose another name", tag);
    if (size == 0)
        return PyErr_Format(PyExc_ValueError, "cannot watch '%U': the object is empty (0 bytes)",
                            tag);
    if (PyDict_SetItem(self->state.by_tag, tag, Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *untraced_stats(WatcherObject *self)
{
    return Py_BuildValue("{s:n,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:n,s:n,s:n,s:O,s:n,s:d}",
                         "tracked_objects", (Py_ssize_t)0, "tracked_bytes", 0ULL,
                         "memory_used_bytes", 0ULL,
                         "memory_limit_bytes", (unsigned long long)self->limit_bytes,
                         "faults", 0ULL, "checks", 0ULL, "changes", 0ULL,
                         "old_value_unavailable", 0ULL, "found_by_trap", 0ULL,
                         "found_by_comparison", 0ULL, "isolated_objects", (Py_ssize_t)0,
                         "isolated_pages", (Py_ssize_t)0, "open_pages", (Py_ssize_t)0,
                         "backend", Py_None, "pending_callbacks", (Py_ssize_t)0,
                         "trace_wait_seconds", 0.0);
}

/* Does fn take a single Change (fn(change)) rather than (tag, old, new)? */
static int takes_one_argument(PyObject *fn)
{
    PyObject *inspect = PyImport_ImportModule("inspect");
    if (!inspect)
        return -1;
    PyObject *sig = PyObject_CallMethod(inspect, "signature", "O", fn);
    Py_DECREF(inspect);
    if (!sig) {
        /* Builtins without a signature: assume the original three-argument form. */
        PyErr_Clear();
        return 0;
    }
    PyObject *three = PyObject_CallMethod(sig, "bind", "OOO", Py_None, Py_None, Py_None);
    if (three) {
        Py_DECREF(three);
        Py_DECREF(sig);
        return 0;
    }
    PyErr_Clear();
    PyObject *one = PyObject_CallMethod(sig, "bind", "O", Py_None);
    Py_DECREF(sig);
    if (one) {
        Py_DECREF(one);
        return 1;
    }
    PyErr_Clear();
    return 0;
}

static PyObject *Watcher_set_callback(WatcherObject *self, PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError,
                     "callback must be callable, like fn(tag, old_value, new_value) or fn(change), "
                     "not '%s'", Py_TYPE(fn)->tp_name);
        return NULL;
    }
    int one = fn == Py_None ? 0 : takes_one_argument(fn);
    if (one < 0)
        return NULL;
    Py_XSETREF(self->state.callback, Py_NewRef(fn));
    self->callback_takes_change = one;
    if (self->state.core && self->state.watched) {
        /* Values from here on are exact: settle what is pending, then keep shadows. */
        if (check_all() < 0)
            return NULL;
        for (struct mw_watched *w = self->state.watched; w; w = w->next)
            if (mw_registry_keep_shadow(&self->state, w) < 0)
                return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Watcher_watch_object(WatcherObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"obj", "name", NULL};
    PyObject *obj, *tag;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:watch_object", kwlist, &obj, &tag))
        return NULL;
    if (self->untraced) {
        size_t size;
        return mw_buffer_check(obj, &size) < 0 ? NULL : untraced_watch(self, tag, size);
    }
    if (require_core(self) < 0)
        return NULL;
    struct mw_buffer buf;
    if (mw_buffer_acquire(obj, mw_registry_budget(&self->state), &buf) < 0)
        return NULL;
    if (mw_registry_add(&self->state, tag, &buf) < 0)
        return NULL;
    mw_autocheck_after_watch();
    Py_RETURN_NONE;
}

static PyObject *Watcher_watch_buffer(WatcherObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"address", "size", "name", NULL};
    PyObject *address_obj, *size_obj, *tag;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:watch_buffer", kwlist, &address_obj,
                                     &size_obj, &tag))
        return NULL;
    if (!self->untraced && require_core(self) < 0)
        return NULL;
    if (!PyLong_Check(address_obj) || !PyLong_Check(size_obj))
        return PyErr_Format(PyExc_TypeError, "address and size must be int, not '%s' and '%s'",
                            Py_TYPE(address_obj)->tp_name, Py_TYPE(size_obj)->tp_name);
    int overflow = 0;
    long long size = PyLong_AsLongLongAndOverflow(size_obj, &overflow);
    if (overflow || size <= 0)
        return PyErr_Format(PyExc_ValueError, "size must be a positive number of bytes, not %R",
                            size_obj);
    unsigned long long address = PyLong_AsUnsignedLongLong(address_obj);
    if (PyErr_Occurred() || address == 0) {
        PyErr_Clear();
        return PyErr_Format(PyExc_ValueError, "address must be a non-zero memory address, not %R",
                            address_obj);
    }
    if (address + (unsigned long long)size < address || (uint64_t)size > SIZE_MAX)
        return PyErr_Format(PyExc_ValueError, "address %R + size %R wraps around memory",
                            address_obj, size_obj);
    if (self->untraced)
        return untraced_watch(self, tag, (size_t)size);
    struct mw_buffer buf;
    mw_buffer_raw((void *)(uintptr_t)address, (size_t)size, &buf);
    if (mw_registry_add(&self->state, tag, &buf) < 0)
        return NULL;
    mw_autocheck_after_watch();
    Py_RETURN_NONE;
}

static PyObject *Watcher_unwatch(WatcherObject *self, PyObject *tag)
{
    if (self->untraced) {
        int has = PyDict_Contains(self->state.by_tag, tag);
        if (has < 0)
            return NULL;
        if (!has)
            return PyErr_Format(PyExc_KeyError, "'%S' is not watched by this watcher", tag);
        if (PyDict_DelItem(self->state.by_tag, tag) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (require_core(self) < 0)
        return NULL;
    struct mw_watched *w = mw_registry_find(&self->state, tag);
    if (!w) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_KeyError, "'%S' is not watched by this watcher", tag);
        return NULL;
    }
    /* What was written before the unwatch is found by the unwatch's own check, in the same
     * engine step that forgets the region: no write in between is lost. */
    int status = 0;
    struct mw_watched *keep = w;
    mw_registry_hold(keep);
    Py_ssize_t checked = mw_check_unwatch(self->state.core, w->region_id, &status);
    mw_autocheck_after_check();
    /* Routing ran Python code, which may have unwatched it already. */
    w = mw_registry_find(&self->state, tag);
    if (w == keep) {
        if (PyDict_DelItem(self->state.by_tag, tag) < 0)
            PyErr_Clear();
        mw_registry_detach(&self->state, w);
    }
    mw_registry_release(keep);
    mw_channel_flush();
    if (checked < 0)
        return NULL;
    if (status < 0 && status != MW_ENOENT)
        return mw_raise_status(status, "unwatch failed");
    Py_RETURN_NONE;
}

static PyObject *deliver(WatcherObject *self)
{
    Py_ssize_t found = self->state.found;
    self->state.found = 0;
    if (!mw_owner_has_callback(&self->state) || PyList_GET_SIZE(self->state.pending) == 0)
        return PyLong_FromSsize_t(found);
    /* Deliver what is queued now; changes that callbacks cause are found by the next
     * check, so a callback writing watched memory cannot loop. */
    PyObject *batch = self->state.pending;
    self->state.pending = PyList_New(0);
    if (!self->state.pending) {
        self->state.pending = batch;
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(batch);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *change = PyList_GET_ITEM(batch, i);
        PyObject *fn = Py_NewRef(self->state.callback);
        PyObject *result;
        if (self->callback_takes_change)
            result = PyObject_CallOneArg(fn, change);
        else
            result = PyObject_CallFunctionObjArgs(fn, mw_change_field(change, MW_CHANGE_TAG),
                                                  mw_change_field(change, MW_CHANGE_OLD_VALUE),
                                                  mw_change_field(change, MW_CHANGE_NEW_VALUE),
                                                  NULL);
        Py_DECREF(fn);
        if (!result) {
            /* The callback's exception surfaces here; undelivered changes stay queued. */
            PyObject *rest = PyList_GetSlice(batch, i + 1, n);
            if (rest) {
                PyObject *joined = PySequence_Concat(rest, self->state.pending);
                if (joined)
                    Py_SETREF(self->state.pending, joined);
                Py_DECREF(rest);
            }
            Py_DECREF(batch);
            return NULL;
        }
        Py_DECREF(result);
    }
    Py_DECREF(batch);
    return PyLong_FromSsize_t(found);
}

static PyObject *Watcher_check_changes(WatcherObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->untraced)
        return PyLong_FromLong(0);
    if (require_core(self) < 0)
        return NULL;
    if (check_all() < 0 || mw_on_nan_raise_pending() < 0)
        return NULL;
    return deliver(self);
}

static PyObject *Watcher_get_stats(WatcherObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->untraced)
        return untraced_stats(self);
    if (require_core(self) < 0)
        return NULL;
    struct mw_watcher_stats s;
    mw_watcher_stats(self->state.core, &s);
    struct mw_relocate_stats moved;
    mw_relocate_stats(&moved);
    return Py_BuildValue("{s:n,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:n,s:n,s:n,s:s,s:n,s:d}",
                         "tracked_objects", (Py_ssize_t)s.tracked_objects,
                         "tracked_bytes", (unsigned long long)s.tracked_bytes,
                         "memory_used_bytes",
                         (unsigned long long)(s.memory_used_bytes + self->state.shadow_bytes +
                                              self->state.moved_bytes),
                         "memory_limit_bytes", (unsigned long long)s.memory_limit_bytes,
                         "faults", (unsigned long long)s.faults,
                         "checks", (unsigned long long)s.checks,
                         "changes", (unsigned long long)s.changes,
                         "old_value_unavailable", (unsigned long long)s.old_unavailable,
                         "found_by_trap", (unsigned long long)(s.changes - s.changes_compared),
                         "found_by_comparison", (unsigned long long)s.changes_compared,
                         "isolated_objects", (Py_ssize_t)moved.objects,
                         "isolated_pages", (Py_ssize_t)moved.pages,
                         "open_pages", (Py_ssize_t)s.pages_open,
                         "backend", mw_backend_name(mw_engine_backend()),
                         "pending_callbacks", PyList_GET_SIZE(self->state.pending),
                         "trace_wait_seconds", mw_channel_waited_ns() / 1e9);
}

/* Drops every watch of this watcher, after a last check so nothing is lost. */
static void close_watcher(WatcherObject *self, int final_check)
{
    if (!self->state.core)
        return;
    if (final_check && self->state.watched && check_all() < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    while (self->state.watched) {
        struct mw_watched *w = self->state.watched;
        mw_watcher_unwatch(self->state.core, w->region_id, NULL, NULL);
        mw_registry_detach(&self->state, w);
    }
    mw_channel_flush();
    if (self->state.by_tag)
        PyDict_Clear(self->state.by_tag);
    struct mw_watcher_stats st;
    mw_watcher_stats(self->state.core, &st);
    run_totals.faults += st.faults;
    run_totals.checks += st.checks;
    run_totals.changes += st.changes;
    run_totals.old_unavailable += st.old_unavailable;
    run_totals.changes_compared += st.changes_compared;
    if (st.pages_open_peak > run_totals.open_pages_peak)
        run_totals.open_pages_peak = st.pages_open_peak;
    mw_watcher_destroy(self->state.core);
    self->state.core = NULL;
    for (WatcherObject **p = &live_watchers; *p; p = &(*p)->next_live)
        if (*p == self) {
            *p = self->next_live;
            break;
        }
}

void mw_watcher_objects_after_fork(void)
{
    for (WatcherObject *self = live_watchers; self; self = self->next_live) {
        struct mw_watcher_config config = {.max_memory_bytes = self->max_bytes,
                                           .backend = self->backend};
        mw_fork_rewatch(&self->state, &config);
    }
}

static PyTypeObject watcher_type;

struct mw_owner *mw_watcher_object_owner(PyObject *watcher)
{
    return PyObject_TypeCheck(watcher, &watcher_type) ? &((WatcherObject *)watcher)->state : NULL;
}

struct mw_watched *mw_watcher_objects_find(uint64_t object_id, const void *start)
{
    for (WatcherObject *self = live_watchers; self; self = self->next_live)
        for (struct mw_watched *w = self->state.watched; w; w = w->next)
            if (w->object_id == object_id && w->buf.start == start)
                return w;
    return NULL;
}

void mw_finish_all(void)
{
    if (live_watchers && check_all() < 0)
        PyErr_WriteUnraisable(NULL);
    while (live_watchers)
        close_watcher(live_watchers, 0);
    run_totals.tracked_objects_peak = mw_registry_objects_peak();
    struct mw_relocate_stats moved;
    mw_relocate_stats(&moved);
    run_totals.isolated_objects_peak = moved.objects_peak;
    run_totals.isolated_pages_peak = moved.pages_peak;
    mw_check_shortfall(&run_totals.short_of_memory, &run_totals.lost_for_memory);
    mw_channel_stats(&run_totals);
}

static int Watcher_traverse(WatcherObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->state.callback);
    Py_VISIT(self->state.pending);
    return 0;
}

static int Watcher_clear(WatcherObject *self)
{
    Py_CLEAR(self->state.callback);
    Py_CLEAR(self->state.pending);
    return 0;
}

static void Watcher_dealloc(WatcherObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs)
        PyObject_ClearWeakRefs((PyObject *)self);
    close_watcher(self, 1);
    Watcher_clear(self);
    Py_CLEAR(self->state.by_tag);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Watcher_watched_tags(WatcherObject *self, PyObject *Py_UNUSED(ignored))
{
    return self->state.by_tag ? PyDict_Keys(self->state.by_tag) : PyList_New(0);
}

static PyMethodDef Watcher_methods[] = {
    {"set_callback", (PyCFunction)Watcher_set_callback, METH_O,
     "set_callback(fn)\n--\n\nCall fn(tag, old_value, new_value) or fn(change) for each change "
     "that check_changes() delivers. None removes the callback."},
    {"watch_object", (PyCFunction)(void (*)(void))Watcher_watch_object, METH_VARARGS | METH_KEYWORDS,
     "watch_object(obj, name)\n--\n\nWatch the memory of obj (any buffer-protocol object or CPU "
     "torch tensor) under the tag name. obj is pinned while watched."},
    {"watch_buffer", (PyCFunction)(void (*)(void))Watcher_watch_buffer, METH_VARARGS | METH_KEYWORDS,
     "watch_buffer(address, size, name)\n--\n\nWatch size bytes of raw memory at address."},
    {"unwatch", (PyCFunction)Watcher_unwatch, METH_O,
     "unwatch(name)\n--\n\nStop watching name (changes made before are still found)."},
    {"check_changes", (PyCFunction)Watcher_check_changes, METH_NOARGS,
     "check_changes()\n--\n\nFind changes, call the callback for each, and return how many "
     "changes were found since the previous call."},
    {"get_stats", (PyCFunction)Watcher_get_stats, METH_NOARGS,
     "get_stats()\n--\n\nA dict of counters: tracked_objects, tracked_bytes, memory_used_bytes, "
     "memory_limit_bytes, faults, checks, changes, ..."},
    {"watched", (PyCFunction)Watcher_watched_tags, METH_NOARGS,
     "watched()\n--\n\nThe tags this watcher watches."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject watcher_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memwatch.MemoryWatcher",
    .tp_basicsize = sizeof(WatcherObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "MemoryWatcher(max_memory_mb=1024, capture_full_values=True, backend='auto')\n--\n\n"
              "Watches memory of Python objects and reports every change to it.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Watcher_init,
    .tp_dealloc = (destructor)Watcher_dealloc,
    .tp_traverse = (traverseproc)Watcher_traverse,
    .tp_clear = (inquiry)Watcher_clear,
    .tp_methods = Watcher_methods,
    .tp_weaklistoffset = offsetof(WatcherObject, weakrefs),
};

void mw_watcher_objects_drop_if(int (*gone)(const struct mw_watched *w))
{
    for (WatcherObject *self = live_watchers; self; self = self->next_live) {
        for (struct mw_watched *w = self->state.watched, *next; w; w = next) {
            next = w->next;
            if (!gone(w))
                continue;
            mw_watcher_unwatch(self->state.core, w->region_id, NULL, NULL);
            if (PyDict_DelItem(self->state.by_tag, w->tag) < 0)
                PyErr_Clear();
            mw_registry_detach(&self->state, w);
        }
    }
}

/* The range before_unmap is letting go of (the GIL protects it). */
static uintptr_t unmap_lo, unmap_hi;

static int in_unmapped_range(const struct mw_watched *w)
{
    uintptr_t a = (uintptr_t)w->buf.start;
    return a < unmap_hi && a + w->buf.span > unmap_lo;
}

/* The program is unmapping [addr, addr+len), where watched objects live (mmap.close(), a
 * SharedMemory block's close(), munmap of a watch_buffer range): what was written there is
 * found by one last check, then those watches end, each as an unwatch would. mmap releases
 * the GIL around munmap(); the thread takes it back here (it holds nothing else then), as
 * a C library calling back into Python would. */
static void before_unmap(const void *addr, size_t len)
{
    if (!Py_IsInitialized() || mw_py_is_finalizing())
        return;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (live_watchers && check_all() < 0)
        PyErr_WriteUnraisable(NULL);
    unmap_lo = (uintptr_t)addr;
    unmap_hi = unmap_lo + len;
    mw_watcher_objects_drop_if(in_unmapped_range);
    mw_channel_flush();
    PyErr_Restore(type, value, tb);
    PyGILState_Release(gil);
}

int mw_watcher_object_add_type(PyObject *module)
{
    mw_engine_set_unmap_hook(before_unmap);
    if (PyType_Ready(&watcher_type) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "MemoryWatcher", (PyObject *)&watcher_type);
}

PyObject *mw_watcher_object_new_default(void)
{
    return PyObject_CallNoArgs((PyObject *)&watcher_type);
}
