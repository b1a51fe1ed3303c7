/* memwatch.MemoryWatcher and the path every change takes from the engine to the trace and
 * to the script's callback.
 *
 * DESIGN: a check has two phases.
 *   1. harvest: mw_engine_check() runs under the engine lock and hands out changes; the
 *      collector only copies them into plain C memory (no Python object is made, so no
 *      garbage collection, finalizer or callback can run while the engine lock is held);
 *   2. route: with the engine lock released, each change gets its sequence number, goes to
 *      the trace, is shown to --on-nan, and is queued for its watcher's callback.
 * Callbacks run only in check_changes(), as in the original design: automatic checks
 * (--check) record into the trace and queue; check_changes() delivers what is queued and
 * returns how many changes were found since the previous call. Everything here runs with
 * the GIL held. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <structmember.h>
#include <sys/mman.h>

#include "attribution.h"
#include "change.h"
#include "channel.h"
#include "diff.h"
#include "elements.h"
#include "errors.h"
#include "inject.h"
#include "module.h"
#include "mw_error.h"
#include "on_nan.h"
#include "mw_grow.h"
#include "record.h"
#include "registry.h"

typedef struct WatcherObject {
    PyObject_HEAD
    struct mw_owner state;       /* what the registry and routing see of it */
    int callback_takes_change;   /* fn(change) rather than fn(tag, old, new) */
    enum mw_backend backend;
    struct WatcherObject *next_live;   /* in the list of live watchers (for the end of the run) */
    PyObject *weakrefs;
} WatcherObject;

static WatcherObject *live_watchers;   /* protected by the GIL */
/* Engine counters of the watchers already closed; sent to the trace at the end of the run.
 * Protected by the GIL. */
static struct mw_rec_stats run_totals;

/* ---- phase 1: harvest ------------------------------------------------------------ */

struct harvested_range {
    size_t offset, length;
    unsigned char *old;   /* NULL: old value unavailable */
    unsigned char *new_;
};

struct harvested {
    struct mw_watched *watched;
    size_t nranges;
    struct harvested_range *ranges;
    struct mw_writer writer;
    uint64_t time_ns;
};

struct harvest {
    struct harvested *items;
    size_t n, cap;
    int failed;
};

static void collect(const struct mw_change *c, void *ctx)
{
    struct harvest *h = ctx;
    if (h->failed)
        return;
    if (MW_GROW(h->items, h->cap, h->n + 1) != 0) {
        h->failed = 1;
        return;
    }
    struct harvested *it = &h->items[h->n];
    memset(it, 0, sizeof *it);
    it->ranges = calloc(c->nranges ? c->nranges : 1, sizeof *it->ranges);
    if (!it->ranges) {
        h->failed = 1;
        return;
    }
    for (size_t i = 0; i < c->nranges; i++) {
        const struct mw_range *r = &c->ranges[i];
        struct harvested_range *hr = &it->ranges[i];
        hr->offset = r->offset;
        hr->length = r->length;
        hr->new_ = malloc(r->length ? r->length : 1);
        hr->old = r->old ? malloc(r->length ? r->length : 1) : NULL;
        if (!hr->new_ || (r->old && !hr->old)) {
            free(hr->new_);
            free(hr->old);
            it->nranges = i;
            h->failed = 1;
            h->n++;
            return;
        }
        memcpy(hr->new_, r->new_, r->length);
        if (r->old)
            memcpy(hr->old, r->old, r->length);
    }
    it->nranges = c->nranges;
    it->watched = c->region_user;
    mw_registry_hold(it->watched);
    it->writer = *c->writer;
    it->time_ns = mw_channel_now_ns();
    h->n++;
}

static void harvested_free(struct harvested *it)
{
    for (size_t i = 0; i < it->nranges; i++) {
        free(it->ranges[i].old);
        free(it->ranges[i].new_);
    }
    free(it->ranges);
    if (it->watched)
        mw_registry_release(it->watched);
}

/* ---- phase 2: route -------------------------------------------------------------- */

/* Buffers as large as the watched object, zeroed. A large one comes straight from mmap,
 * whose pages cost nothing until touched: from malloc, glibc serves a 1 MiB calloc from the
 * heap once its mmap threshold has adapted, memsets it, and trims the heap again when it is
 * freed, which made a one-element change of a 1 MiB array cost ~0.8 ms. */
#define SPAN_MMAP_MIN ((size_t)64 << 10)

static unsigned char *span_alloc(size_t size)
{
    if (size < SPAN_MMAP_MIN)
        return calloc(1, size ? size : 1);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void span_free(unsigned char *p, size_t size)
{
    if (!p)
        return;
    if (size < SPAN_MMAP_MIN)
        free(p);
    else
        munmap(p, size);
}

/* The span's bytes before and after the change. With a shadow they are exactly what the
 * checks saw; without one, bytes the change did not touch come from memory as it is now.
 * Both buffers come from span_alloc(w->buf.span). */
static int build_spans(struct harvested *it, int sparse, unsigned char **old_out,
                       unsigned char **new_out, int *old_known)
{
    struct mw_watched *w = it->watched;
    const unsigned char *src = w->shadow ? w->shadow : w->buf.start;
    unsigned char *old_span = NULL, *new_span = NULL;
    if (sparse) {
        /* Only the bytes around each range are filled in (a whole element on each side,
         * for element alignment); calloc'd pages that are never touched cost nothing, so a
         * one-element change of a large array costs what the element does. */
        size_t window = w->buf.has_view && w->buf.view.itemsize > 0 ? (size_t)w->buf.view.itemsize : 1;
        old_span = span_alloc(w->buf.span);
        new_span = span_alloc(w->buf.span);
        if (!old_span || !new_span)
            goto nomem;
        for (size_t i = 0; i < it->nranges; i++) {
            const struct harvested_range *r = &it->ranges[i];
            size_t lo = r->offset > window ? r->offset - window : 0;
            size_t hi = r->offset + r->length + window;
            if (hi > w->buf.span)
                hi = w->buf.span;
            memcpy(new_span + lo, src + lo, hi - lo);
            memcpy(old_span + lo, src + lo, hi - lo);
        }
    } else {
        old_span = span_alloc(w->buf.span);
        new_span = span_alloc(w->buf.span);
        if (!old_span || !new_span)
            goto nomem;
        memcpy(new_span, src, w->buf.span);
        memcpy(old_span, src, w->buf.span);
    }
    *old_known = 1;
    for (size_t i = 0; i < it->nranges; i++) {
        const struct harvested_range *r = &it->ranges[i];
        memcpy(new_span + r->offset, r->new_, r->length);
        if (w->shadow)
            memcpy(w->shadow + r->offset, r->new_, r->length);
    }
    /* Bytes the change did not touch are the same before and after. */
    for (size_t i = 0; i < it->nranges; i++) {
        const struct harvested_range *r = &it->ranges[i];
        if (r->old)
            memcpy(old_span + r->offset, r->old, r->length);
        else
            *old_known = 0;
    }
    *old_out = old_span;
    *new_out = new_span;
    return 0;
nomem:
    span_free(old_span, w->buf.span);
    span_free(new_span, w->buf.span);
    return -1;
}

/* The value's bytes in the object's own coordinates (C order). */
static unsigned char *gather_value(const struct mw_buffer *b, const unsigned char *span_bytes)
{
    unsigned char *value = malloc(b->logical_size ? b->logical_size : 1);
    if (value)
        mw_buffer_gather(b, span_bytes, value);
    return value;
}

/* Ranges of one value being collected (logical_ranges). */
struct range_list {
    const unsigned char *old_val, *new_val;
    struct mw_rec_range *items;
    size_t n, cap;
};

static int add_range(size_t offset, size_t length, void *ctx)
{
    struct range_list *l = ctx;
    if (MW_GROW(l->items, l->cap, l->n + 1) != 0)
        return -ENOMEM;
    l->items[l->n++] = (struct mw_rec_range){offset, length, l->old_val + offset,
                                             l->new_val + offset};
    return 0;
}

/* For an object whose elements are not one contiguous block (a strided numpy view), the
 * engine's ranges are in memory coordinates and may include bytes between the elements.
 * Re-derive them in the object's own coordinates from its old and new value. */
static int logical_ranges(size_t size, const unsigned char *old_val, const unsigned char *new_val,
                          struct mw_rec_range **out, size_t *n)
{
    struct range_list l = {.old_val = old_val, .new_val = new_val};
    if (mw_diff_ranges(old_val, new_val, size, add_range, &l) < 0) {
        free(l.items);
        return -1;
    }
    *out = l.items;
    *n = l.n;
    return 0;
}

static int route(struct harvested *it)
{
    struct mw_watched *w = it->watched;
    const struct mw_buffer *b = &w->buf;
    unsigned char *old_span = NULL, *new_span = NULL, *old_val = NULL, *new_val = NULL;
    int old_known = 1, vals_are_spans = 0;
    struct mw_rec_range *ranges = NULL, *whole = NULL;
    size_t nranges = 0, nwhole = 0;
    int status = -1;
    PyObject *thread_name = NULL;

    /* Whole values only when someone looks at them: a callback (Change.old_value, ...) or a
     * strided view (whose changes are re-derived in its own coordinates). */
    int full = !b->contiguous || (w->owner && mw_owner_has_callback(w->owner));
    if (build_spans(it, !full, &old_span, &new_span, &old_known) < 0) {
        PyErr_NoMemory();
        goto out;
    }
    if (b->contiguous) {   /* the span is the value: no second copy */
        old_val = old_span;
        new_val = new_span;
        old_span = new_span = NULL;
        vals_are_spans = 1;
    } else if (!(old_val = gather_value(b, old_span)) || !(new_val = gather_value(b, new_span))) {
        PyErr_NoMemory();
        goto out;
    }
    if (b->contiguous) {
        nranges = it->nranges;
        ranges = malloc((nranges ? nranges : 1) * sizeof *ranges);
        if (!ranges) {
            PyErr_NoMemory();
            goto out;
        }
        for (size_t i = 0; i < nranges; i++)
            ranges[i] = (struct mw_rec_range){it->ranges[i].offset, it->ranges[i].length,
                                              it->ranges[i].old, it->ranges[i].new_};
    } else {
        if (logical_ranges(b->logical_size, old_val, new_val, &ranges, &nranges) < 0) {
            PyErr_NoMemory();
            goto out;
        }
        if (!old_known)   /* unknown old bytes: the whole value is in doubt */
            for (size_t i = 0; i < nranges; i++)
                ranges[i].old = NULL;
    }
    if (nranges == 0) {   /* only bytes between a view's elements changed */
        status = 0;
        goto out;
    }
    /* The trace gets whole elements, so that its readers can decode each changed one
     * without the rest of the object (elements.h); the bytes are in old_val/new_val. */
    size_t itemsize = b->has_view && b->view.itemsize > 1 ? (size_t)b->view.itemsize : 1;
    if (itemsize > 1) {
        if (!(whole = malloc(nranges * sizeof *whole))) {
            PyErr_NoMemory();
            goto out;
        }
        if (mw_elem_align_ranges(itemsize, ranges, nranges, old_val, new_val, b->logical_size,
                                 whole, &nwhole) != 0) {
            free(whole);
            whole = NULL;
        }
    }
    thread_name = mw_attribution_thread_name(it->writer.tid);
    if (!thread_name)
        goto out;
    struct mw_native_writer native;
    int has_native = mw_attribution_native_writer(it->writer.fault_ip, &native);
    uint64_t seq = mw_channel_next_seq();
    const char *tname = PyUnicode_Check(thread_name) ? PyUnicode_AsUTF8(thread_name) : NULL;
    struct mw_rec_change rec = {
        .seq = seq,
        .time_ns = it->time_ns,
        .object_id = w->object_id,
        .thread_id = it->writer.tid,
        .thread_name = tname,
        .file = it->writer.file[0] ? it->writer.file : NULL,
        .line = it->writer.line,
        .function = it->writer.function[0] ? it->writer.function : NULL,
        .native_symbol = has_native ? native.symbol : NULL,
        .native_library = has_native ? native.library : NULL,
        .nranges = (uint32_t)(whole ? nwhole : nranges),
        .ranges = whole ? whole : ranges,
    };
    mw_channel_change(&rec);
    struct mw_change_info info = {
        .tag = w->tag,
        .layout = w->layout,
        .value_size = b->logical_size,
        .old_value = old_val,
        .new_value = new_val,
        .old_known = old_known,
        .ranges = ranges,
        .nranges = nranges,
        .writer = &it->writer,
        .thread_name = thread_name,
        .native_symbol = has_native ? native.symbol : NULL,
        .native_library = has_native ? native.library : NULL,
        .seq = seq,
        .time_ns = it->time_ns,
    };
    mw_on_nan_note(&info);

    struct mw_owner *owner = w->owner;
    status = 1;
    if (!owner)
        goto out;
    owner->found++;
    if (mw_owner_has_callback(owner)) {
        PyObject *change = mw_change_new(&info, owner->capture_full_values);
        if (!change || PyList_Append(owner->pending, change) < 0)
            status = -1;
        Py_XDECREF(change);
    }
out:
    Py_XDECREF(thread_name);
    free(ranges);
    free(whole);
    span_free(old_span, b->span);
    span_free(new_span, b->span);
    if (vals_are_spans) {
        span_free(old_val, b->span);
        span_free(new_val, b->span);
    } else {
        free(old_val);
        free(new_val);
    }
    return status;
}

/* Routing runs Python code (thread names, Change objects), where the eval breaker may run an
 * automatic check in the same thread, or another thread may take the GIL and check. Checks
 * must not overlap, or newer changes would be routed before older ones:
 *   - a check nested in the same thread finds nothing now; the pages stay dirty for the next;
 *   - an automatic check while another thread checks is skipped for the same reason;
 *   - an explicit check (check_changes, unwatch, the end) waits for the other thread's check
 *     to finish, with the GIL released, so that it sees every write made before it.
 * checking_thread is protected by the GIL; check_done signals its release. */
static unsigned long checking_thread;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t check_done = PTHREAD_COND_INITIALIZER;

static int begin_check(int automatic)
{
    unsigned long me = PyThread_get_thread_ident();
    if (checking_thread == me || (checking_thread && automatic))
        return 0;
    while (checking_thread) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&check_lock);
        pthread_cond_wait(&check_done, &check_lock);
        pthread_mutex_unlock(&check_lock);
        Py_END_ALLOW_THREADS
    }
    checking_thread = me;
    return 1;
}

static void end_check(void)
{
    pthread_mutex_lock(&check_lock);
    checking_thread = 0;
    pthread_cond_broadcast(&check_done);
    pthread_mutex_unlock(&check_lock);
}

Py_ssize_t mw_check_all(void)
{
    return mw_check_all_ex(0);
}

/* A check, or (core non-NULL) the check an unwatch of region_id runs before it forgets the
 * region: its changes, of every region, are routed like any check's. *unwatch_status gets
 * the unwatch's own status. */
static Py_ssize_t check_and_route(int automatic, mw_watcher *core, uint64_t region_id,
                                  int *unwatch_status)
{
    if (!begin_check(automatic)) {
        if (core)   /* nested in this thread's own check: that one finds the changes */
            *unwatch_status = mw_watcher_unwatch(core, region_id, NULL, NULL);
        return 0;
    }
    struct harvest h = {0};
    int status;
    if (core) {
        status = mw_watcher_unwatch(core, region_id, collect, &h);
        *unwatch_status = status;
        if (status == MW_ENOENT)
            status = 0;
    } else {
        status = mw_engine_check(collect, &h);
    }
    Py_ssize_t found = 0;
    int failed = 0;
    for (size_t i = 0; i < h.n; i++) {
        if (!failed) {
            int r = route(&h.items[i]);
            if (r < 0)
                failed = 1;
            else
                found += r;
        }
        harvested_free(&h.items[i]);
    }
    free(h.items);
    mw_attribution_forget_thread_names();
    mw_channel_flush();
    end_check();
    if (failed)
        return -1;
    if (status < 0) {
        mw_raise_status(status, "check failed");
        return -1;
    }
    if (h.failed) {
        PyErr_NoMemory();
        return -1;
    }
    return found;
}

Py_ssize_t mw_check_all_ex(int automatic)
{
    return check_and_route(automatic, NULL, 0, NULL);
}

/* ---- MemoryWatcher ---------------------------------------------------------------- */

/* Every check the type makes is followed by mw_autocheck_after_check(), so that a NaN it
 * found reaches the script's main thread as one found by an automatic check would
 * (on_nan.c). */
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
    if (self->state.core) {
        PyErr_SetString(PyExc_RuntimeError, "MemoryWatcher is already initialized");
        return -1;
    }
    if (parse_backend(backend, &self->backend) < 0)
        return -1;
    int status = mw_engine_init();
    if (status < 0) {
        mw_raise_status(status, "cannot start memwatch's engine");
        return -1;
    }
    struct mw_watcher_config config = {.max_memory_bytes = (size_t)max_mb * 1024 * 1024,
                                       .backend = self->backend};
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
    if (require_core(self) < 0)
        return NULL;
    struct mw_buffer buf;
    if (mw_buffer_acquire(obj, &buf) < 0)
        return NULL;
    if (mw_registry_add(&self->state, tag, &buf) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Watcher_watch_buffer(WatcherObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"address", "size", "name", NULL};
    PyObject *address_obj, *size_obj, *tag;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:watch_buffer", kwlist, &address_obj,
                                     &size_obj, &tag))
        return NULL;
    if (require_core(self) < 0)
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
    struct mw_buffer buf;
    mw_buffer_raw((void *)(uintptr_t)address, (size_t)size, &buf);
    if (mw_registry_add(&self->state, tag, &buf) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Watcher_unwatch(WatcherObject *self, PyObject *tag)
{
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
    Py_ssize_t checked = check_and_route(0, self->state.core, w->region_id, &status);
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
    if (require_core(self) < 0)
        return NULL;
    if (check_all() < 0 || mw_on_nan_raise_pending() < 0)
        return NULL;
    return deliver(self);
}

static PyObject *Watcher_get_stats(WatcherObject *self, PyObject *Py_UNUSED(ignored))
{
    if (require_core(self) < 0)
        return NULL;
    struct mw_watcher_stats s;
    mw_watcher_stats(self->state.core, &s);
    return Py_BuildValue("{s:n,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:s,s:n,s:d}",
                         "tracked_objects", (Py_ssize_t)s.tracked_objects,
                         "tracked_bytes", (unsigned long long)s.tracked_bytes,
                         "memory_used_bytes",
                         (unsigned long long)(s.memory_used_bytes + self->state.shadow_bytes),
                         "memory_limit_bytes", (unsigned long long)s.memory_limit_bytes,
                         "faults", (unsigned long long)s.faults,
                         "checks", (unsigned long long)s.checks,
                         "changes", (unsigned long long)s.changes,
                         "old_value_unavailable", (unsigned long long)s.old_unavailable,
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
    mw_watcher_destroy(self->state.core);
    self->state.core = NULL;
    for (WatcherObject **p = &live_watchers; *p; p = &(*p)->next_live)
        if (*p == self) {
            *p = self->next_live;
            break;
        }
}

void mw_finish_all(void)
{
    if (live_watchers && check_all() < 0)
        PyErr_WriteUnraisable(NULL);
    while (live_watchers)
        close_watcher(live_watchers, 0);
    run_totals.tracked_objects_peak = mw_registry_objects_peak();
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

PyTypeObject mw_WatcherType = {
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
