/* The path every change takes from the engine to the trace and to the script's callback.
 *
 * DESIGN: a check has two phases.
 *   1. harvest (harvest.c): mw_engine_check() runs under the engine lock and hands out
 *      changes; the collector only copies them into plain C memory (no Python object is
 *      made, so no garbage collection, finalizer or callback can run while the engine lock
 *      is held), as the trace's segments when only the trace will see them;
 *   2. route: with the engine lock released, each change gets its sequence number, goes to
 *      the trace, is shown to --on-nan, and is queued for its watcher's callback. A change
 *      only the trace sees goes straight from its segments to the record stream; one a
 *      callback sees gets its whole values and Change object first.
 * Under --values=full an object's whole value goes to the trace once, with its first change
 * (the base the trace decodes every later byte from: schemas/trace.sql, VALUES).
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
 * Both phases are memwatch's own work (mw_engine_own_work): their writes next to watched
 * bytes never use up a page's neighbour budget. A check a Python thread makes between its
 * line events (the check signal at the eval breaker, memwatch.check()) names what open
 * pages show after the line that thread is on, as its next line boundary would
 * (lines.c), not after nobody.
 *
 * When memory runs out (a lowered RLIMIT_AS, a full machine) a check degrades instead of
 * failing, so that the trace is never silently stale: a change whose old bytes cannot be
 * kept is recorded with its old value unavailable; one whose whole values cannot be built
 * for a callback is recorded for the trace alone (no Change for the callback); only a
 * change whose new bytes cannot be held at all, or a strided view's that cannot be
 * re-derived, is lost. Each shortfall is counted (mw_check_shortfall), stored in the trace
 * and stated at the end of the run; pages the engine could not take this time stay dirty
 * for the next check. No MemoryError reaches the script from a check for any of this. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "attribution.h"
#include "change.h"
#include "channel.h"
#include "config.h"
#include "diff.h"
#include "errors.h"
#include "harvest.h"
#include "held.h"
#include "lines.h"
#include "mw_error.h"
#include "mw_grow.h"
#include "on_nan.h"
#include "record.h"
#include "registry.h"
#include "shared_watch.h"

/* Changes recorded with less than usual for lack of memory, and changes lost for it (see
 * DESIGN); the GIL protects them. */
static uint64_t short_of_memory, lost_for_memory;

void mw_check_shortfall(uint64_t *short_out, uint64_t *lost_out)
{
    *short_out = short_of_memory;
    *lost_out = lost_for_memory;
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

/* The span's bytes before and after the change (its exact runs: harvest.h). With a shadow
 * they are exactly what the checks saw; without one, bytes the change did not touch come
 * from memory as it is now (for a callback's values, never for the trace). Both buffers
 * come from span_alloc(w->buf.span). */
static int build_spans(struct harvested *it, int sparse, unsigned char **old_out,
                       unsigned char **new_out, int *old_known)
{
    struct mw_watched *w = it->watched;
    const struct mw_rec_range *runs = it->exact;
    size_t nruns = it->nexact;
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
        for (size_t i = 0; i < nruns; i++) {
            const struct mw_rec_range *r = &runs[i];
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
    for (size_t i = 0; i < nruns; i++) {
        const struct mw_rec_range *r = &runs[i];
        memcpy(new_span + r->offset, r->new_, r->length);
        if (w->shadow)
            memcpy(w->shadow + r->offset, r->new_, r->length);
    }
    /* Bytes the change did not touch are the same before and after. */
    for (size_t i = 0; i < nruns; i++) {
        const struct mw_rec_range *r = &runs[i];
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
    uint64_t ordinal;              /* its number among the object's changes (held.h) */
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
    r->nranges = it->nexact;
    r->ranges = malloc((r->nranges ? r->nranges : 1) * sizeof *r->ranges);
    if (!r->ranges)
        return -1;
    memcpy(r->ranges, it->exact, r->nranges * sizeof *r->ranges);
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

/* ---- the object's base (--values=full) ----------------------------------------------- */

/* Objects whose base went to the trace (or could not), by object id: ids count from 1. */
static unsigned char *based;
static size_t based_cap;

/* 1 when ranges cover all size bytes of the object. */
static int covers_all(const struct mw_rec_range *ranges, size_t n, size_t size)
{
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].offset > end)
            return 0;
        if (ranges[i].offset + ranges[i].length > end)
            end = ranges[i].offset + ranges[i].length;
    }
    return end >= size;
}

/* 1 when the object's base is still to be sent; marks it sent. A first change that covers
 * the whole object leaves nothing for a base to tell: the trace keeps its old bytes. */
static int base_due(uint64_t object_id)
{
    if (!mw_run.traced || mw_run.values != MW_VALUES_FULL || object_id == 0)
        return 0;
    size_t byte = (size_t)(object_id / 8);
    if (byte >= based_cap) {
        size_t cap = based_cap ? based_cap : 64;
        while (cap <= byte)
            cap *= 2;
        unsigned char *p = realloc(based, cap);
        if (!p)
            return 0;   /* no room to remember: the trace stores old bytes instead */
        memset(p + based_cap, 0, cap - based_cap);
        based = p;
        based_cap = cap;
    }
    unsigned char bit = (unsigned char)(1u << (object_id % 8));
    if (based[byte] & bit)
        return 0;
    based[byte] |= bit;
    return 1;
}

/* Copies n bytes at src, which may no longer all be mapped (a raw range the program
 * unmapped): the kernel copies them, and says so instead of a fault when it cannot. 0 or
 * -1. */
static int copy_mapped(void *dst, const void *src, size_t n)
{
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return got >= 0 && (size_t)got == n ? 0 : -1;
}

/* Sends the object's whole value before change seq (size bytes in its own coordinates).
 * exact: every byte is what the check saw (see send_base_of_segments). */
static int send_base(const struct mw_watched *w, uint64_t seq, const unsigned char *value,
                     size_t size, int exact)
{
    struct mw_rec_value v = {.object_id = w->object_id, .seq = seq, .exact = exact,
                             .size = size, .bytes = value};
    return mw_channel_value(&v);
}

/* The base of a contiguous object at its first change, from what the harvest knows: the
 * object's bytes as they are, its segments' old bytes over them. Only when every old byte
 * is known: else the trace stores old bytes where it needs them. The bytes read from
 * memory are what the check saw unless another thread wrote them since (the GIL does not
 * stop numpy's threads): when the engine says no page was written since the check, even
 * after the copy, the base is exact, and the trace codes later changes against all of it;
 * else only against what changes brought. */
static int send_base_of_segments(const struct harvested *it, uint64_t seq)
{
    const struct mw_watched *w = it->watched;
    for (size_t i = 0; i < it->nranges; i++)
        if (!it->ranges[i].old)
            return 0;
    unsigned char *value = span_alloc(w->buf.span);
    if (!value)
        return 0;
    if (w->shadow || w->buf.object) {
        memcpy(value, w->shadow ? w->shadow : w->buf.start, w->buf.span);
    } else if (copy_mapped(value, w->buf.start, w->buf.span) != 0) {
        span_free(value, w->buf.span);   /* part of a raw range is gone: no base */
        return 0;
    }
    int exact = w->shadow != NULL || mw_engine_unwritten(w->buf.start, w->buf.span);
    for (size_t i = 0; i < it->nranges; i++)
        memcpy(value + it->ranges[i].offset, it->ranges[i].old, it->ranges[i].length);
    int sent = send_base(w, seq, value, w->buf.span, exact) == 0;
    span_free(value, w->buf.span);
    return exact && sent;
}

/* 1 when the ranges are the whole object, in order and apart: the writer then knows every
 * byte of its value after the change (held_values.h). */
static int covers_in_order(const struct mw_rec_range *ranges, size_t n, size_t size)
{
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].offset != end)
            return 0;
        end += ranges[i].length;
    }
    return end == size;
}

/* Who wrote the change, and its sequence number. -1 with an exception when the thread's
 * name cannot be had. */
static int attribute(struct routing *r)
{
    const struct mw_writer *wr = &r->it->writer;
    r->thread_name = mw_attribution_thread_name(wr->tid);
    if (!r->thread_name) {
        if (!PyErr_ExceptionMatches(PyExc_MemoryError))
            return -1;
        PyErr_Clear();               /* recorded without its thread's name (see DESIGN) */
        short_of_memory++;
        r->thread_name = Py_NewRef(Py_None);
    }
    r->has_native = mw_attribution_native_writer(wr->fault_ip, &r->native);
    r->seq = mw_channel_next_seq();
    return 0;
}

/* The change's record without its ranges: who wrote it, when, which object. */
static struct mw_rec_change change_head(const struct routing *r)
{
    const struct mw_writer *wr = &r->it->writer;
    return (struct mw_rec_change){
        .seq = r->seq,
        .ordinal = r->ordinal,
        .old_held = r->it->old_held,
        .time_ns = r->it->time_ns,
        .object_id = r->w->object_id,
        .thread_id = wr->tid,
        .thread_name = PyUnicode_Check(r->thread_name) ? PyUnicode_AsUTF8(r->thread_name) : NULL,
        .file = wr->file[0] ? wr->file : NULL,
        .line = wr->line,
        .function = wr->function[0] ? wr->function : NULL,
        .native_symbol = r->has_native ? r->native.symbol : NULL,
        .native_library = r->has_native ? r->native.library : NULL,
    };
}

/* Puts the change in the trace with ranges[0..n). 1 when it went, else 0. */
static int record(const struct routing *r, const struct mw_rec_range *ranges, size_t n)
{
    struct mw_rec_change rec = change_head(r);
    rec.nranges = (uint32_t)n;
    rec.ranges = ranges;
    int rc = mw_channel_change(&rec);
    if (rc == -ENOMEM)
        lost_for_memory++;
    return rc == 0;
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

/* Puts a contiguous object's change in the trace: its segments, or its frames as they
 * are when the harvest built them (the channel takes them: their bytes are gone after). */
static int record_segments(struct routing *r)
{
    struct harvested *it = r->it;
    if (!it->framed)
        return record(r, it->ranges, it->nranges);
    const struct mw_rec_range *last = &it->ranges[it->nranges - 1];
    struct mw_rec_change head = change_head(r);
    head.extent_lo = it->ranges[0].offset;
    head.extent_hi = last->offset + last->length;
    mw_rec_frames_finish(&it->frames, r->seq);
    int rc = mw_channel_change_frames(&head, &it->frames);
    if (rc == -ENOMEM)
        lost_for_memory++;
    return rc == 0;
}

/* A contiguous object's change: its segments go to the trace as they are (harvest.h), and
 * to --on-nan. When a callback looks at it, its Change gets its exact runs and whole
 * values. Whatever reads the segments' bytes runs before they go to the trace (which may
 * take them). 1, or -1 with an exception. */
static int route_segments(struct routing *r)
{
    struct harvested *it = r->it;
    struct mw_watched *w = r->w;
    if (attribute(r) < 0)
        return -1;
    r->ordinal = mw_held_count_change(w);
    int established;
    if (base_due(w->object_id) && !covers_all(it->ranges, it->nranges, w->buf.span))
        established = send_base_of_segments(it, r->seq);
    else
        established = covers_in_order(it->ranges, it->nranges, w->buf.span);
    int status = 1;
    if (w->owner && mw_owner_has_callback(w->owner)) {
        if (!it->exact || make_values(r) < 0 || make_ranges(r) < 0) {
            short_of_memory++;      /* the trace still gets it (see DESIGN) */
            w->owner->found++;
        } else {
            struct mw_change_info info = change_info(r);
            mw_on_nan_note(&info);
            status = queue_for_owner(r, &info);
        }
    } else {
        if (mw_run.on_nan != MW_ON_NAN_OFF) {
            /* Segments are whole elements: each decodes without the rest of the value. */
            int old_known = 1;
            for (size_t i = 0; i < it->nranges; i++)
                old_known &= it->ranges[i].old != NULL;
            struct mw_change_info info = {
                .tag = w->tag, .layout = w->layout, .old_known = old_known,
                .ranges = it->ranges, .nranges = it->nranges, .writer = &it->writer,
                .thread_name = r->thread_name, .seq = r->seq, .time_ns = it->time_ns,
            };
            mw_on_nan_note(&info);
        }
        if (w->owner)
            w->owner->found++;
    }
    mw_held_sent(w, r->ordinal, record_segments(r), established);
    return status;
}

/* A strided view's change: re-derived in the view's own coordinates from its values
 * (built from its shadow, so exactly what the checks saw), widened to whole elements for
 * the trace. 1, 0 when there was nothing to route (only bytes between a view's elements
 * changed), -1 with an exception. */
static int route_view(struct routing *r)
{
    if (make_values(r) < 0 || make_ranges(r) < 0) {
        lost_for_memory++;          /* its elements cannot be named without them */
        return 0;
    }
    if (r->nranges == 0)
        return 0;
    if (widen_to_elements(r) < 0) {
        lost_for_memory++;
        return 0;
    }
    if (attribute(r) < 0)
        return -1;
    const struct mw_rec_range *ranges = r->whole ? r->whole : r->ranges;
    size_t n = r->whole ? r->nwhole : r->nranges;
    if (base_due(r->w->object_id) && r->old_known &&
        !covers_all(ranges, n, r->w->buf.logical_size))
        send_base(r->w, r->seq, r->old_val, r->w->buf.logical_size, 1);   /* from its shadow */
    record(r, ranges, n);
    struct mw_change_info info = change_info(r);
    mw_on_nan_note(&info);
    return queue_for_owner(r, &info);
}

/* 1 when the change was routed, 0 when there was nothing to route, -1 with an exception. */
static int route(struct harvested *it)
{
    if (it->segments && it->nranges == 0)
        return 0;
    struct routing r = {.it = it, .w = it->watched, .old_known = 1};
    int status = it->segments ? route_segments(&r) : route_view(&r);
    routing_free(&r);
    return status;
}

/* ---- one check at a time ---------------------------------------------------------- */

/* The thread whose check is running; check_done signals its end. Set with the GIL held,
 * cleared with it and check_lock, read with either (atomically). A check lets go of the
 * GIL while it waits for the channel, so its end may come between another thread's look at
 * checking_thread and its wait: the wait looks again under check_lock, or that end's
 * signal would be missed. */
static unsigned long checking_thread;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t check_done = PTHREAD_COND_INITIALIZER;

/* 1 when this thread may check now (see DESIGN), 0 when it must not. */
static int begin_check(int automatic)
{
    unsigned long me = PyThread_get_thread_ident();
    unsigned long now = __atomic_load_n(&checking_thread, __ATOMIC_ACQUIRE);
    if (now == me || (now && automatic))
        return 0;
    while (__atomic_load_n(&checking_thread, __ATOMIC_ACQUIRE)) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&check_lock);
        while (__atomic_load_n(&checking_thread, __ATOMIC_ACQUIRE))
            pthread_cond_wait(&check_done, &check_lock);
        pthread_mutex_unlock(&check_lock);
        Py_END_ALLOW_THREADS
    }
    __atomic_store_n(&checking_thread, me, __ATOMIC_RELEASE);
    return 1;
}

void mw_check_after_fork(void)
{
    /* The check another thread had under way when this process forked (its GIL let go
     * while it waited for the channel) is not this child's: that thread is not here to end
     * it, and every check of the child would wait for it forever. */
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_done = PTHREAD_COND_INITIALIZER;
    check_lock = fresh_lock;
    check_done = fresh_done;
    checking_thread = 0;
}

static void end_check(void)
{
    pthread_mutex_lock(&check_lock);
    __atomic_store_n(&checking_thread, 0, __ATOMIC_RELEASE);
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
            if (r < 0) {
                failed = 1;
                mw_held_end(h->items[i].watched);   /* it may not have been sent */
            } else {
                found += r;
            }
        } else {
            mw_held_end(h->items[i].watched);   /* not sent: the writer's copy would miss it */
        }
        mw_harvest_free_item(&h->items[i]);
    }
    mw_harvest_end(h);
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
    struct harvest h;
    mw_harvest_begin(&h);
    int status;
    mw_engine_own_work(1);
    /* The trace takes dense changes as segments (harvest.h): the engine need not cut them
     * at every unchanged byte. */
    static int gap_set;
    if (!gap_set) {
        mw_engine_set_coalesce_gap(MW_SEGMENT_GAP);
        gap_set = 1;
    }
    if (core) {
        status = mw_watcher_unwatch(core, region_id, mw_harvest_collect, &h);
        *unwatch_status = status;
        if (status == MW_ENOENT)
            status = 0;
    } else {
        /* A check in a Python thread between its line events (the check signal at the eval
         * breaker, memwatch.check()): what open pages show was written by the line this
         * thread is on, as its next line boundary would have found (lines.c). */
        struct mw_writer here;
        if (!line_writer && mw_lines_running_here(&here))
            line_writer = &here;
        status = mw_engine_check_line(mw_harvest_collect, &h, line_writer);
    }
    Py_ssize_t found = route_all(&h);
    mw_attribution_forget_thread_names();
    mw_channel_flush();
    mw_engine_own_work(0);
    end_check();
    short_of_memory += h.short_of_memory;
    lost_for_memory += h.lost;
    if (status == -ENOMEM) {
        /* Pages the engine could not take this time stay dirty for the next check. */
        short_of_memory++;
        status = 0;
    }
    if (found < 0)
        return -1;
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
    mw_shared_watch_adopt();
    return check_and_route(automatic, NULL, 0, NULL, NULL);
}

Py_ssize_t mw_check_line(const struct mw_writer *line_writer)
{
    mw_shared_watch_adopt();
    return check_and_route(0, NULL, 0, NULL, line_writer);
}

Py_ssize_t mw_check_unwatch(mw_watcher *core, uint64_t region_id, int *unwatch_status)
{
    return check_and_route(0, core, region_id, unwatch_status, NULL);
}
