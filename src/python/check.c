/* The path every change takes from the engine to the trace and to the script's callback.
 *
 * DESIGN: a check has two phases.
 *   1. harvest: mw_engine_check() runs under the engine lock and hands out changes; the
 *      collector only copies them into plain C memory (no Python object is made, so no
 *      garbage collection, finalizer or callback can run while the engine lock is held);
 *   2. route: with the engine lock released, each change gets its sequence number, goes to
 *      the trace, is shown to --on-nan, and is queued for its watcher's callback.
 * Callbacks do not run here: check_changes() delivers what is queued (watcher_object.c), so
 * automatic checks (--check) only record into the trace and queue.
 *
 * Routing runs Python code (thread names, Change objects), where the eval breaker may run an
 * automatic check in the same thread, or another thread may take the GIL and check. Checks
 * must not overlap, or newer changes would be routed before older ones:
 *   - a check nested in the same thread finds nothing now; the pages stay dirty for the next;
 *   - an automatic check while another thread checks is skipped for the same reason;
 *   - an explicit check (check_changes, unwatch, the end) waits for the other thread's check
 *     to finish, with the GIL released, so that it sees every write made before it.
 * Everything here runs with the GIL held.
 *
 * When memory runs out (a lowered RLIMIT_AS, a full machine) a check degrades instead of
 * failing, so that the trace is never silently stale: a change whose old bytes cannot be
 * kept is recorded with its old value unavailable; one whose whole value cannot be built
 * is recorded from its changed ranges alone (no elements widened, no --on-nan, no Change
 * for the callback); only a change whose new bytes cannot be held at all is lost. Each
 * shortfall is counted (mw_check_shortfall), stored in the trace and stated at the end of
 * the run; pages the engine could not take this time stay dirty for the next check. No
 * MemoryError reaches the script from a check for any of this. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "attribution.h"
#include "change.h"
#include "channel.h"
#include "diff.h"
#include "errors.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "on_nan.h"
#include "record.h"
#include "registry.h"

/* ---- phase 1: harvest ------------------------------------------------------------ */

struct harvested_range {
    size_t offset, length;
    unsigned char *old;   /* NULL: old value unavailable */
    unsigned char *new_;
};

struct harvested {
    struct mw_watched *watched;   /* held until the change is routed */
    size_t nranges;
    struct harvested_range *ranges;
    struct mw_writer writer;
    uint64_t time_ns;
};

struct harvest {
    struct harvested *items;
    size_t n, cap;
};

/* Changes recorded with less than usual for lack of memory, and changes lost for it (see
 * DESIGN). Protected by the engine lock while harvesting, by the GIL while routing. */
static uint64_t short_of_memory, lost_for_memory;

void mw_check_shortfall(uint64_t *short_out, uint64_t *lost_out)
{
    *short_out = short_of_memory;
    *lost_out = lost_for_memory;
}

/* Copies one range: 0; 1 when its old bytes could not be kept (old is NULL then); -1 with
 * nothing allocated when its new bytes could not. */
static int copy_range(const struct mw_range *r, struct harvested_range *hr)
{
    hr->offset = r->offset;
    hr->length = r->length;
    hr->new_ = malloc(r->length ? r->length : 1);
    if (!hr->new_)
        return -1;
    memcpy(hr->new_, r->new_, r->length);
    hr->old = r->old ? malloc(r->length ? r->length : 1) : NULL;
    if (!hr->old)
        return r->old ? 1 : 0;
    memcpy(hr->old, r->old, r->length);
    return 0;
}

static void harvested_free(struct harvested *it);

/* The engine's callback, under the engine lock: plain C memory only (see DESIGN). */
static void collect(const struct mw_change *c, void *ctx)
{
    struct harvest *h = ctx;
    if (MW_GROW(h->items, h->cap, h->n + 1) != 0) {
        lost_for_memory++;
        return;
    }
    struct harvested *it = &h->items[h->n];
    memset(it, 0, sizeof *it);
    it->ranges = calloc(c->nranges ? c->nranges : 1, sizeof *it->ranges);
    if (!it->ranges) {
        lost_for_memory++;
        return;
    }
    int short_old = 0;
    for (size_t i = 0; i < c->nranges; i++) {
        int copied = copy_range(&c->ranges[i], &it->ranges[i]);
        if (copied < 0) {
            it->nranges = i;
            harvested_free(it);
            lost_for_memory++;
            return;
        }
        short_old |= copied;
    }
    short_of_memory += (uint64_t)short_old;
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
    unsigned char *old_span = span_alloc(w->buf.span), *new_span = span_alloc(w->buf.span);
    if (!old_span || !new_span) {
        span_free(old_span, w->buf.span);
        span_free(new_span, w->buf.span);
        return -1;
    }
    if (sparse) {
        /* Only the bytes around each range are filled in (a whole element on each side,
         * for element alignment); calloc'd pages that are never touched cost nothing, so a
         * one-element change of a large array costs what the element does. */
        size_t window = w->buf.has_view && w->buf.view.itemsize > 0 ? (size_t)w->buf.view.itemsize : 1;
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

/* One change on its way from the harvest to the trace and the callback's queue. */
struct routing {
    struct harvested *it;
    struct mw_watched *w;
    /* The span before and after (build_spans), and the value in the object's coordinates.
     * For a contiguous object the span is the value: old_val/new_val are the spans then
     * (vals_are_spans) and old_span/new_span stay NULL. */
    unsigned char *old_span, *new_span, *old_val, *new_val;
    int vals_are_spans, old_known;
    struct mw_rec_range *ranges;   /* changed ranges of the value */
    size_t nranges;
    struct mw_rec_range *whole;    /* the same widened to whole elements; NULL: as ranges */
    size_t nwhole;
    PyObject *thread_name;
    struct mw_native_writer native;
    int has_native;
    uint64_t seq;
    struct mw_rec_range lean_ranges[16];   /* route_lean's, when memory ran out */
};

static void routing_free(struct routing *r)
{
    size_t span = r->w->buf.span;
    Py_XDECREF(r->thread_name);
    free(r->ranges);
    free(r->whole);
    span_free(r->old_span, span);
    span_free(r->new_span, span);
    if (r->vals_are_spans) {
        span_free(r->old_val, span);
        span_free(r->new_val, span);
    } else {
        free(r->old_val);
        free(r->new_val);
    }
}

/* The old and new value. Whole values only when someone looks at them: a callback
 * (Change.old_value, ...) or a strided view (whose changes are re-derived in its own
 * coordinates); otherwise only the bytes around the changed ranges are filled in. */
static int make_values(struct routing *r)
{
    const struct mw_buffer *b = &r->w->buf;
    int full = !b->contiguous || (r->w->owner && mw_owner_has_callback(r->w->owner));
    if (build_spans(r->it, !full, &r->old_span, &r->new_span, &r->old_known) < 0)
        return -1;
    if (b->contiguous) {   /* the span is the value: no second copy */
        r->old_val = r->old_span;
        r->new_val = r->new_span;
        r->old_span = r->new_span = NULL;
        r->vals_are_spans = 1;
        return 0;
    }
    r->old_val = gather_value(b, r->old_span);
    r->new_val = r->old_val ? gather_value(b, r->new_span) : NULL;
    return r->new_val ? 0 : -1;
}

/* The changed ranges in the value's coordinates: the engine's own for a contiguous object,
 * re-derived from the values for a strided view. */
static int make_ranges(struct routing *r)
{
    const struct harvested *it = r->it;
    if (!r->w->buf.contiguous) {
        if (logical_ranges(r->w->buf.logical_size, r->old_val, r->new_val, &r->ranges,
                           &r->nranges) < 0)
            return -1;
        if (!r->old_known)   /* unknown old bytes: the whole value is in doubt */
            for (size_t i = 0; i < r->nranges; i++)
                r->ranges[i].old = NULL;
        return 0;
    }
    r->nranges = it->nranges;
    r->ranges = malloc((r->nranges ? r->nranges : 1) * sizeof *r->ranges);
    if (!r->ranges)
        return -1;
    for (size_t i = 0; i < r->nranges; i++)
        r->ranges[i] = (struct mw_rec_range){it->ranges[i].offset, it->ranges[i].length,
                                             it->ranges[i].old, it->ranges[i].new_};
    return 0;
}

/* The trace gets whole elements, so that its readers can decode each changed one without
 * the rest of the object (elements.h); the bytes are in old_val/new_val. Where they cannot
 * be widened the trace gets the ranges as they are. */
static int widen_to_elements(struct routing *r)
{
    const struct mw_buffer *b = &r->w->buf;
    size_t itemsize = b->has_view && b->view.itemsize > 1 ? (size_t)b->view.itemsize : 1;
    if (itemsize <= 1)
        return 0;
    if (!(r->whole = malloc(r->nranges * sizeof *r->whole)))
        return -1;
    if (mw_elem_align_ranges(itemsize, r->ranges, r->nranges, r->old_val, r->new_val,
                             b->logical_size, r->whole, &r->nwhole) != 0) {
        free(r->whole);
        r->whole = NULL;
    }
    return 0;
}

/* Attributes the change and puts it in the trace, under the next sequence number. -1 with
 * an exception when the thread's name cannot be had; lean (memory ran out): without it. */
static int record(struct routing *r, int lean)
{
    const struct mw_writer *wr = &r->it->writer;
    r->thread_name = mw_attribution_thread_name(wr->tid);
    if (!r->thread_name && !lean)
        return -1;
    PyErr_Clear();
    r->has_native = mw_attribution_native_writer(wr->fault_ip, &r->native);
    r->seq = mw_channel_next_seq();
    struct mw_rec_change rec = {
        .seq = r->seq,
        .time_ns = r->it->time_ns,
        .object_id = r->w->object_id,
        .thread_id = wr->tid,
        .thread_name = r->thread_name && PyUnicode_Check(r->thread_name)
                           ? PyUnicode_AsUTF8(r->thread_name) : NULL,
        .file = wr->file[0] ? wr->file : NULL,
        .line = wr->line,
        .function = wr->function[0] ? wr->function : NULL,
        .native_symbol = r->has_native ? r->native.symbol : NULL,
        .native_library = r->has_native ? r->native.library : NULL,
        .nranges = (uint32_t)(r->whole ? r->nwhole : r->nranges),
        .ranges = r->whole ? r->whole : r->ranges,
    };
    if (mw_channel_change(&rec) == -ENOMEM)
        lost_for_memory++;
    PyErr_Clear();
    return 0;
}

static struct mw_change_info change_info(const struct routing *r)
{
    return (struct mw_change_info){
        .tag = r->w->tag,
        .layout = r->w->layout,
        .value_size = r->w->buf.logical_size,
        .old_value = r->old_val,
        .new_value = r->new_val,
        .old_known = r->old_known,
        .ranges = r->ranges,
        .nranges = r->nranges,
        .writer = &r->it->writer,
        .thread_name = r->thread_name,
        .native_symbol = r->has_native ? r->native.symbol : NULL,
        .native_library = r->has_native ? r->native.library : NULL,
        .seq = r->seq,
        .time_ns = r->it->time_ns,
    };
}

/* Counts the change for its watcher (if it still has one) and queues a Change for the
 * callback. 1, or -1 with an exception. */
static int queue_for_owner(const struct routing *r, const struct mw_change_info *info)
{
    struct mw_owner *owner = r->w->owner;
    if (!owner)
        return 1;
    owner->found++;
    if (!mw_owner_has_callback(owner))
        return 1;
    PyObject *change = mw_change_new(info, owner->capture_full_values);
    int status = change && PyList_Append(owner->pending, change) == 0 ? 1 : -1;
    Py_XDECREF(change);
    return status;
}

/* Whole elements for route_lean, in memory that needs no allocation (the GIL protects
 * it): the bytes of an element the change did not touch are the same before and after, and
 * come from the object as build_spans takes them. Ranges that do not fit stay as found. */
static unsigned char lean_old[64 << 10], lean_new[64 << 10];

static void lean_widen(struct routing *r)
{
    const struct mw_buffer *b = &r->w->buf;
    size_t item = b->has_view && b->view.itemsize > 1 ? (size_t)b->view.itemsize : 1;
    const unsigned char *src = r->w->shadow ? r->w->shadow : b->start;
    size_t used = 0, k = 0;
    for (size_t i = 0; i < r->nranges; i++) {
        struct mw_rec_range x = r->ranges[i];
        size_t lo = x.offset / item * item, hi = (x.offset + x.length + item - 1) / item * item;
        if (hi > b->logical_size)
            hi = b->logical_size;
        struct mw_rec_range *prev = k ? &r->ranges[k - 1] : NULL;
        int join = prev && prev->new_ == lean_new + used - prev->length &&
                   lo < prev->offset + prev->length;
        size_t from = join ? prev->offset + prev->length : lo;
        size_t extra = hi > from ? hi - from : 0;
        if (item == 1 || used + extra > sizeof lean_new) {
            r->ranges[k++] = x;
            continue;
        }
        memcpy(lean_old + used, src + from, extra);
        memcpy(lean_new + used, src + from, extra);
        used += extra;
        if (!join) {
            prev = &r->ranges[k++];
            *prev = (struct mw_rec_range){lo, 0, lean_old + used - extra, lean_new + used - extra};
        }
        if (hi > prev->offset + prev->length)
            prev->length = hi - prev->offset;
        memcpy((unsigned char *)prev->new_ + (x.offset - prev->offset), x.new_, x.length);
        if (x.old && prev->old)
            memcpy((unsigned char *)prev->old + (x.offset - prev->offset), x.old, x.length);
        else
            prev->old = NULL;
    }
    r->nranges = k;
}

/* A change whose values could not be built for lack of memory goes to the trace as the
 * engine found it, widened to whole elements where it can be: the ranges of a contiguous
 * object are already in its own coordinates. A strided view's are not (they would name
 * the wrong elements): it is lost. */
static int route_lean(struct routing *r)
{
    const struct harvested *it = r->it;
    if (!r->w->buf.contiguous) {
        lost_for_memory++;
        return 0;
    }
    short_of_memory++;
    free(r->ranges);
    free(r->whole);
    r->whole = NULL;
    r->nranges = it->nranges;
    r->ranges = it->nranges <= 16 ? r->lean_ranges : malloc(it->nranges * sizeof *r->ranges);
    if (!r->ranges) {
        lost_for_memory++;
        return 0;
    }
    for (size_t i = 0; i < it->nranges; i++)
        r->ranges[i] = (struct mw_rec_range){it->ranges[i].offset, it->ranges[i].length,
                                             it->ranges[i].old, it->ranges[i].new_};
    lean_widen(r);
    record(r, 1);
    if (r->ranges == r->lean_ranges)
        r->ranges = NULL;
    if (r->w->owner)
        r->w->owner->found++;
    return 1;
}

/* 1 when the change was routed, 0 when there was nothing to route (only bytes between a
 * view's elements changed), -1 with an exception. */
static int route(struct harvested *it)
{
    struct routing r = {.it = it, .w = it->watched, .old_known = 1};
    int status = -1;
    if (make_values(&r) < 0 || make_ranges(&r) < 0) {
        status = route_lean(&r);
        goto out;
    }
    if (r.nranges == 0) {
        status = 0;
        goto out;
    }
    if (widen_to_elements(&r) < 0) {
        status = route_lean(&r);
        goto out;
    }
    if (record(&r, 0) < 0)
        goto out;
    struct mw_change_info info = change_info(&r);
    mw_on_nan_note(&info);
    status = queue_for_owner(&r, &info);
out:
    routing_free(&r);
    return status;
}

/* ---- one check at a time ---------------------------------------------------------- */

/* The thread whose check is running (protected by the GIL); check_done signals its end. */
static unsigned long checking_thread;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t check_done = PTHREAD_COND_INITIALIZER;

/* 1 when this thread may check now (see DESIGN), 0 when it must not. */
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

/* Routes what was harvested, in order, and frees it. Returns the number of changes routed,
 * or -1 with an exception (the rest is freed unrouted). */
static Py_ssize_t route_all(struct harvest *h)
{
    Py_ssize_t found = 0;
    int failed = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!failed) {
            int r = route(&h->items[i]);
            if (r < 0)
                failed = 1;
            else
                found += r;
        }
        harvested_free(&h->items[i]);
    }
    free(h->items);
    return failed ? -1 : found;
}

/* A check, or (core non-NULL) the check an unwatch of region_id runs before it forgets the
 * region: its changes, of every region, are routed like any check's. *unwatch_status gets
 * the unwatch's own status. */
static Py_ssize_t check_and_route(int automatic, mw_watcher *core, uint64_t region_id,
                                  int *unwatch_status, const struct mw_writer *line_writer)
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
        status = mw_engine_check_line(collect, &h, line_writer);
    }
    Py_ssize_t found = route_all(&h);
    mw_attribution_forget_thread_names();
    mw_channel_flush();
    end_check();
    if (found < 0)
        return -1;
    if (status == -ENOMEM) {
        /* Pages the engine could not take this time stay dirty for the next check. */
        short_of_memory++;
        status = 0;
    }
    if (status < 0) {
        mw_raise_status(status, "check failed");
        return -1;
    }
    return found;
}

Py_ssize_t mw_check_all(void)
{
    return mw_check_all_ex(0);
}

Py_ssize_t mw_check_all_ex(int automatic)
{
    return check_and_route(automatic, NULL, 0, NULL, NULL);
}

Py_ssize_t mw_check_line(const struct mw_writer *line_writer)
{
    return check_and_route(0, NULL, 0, NULL, line_writer);
}

Py_ssize_t mw_check_unwatch(mw_watcher *core, uint64_t region_id, int *unwatch_status)
{
    return check_and_route(0, core, region_id, unwatch_status, NULL);
}
