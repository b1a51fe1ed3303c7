/* The record stream's decoder (record.h), run in `memwatch trace`; the encoder is
 * record.c's.
 *
 * DESIGN: the decoder trusts nothing: every read is bounds-checked against the frame,
 * every count is checked against the bytes that could hold it before anything is
 * allocated, and the frame length is capped (MW_REC_MAX_FRAME), so malformed or truncated
 * input gives MW_EFORMAT, never a crash or a huge allocation. A decoding error is sticky:
 * the stream cannot be resynchronized. */
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "mw_grow.h"

#define NULL_LEN 0xFFFFFFFFu

/* ---- decoding ---- */

struct mw_rec_decoder {
    unsigned char *data;       /* fed bytes; [pos, len) not yet decoded */
    size_t len, cap, pos;
    size_t last;               /* where the frame returned last began */
    int error;                 /* sticky MW_EFORMAT */
    char *strings;             /* copies of the current frame's strings, NUL-terminated */
    size_t strings_cap, strings_len;
    int64_t shape[MW_REC_MAX_NDIM], strides[MW_REC_MAX_NDIM];
    struct mw_rec_range *ranges;
    size_t ranges_cap;
};

int mw_rec_decoder_create(mw_rec_decoder **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

void mw_rec_decoder_destroy(mw_rec_decoder *d)
{
    if (!d)
        return;
    free(d->data);
    free(d->strings);
    free(d->ranges);
    free(d);
}

void *mw_rec_decoder_space(mw_rec_decoder *d, size_t want)
{
    if (d->pos > 0) {
        memmove(d->data, d->data + d->pos, d->len - d->pos);
        d->len -= d->pos;
        d->pos = d->last = 0;
    }
    if (MW_GROW(d->data, d->cap, d->len + (want ? want : 1)) != 0)
        return NULL;
    return d->data + d->len;
}

void mw_rec_decoder_commit(mw_rec_decoder *d, size_t got)
{
    d->len += got;
}

int mw_rec_decoder_feed(mw_rec_decoder *d, const void *bytes, size_t len)
{
    void *room = mw_rec_decoder_space(d, len);
    if (!room)
        return -ENOMEM;
    if (len)
        memcpy(room, bytes, len);
    mw_rec_decoder_commit(d, len);
    return 0;
}

size_t mw_rec_decoder_pending(const mw_rec_decoder *d, int *partial_type)
{
    size_t n = d->len - d->pos;
    if (partial_type)
        *partial_type = n >= 5 ? d->data[d->pos + 4] : 0;
    return n;
}

/* A bounds-checked reader over one frame. Any short read sets bad. */
struct cursor {
    const unsigned char *p, *end;
    int bad;
    mw_rec_decoder *d;
};

static int need(struct cursor *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t load_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A little-endian field of the given width; 0 past the frame. */
static uint64_t get_le(struct cursor *c, int bytes)
{
    if (!need(c, (size_t)bytes))
        return 0;
    uint64_t v = load_le(c->p, bytes);
    c->p += bytes;
    return v;
}

static uint64_t get_u64(struct cursor *c)
{
    return get_le(c, 8);
}

static uint32_t get_u32(struct cursor *c)
{
    return (uint32_t)get_le(c, 4);
}

static unsigned get_u8(struct cursor *c)
{
    if (!need(c, 1))
        return 0;
    return *c->p++;
}

/* A string, copied NUL-terminated into the decoder's string area (sized for the frame). */
static const char *get_str(struct cursor *c)
{
    uint32_t n = get_u32(c);
    if (c->bad || n == NULL_LEN)
        return NULL;
    if (!need(c, n))
        return NULL;
    if (memchr(c->p, '\0', n)) {
        c->bad = 1;
        return NULL;
    }
    mw_rec_decoder *d = c->d;
    char *s = d->strings + d->strings_len;
    memcpy(s, c->p, n);
    s[n] = '\0';
    d->strings_len += (size_t)n + 1;
    c->p += n;
    return s;
}

/* A blob of exactly want bytes (or NULL when allowed); points into the frame. */
static const unsigned char *get_blob(struct cursor *c, uint64_t want, int null_ok)
{
    uint32_t n = get_u32(c);
    if (c->bad)
        return NULL;
    if (n == NULL_LEN) {
        if (!null_ok)
            c->bad = 1;
        return NULL;
    }
    if (n != want || !need(c, n)) {
        c->bad = 1;
        return NULL;
    }
    const unsigned char *p = c->p;
    c->p += n;
    return p;
}

static int get_ranges(struct cursor *c, uint32_t *nout, const struct mw_rec_range **out)
{
    mw_rec_decoder *d = c->d;
    uint32_t n = get_u32(c);
    /* Each range takes at least 24 bytes of the frame: check before allocating. */
    if (c->bad || (size_t)(c->end - c->p) / 24 < n)
        return MW_EFORMAT;
    if (MW_GROW(d->ranges, d->ranges_cap, n) != 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        struct mw_rec_range *g = &d->ranges[i];
        g->offset = get_u64(c);
        g->length = get_u64(c);
        if (g->offset + g->length < g->offset)
            c->bad = 1;
        g->old = get_blob(c, g->length, 1);
        g->new_ = get_blob(c, g->length, 0);
        if (c->bad)
            return MW_EFORMAT;
    }
    *nout = n;
    *out = n ? d->ranges : NULL;
    return 0;
}

static void decode_hello(struct cursor *c, struct mw_rec_hello *h)
{
    h->python_version = get_str(c);
    h->backend = get_str(c);
    h->pid = (int64_t)get_u64(c);
    h->page_size = (int64_t)get_u64(c);
    h->ppid = (int64_t)get_u64(c);
    h->start_unix_ns = (int64_t)get_u64(c);
    uint32_t n = get_u32(c);
    if (!need(c, n))
        return;
    /* The arguments, each NUL-terminated: a non-empty list ends with a NUL. */
    if (n && c->p[n - 1] != '\0') {
        c->bad = 1;
        return;
    }
    h->argv = (const char *)c->p;
    h->argv_len = n;
    c->p += n;
    h->flags = get_u32(c);
    h->inherited_ids = get_u64(c);
    h->inherited_seq = get_u64(c);
}

/* An optional array of dims values (see put_dims), decoded into into. */
static const int64_t *get_dims(struct cursor *c, int dims, int64_t *into)
{
    unsigned has = get_u8(c);
    if (has > 1 || (has && !dims))
        c->bad = 1;
    if (!has || c->bad)
        return NULL;
    for (int i = 0; i < dims; i++)
        into[i] = (int64_t)get_u64(c);
    return into;
}

static void decode_object(struct cursor *c, struct mw_rec_object *o)
{
    mw_rec_decoder *d = c->d;
    o->id = get_u64(c);
    o->tag = get_str(c);
    if (!c->bad && !o->tag)
        c->bad = 1;
    o->type_name = get_str(c);
    o->address = get_u64(c);
    o->size = get_u64(c);
    unsigned ro = get_u8(c);
    if (ro > 1)
        c->bad = 1;
    o->readonly = (int)ro;
    o->format = get_str(c);
    o->itemsize = (int64_t)get_u64(c);
    o->ndim = (int32_t)get_u32(c);
    if (o->ndim < -1 || o->ndim > MW_REC_MAX_NDIM)
        c->bad = 1;
    int dims = c->bad ? 0 : (o->ndim > 0 ? o->ndim : 0);
    o->shape = get_dims(c, dims, d->shape);
    o->strides = get_dims(c, dims, d->strides);
    o->time_ns = get_u64(c);
}

/* A frame's "more of this change follows" byte. */
static int get_more(struct cursor *c)
{
    unsigned more = get_u8(c);
    if (more > 1)
        c->bad = 1;
    return (int)more;
}

static int decode_change(struct cursor *c, struct mw_rec_change *ch)
{
    ch->seq = get_u64(c);
    ch->time_ns = get_u64(c);
    ch->object_id = get_u64(c);
    ch->thread_id = (int64_t)get_u64(c);
    ch->thread_name = get_str(c);
    ch->file = get_str(c);
    ch->line = (int32_t)get_u32(c);
    ch->function = get_str(c);
    ch->native_symbol = get_str(c);
    ch->native_library = get_str(c);
    ch->extent_lo = get_u64(c);
    ch->extent_hi = get_u64(c);
    if (ch->extent_lo > ch->extent_hi)
        c->bad = 1;
    ch->ordinal = get_u64(c);
    ch->old_held = get_more(c);   /* a 0/1 byte, like "more" */
    ch->more = get_more(c);
    return c->bad ? 0 : get_ranges(c, &ch->nranges, &ch->ranges);
}

/* A piece of a value: it must lie inside the value, at a multiple of MW_REC_VALUE_ALIGN. */
static void decode_value(struct cursor *c, struct mw_rec_value *v)
{
    v->object_id = get_u64(c);
    v->seq = get_u64(c);
    v->exact = get_more(c);   /* a 0/1 byte, like "more" */
    v->size = get_u64(c);
    v->offset = get_u64(c);
    uint32_t n = get_u32(c);
    v->length = n;
    if (c->bad || v->offset % MW_REC_VALUE_ALIGN != 0 || v->offset > v->size ||
        n > v->size - v->offset || (n == 0 && v->size != 0) || !need(c, n)) {
        c->bad = 1;
        return;
    }
    v->bytes = c->p;
    c->p += n;
}

static void decode_stats(struct cursor *c, struct mw_rec_stats *s)
{
    s->faults = get_u64(c);
    s->checks = get_u64(c);
    s->changes = get_u64(c);
    s->old_unavailable = get_u64(c);
    s->tracked_objects_peak = get_u64(c);
    s->changes_compared = get_u64(c);
    s->isolated_objects_peak = get_u64(c);
    s->isolated_pages_peak = get_u64(c);
    s->open_pages_peak = get_u64(c);
    s->short_of_memory = get_u64(c);
    s->lost_for_memory = get_u64(c);
}

static int decode_frame(mw_rec_decoder *d, const unsigned char *p, size_t n,
                        struct mw_rec_decoded *out)
{
    struct cursor c = {.p = p, .end = p + n, .d = d};
    /* Strings take at most (frame length) bytes including their NULs: each has a 4-byte
     * length in the frame but only one byte of terminator. */
    if (MW_GROW(d->strings, d->strings_cap, n) != 0)
        return -ENOMEM;
    d->strings_len = 0;
    memset(out, 0, sizeof(*out));
    unsigned type = get_u8(&c);
    out->type = (enum mw_record_type)type;
    int rc = 0;
    switch (type) {
    case MW_REC_HELLO:
        decode_hello(&c, &out->u.hello);
        break;
    case MW_REC_OBJECT:
        decode_object(&c, &out->u.object);
        break;
    case MW_REC_UNWATCH:
        out->u.unwatch.id = get_u64(&c);
        out->u.unwatch.time_ns = get_u64(&c);
        break;
    case MW_REC_CHANGE:
        rc = decode_change(&c, &out->u.change);
        break;
    case MW_REC_RANGES:
        out->u.ranges.seq = get_u64(&c);
        out->u.ranges.more = get_more(&c);
        if (!c.bad)
            rc = get_ranges(&c, &out->u.ranges.nranges, &out->u.ranges.ranges);
        break;
    case MW_REC_VALUE:
        decode_value(&c, &out->u.value);
        break;
    case MW_REC_STATS:
        decode_stats(&c, &out->u.stats);
        break;
    case MW_REC_END:
        out->u.end.status = (int64_t)get_u64(&c);
        out->u.end.time_ns = get_u64(&c);
        break;
    case MW_REC_LOST:
        out->u.lost.changes = get_u64(&c);
        out->u.lost.records = get_u64(&c);
        out->u.lost.bytes = get_u64(&c);
        break;
    default:
        return MW_EFORMAT;
    }
    if (rc)
        return rc;
    /* The frame must be consumed exactly: trailing bytes mean a different format. */
    if (c.bad || c.p != c.end)
        return MW_EFORMAT;
    return 0;
}

int mw_rec_decoder_next(mw_rec_decoder *d, struct mw_rec_decoded *out)
{
    if (d->error)
        return d->error;
    size_t avail = d->len - d->pos;
    if (avail < 4)
        return 0;
    const unsigned char *p = d->data + d->pos;
    uint32_t n = (uint32_t)load_le(p, 4);
    if (n == 0 || n > MW_REC_MAX_FRAME) {
        d->error = MW_EFORMAT;
        return d->error;
    }
    if (avail - 4 < n)
        return 0;
    int rc = decode_frame(d, p + 4, n, out);
    if (rc == MW_EFORMAT) {
        d->error = rc;
        return rc;
    }
    if (rc)
        return rc;
    d->last = d->pos;
    d->pos += 4 + (size_t)n;
    return 1;
}

void mw_rec_decoder_unget(mw_rec_decoder *d)
{
    d->pos = d->last;
}
