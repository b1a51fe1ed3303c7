/* The registry of watched objects: for each watcher (struct mw_owner, which a
 * MemoryWatcher embeds), its entries (struct mw_watched) in a list and by tag, with what the
 * trace and the checks need of each.
 *
 * DESIGN: an entry lives as long as someone holds it: the watcher's list (one reference,
 * dropped by mw_registry_detach) and every check that harvested a change of it (one
 * each, dropped once the change is routed). So a callback or finalizer that unwatches an
 * object while a check routes its changes never frees what the check still reads; the
 * object stays pinned (its buffer held) until the last reference goes. by_tag maps a tag to
 * the entry's address, so it is only a lookup and owns nothing. Everything here runs with
 * the GIL held, which protects every field and the statics below. */
#include "registry.h"

#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "errors.h"
#include "held.h"
#include "shared_watch.h"

/* Objects watched now and at most, over every watcher: for the trace's statistics. */
static uint64_t objects_now, objects_peak;

/* More dimensions than any buffer exporter makes (PyBUF_MAX_NDIM is 64). */
#define MAX_DIMS 64

void mw_registry_hold(struct mw_watched *w)
{
    w->refs++;
}

void mw_registry_release(struct mw_watched *w)
{
    if (--w->refs > 0)
        return;
    mw_buffer_release(&w->buf);
    Py_XDECREF(w->tag);
    free(w->shadow);
    mw_elem_layout_destroy(w->layout);
    PyMem_RawFree(w);
}

uint64_t mw_registry_objects_peak(void)
{
    return objects_peak;
}

struct mw_watched *mw_registry_find(struct mw_owner *o, PyObject *tag)
{
    PyObject *ptr = PyDict_GetItemWithError(o->by_tag, tag);
    return ptr ? PyLong_AsVoidPtr(ptr) : NULL;
}

/* Under mprotect each run of protected pages is a mapping of its own in the kernel's
 * eyes, and vm.max_map_count (65530) caps those: moving stops well before, at this many
 * pages of moved objects (objects beyond are watched where they are). userfaultfd adds no
 * mapping. */
#define MPROTECT_MOVED_MAX 10000

size_t mw_registry_budget(struct mw_owner *o)
{
    struct mw_relocate_stats moved;
    mw_relocate_stats(&moved);
    if (mw_engine_backend() == MW_BACKEND_MPROTECT && moved.pages >= MPROTECT_MOVED_MAX)
        return 0;
    struct mw_watcher_stats s;
    mw_watcher_stats(o->core, &s);
    size_t used = s.memory_used_bytes + o->shadow_bytes + o->moved_bytes;
    return used < s.memory_limit_bytes ? s.memory_limit_bytes - used : 0;
}

/* The pages a moved object takes beyond its own size. */
static size_t moved_waste(const struct mw_watched *w)
{
    return w->buf.moved.page_bytes - w->buf.moved.bytes;
}

int mw_registry_keep_shadow(struct mw_owner *o, struct mw_watched *w)
{
    int wanted = !w->buf.contiguous ||
                 (o->capture_full_values && mw_owner_has_callback(o));
    if (!wanted || w->shadow)
        return 0;
    struct mw_watcher_stats s;
    mw_watcher_stats(o->core, &s);
    if (s.memory_used_bytes + o->shadow_bytes + o->moved_bytes + w->buf.span >
        s.memory_limit_bytes) {
        PyErr_Format(mw_MemoryLimitError,
                     "cannot watch '%U': keeping its value (%zu bytes) would exceed "
                     "max_memory_mb; raise the limit or use capture_full_values=False",
                     w->tag, w->buf.span);
        return -1;
    }
    w->shadow = malloc(w->buf.span ? w->buf.span : 1);
    if (!w->shadow) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(w->shadow, w->buf.start, w->buf.span);
    o->shadow_bytes += w->buf.span;
    return 0;
}

/* The view's shape and strides, for the object's record and its element layout. Returns
 * ndim, or -1 without a view or with more than MAX_DIMS dimensions (described as flat). */
static int view_shape(const Py_buffer *v, int64_t shape[MAX_DIMS], int64_t strides[MAX_DIMS])
{
    int ndim = v && v->ndim <= MAX_DIMS ? v->ndim : -1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = v->shape ? v->shape[i] : v->len / (v->itemsize ? v->itemsize : 1);
        strides[i] = v->strides ? v->strides[i] : v->itemsize;
    }
    return ndim;
}

static void send_object_record(const struct mw_watched *w)
{
    const Py_buffer *v = w->buf.has_view ? &w->buf.view : NULL;
    int64_t shape[MAX_DIMS], strides[MAX_DIMS];
    int ndim = view_shape(v, shape, strides);
    struct mw_rec_object rec = {
        .id = w->object_id,
        .tag = PyUnicode_AsUTF8(w->tag),
        .type_name = w->buf.type_name,
        .address = (uint64_t)(uintptr_t)w->buf.start,
        .size = w->buf.logical_size,
        .readonly = w->buf.readonly,
        .format = v ? (v->format ? v->format : "B") : NULL,
        .itemsize = v ? v->itemsize : 0,
        .ndim = ndim,
        .shape = ndim > 0 ? shape : NULL,
        .strides = ndim > 0 ? strides : NULL,
        .time_ns = mw_channel_now_ns(),
    };
    mw_channel_object(&rec);
}

/* Typed objects speak in elements (Change.elements, --on-nan); others have no layout. */
static void describe_elements(struct mw_watched *w)
{
    if (!w->buf.has_view)
        return;
    const Py_buffer *v = &w->buf.view;
    int64_t shape[MAX_DIMS], strides[MAX_DIMS];
    int ndim = view_shape(v, shape, strides);
    struct mw_elem_desc d = {v->format ? v->format : "B", w->buf.type_name, v->itemsize, ndim,
                             ndim > 0 ? shape : NULL, ndim > 0 ? strides : NULL,
                             w->buf.logical_size, w->buf.contiguous};
    if (mw_elem_layout_create(&d, &w->layout) != 0 || !mw_elem_layout_typed(w->layout)) {
        mw_elem_layout_destroy(w->layout);
        w->layout = NULL;
    }
}

int mw_registry_check_name(PyObject *tag)
{
    if (!PyUnicode_Check(tag)) {
        PyErr_Format(PyExc_TypeError, "name must be a str, not '%s'", Py_TYPE(tag)->tp_name);
        return -1;
    }
    /* The trace stores names as UTF-8 text: one that has no UTF-8 form, or a NUL that would
     * end it early, could not be stored exactly. */
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(tag, &len);
    if (!utf8) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "name %R cannot be stored: it is not valid Unicode text (a lone surrogate); "
                     "choose a name that encodes to UTF-8", tag);
        return -1;
    }
    if (memchr(utf8, '\0', (size_t)len)) {
        PyErr_Format(PyExc_ValueError,
                     "name %R cannot be stored: it contains a NUL character; choose a name "
                     "without one", tag);
        return -1;
    }
    return 0;
}

/* Why buf cannot be watched under tag, as a Python exception (0: it can). */
static int refuse(struct mw_owner *o, PyObject *tag, const struct mw_buffer *buf)
{
    if (mw_registry_check_name(tag) < 0)
        return -1;
    if (mw_registry_find(o, tag)) {
        PyErr_Format(PyExc_ValueError,
                     "'%U' is already watched: unwatch it first or choose another name", tag);
        return -1;
    }
    if (PyErr_Occurred())
        return -1;
    if (buf->span == 0) {
        PyErr_Format(PyExc_ValueError, "cannot watch '%U': the object is empty (0 bytes)", tag);
        return -1;
    }
    return 0;
}

/* Registers w with the engine and under its tag; on failure undoes what it did and drops
 * w. */
static int register_entry(struct mw_owner *o, struct mw_watched *w)
{
    /* The engine validates the range (mapped, not ours) before the shadow reads it. */
    int status = mw_watcher_watch(o->core, w->buf.start, w->buf.span, w, &w->region_id);
    if (status >= 0 && mw_registry_keep_shadow(o, w) < 0) {
        mw_watcher_unwatch(o->core, w->region_id, NULL, NULL);
        mw_registry_release(w);
        return -1;
    }
    if (status < 0) {
        const char *t = PyUnicode_AsUTF8(w->tag);
        char what[256];
        snprintf(what, sizeof what, "cannot watch '%s'", t ? t : "?");
        mw_registry_release(w);
        mw_raise_status(status, what);
        return -1;
    }
    PyObject *ptr = PyLong_FromVoidPtr(w);
    if (!ptr || PyDict_SetItem(o->by_tag, w->tag, ptr) < 0) {
        Py_XDECREF(ptr);
        mw_watcher_unwatch(o->core, w->region_id, NULL, NULL);
        if (w->shadow)
            o->shadow_bytes -= w->buf.span;
        mw_registry_release(w);
        return -1;
    }
    Py_DECREF(ptr);
    return 0;
}

/* A new entry for buf under tag in o, registered with the engine and listed; NULL with
 * an exception (buf consumed either way). */
static struct mw_watched *new_entry(struct mw_owner *o, PyObject *tag, struct mw_buffer *buf)
{
    if (refuse(o, tag, buf) < 0) {
        mw_buffer_release(buf);
        return NULL;
    }
    struct mw_watched *w = PyMem_RawCalloc(1, sizeof *w);
    if (!w) {
        mw_buffer_release(buf);
        PyErr_NoMemory();
        return NULL;
    }
    w->buf = *buf;
    w->tag = Py_NewRef(tag);
    w->owner = o;
    w->refs = 1;
    w->shared_slot = -1;
    if (register_entry(o, w) < 0)
        return NULL;
    describe_elements(w);
    o->moved_bytes += moved_waste(w);
    w->live = 1;
    if (++objects_now > objects_peak)
        objects_peak = objects_now;
    w->next = o->watched;
    o->watched = w;
    return w;
}

int mw_registry_add(struct mw_owner *o, PyObject *tag, struct mw_buffer *buf)
{
    struct mw_watched *w = new_entry(o, tag, buf);
    if (!w)
        return -1;
    w->object_id = mw_channel_next_object_id();
    /* Sent with the next check's records (or when the buffer fills): watching a million
     * objects must not cost a million hand-overs to the sender thread. */
    send_object_record(w);
    /* Memory other processes map too is watched there as well (shared_watch.c). */
    mw_shared_watch_publish(w);
    return 0;
}

int mw_registry_adopt(struct mw_owner *o, PyObject *tag, struct mw_buffer *buf,
                      uint64_t object_id)
{
    struct mw_watched *w = new_entry(o, tag, buf);
    if (!w)
        return -1;
    w->object_id = object_id;
    w->borrowed = 1;
    return 0;
}

/* Takes w out of o's list and its accounts; the list's reference stays the caller's. */
static void unlink_entry(struct mw_owner *o, struct mw_watched *w)
{
    for (struct mw_watched **p = &o->watched; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->next = NULL;
    w->live = 0;
    w->owner = NULL;
    objects_now--;
    if (w->shadow)
        o->shadow_bytes -= w->buf.span;
    o->moved_bytes -= moved_waste(w);
}

void mw_registry_detach(struct mw_owner *o, struct mw_watched *w)
{
    unlink_entry(o, w);
    mw_held_end(w);
    if (!w->borrowed) {
        mw_channel_unwatch(w->object_id);
        mw_shared_watch_retract(w);
    }
    mw_registry_release(w);
}

void mw_registry_drop_in_child(struct mw_owner *o, struct mw_watched *w)
{
    unlink_entry(o, w);
    if (PyDict_DelItem(o->by_tag, w->tag) < 0)
        PyErr_Clear();
    mw_registry_release(w);
}

int mw_registry_rewatch_in_child(struct mw_owner *o, struct mw_watched *w)
{
    /* The parent's object: its unwatch, not the child's, ends it (and, when the parent
     * published it, ends it here too: shared_watch.c). */
    w->borrowed = 1;
    w->hold = MW_HOLD_NEVER;   /* the writer's copy is the parent's */
    int status = mw_watcher_watch(o->core, w->buf.start, w->buf.span, w, &w->region_id);
    if (status >= 0)
        mw_shared_watch_rebind(w);
    return status;
}
