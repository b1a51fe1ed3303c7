/* The record stream: encoder (runs in the traced process) and decoder (runs in
 * `memwatch trace`). No SQLite here: the traced process's library links only this file.
 *
 * DESIGN: a frame is `u32 length, u8 type, payload` (record.h). The decoder trusts nothing:
 * every read is bounds-checked against the frame, every count is checked against the bytes
 * that could hold it before anything is allocated, and the frame length is capped
 * (MW_REC_MAX_FRAME), so malformed or truncated input gives MW_EFORMAT, never a crash or a
 * huge allocation. A decoding error is sticky: the stream cannot be resynchronized. */
#include "record.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "map_cache.h"
#include "mw_error.h"
#include "mw_grow.h"

#define NULL_LEN 0xFFFFFFFFu
/* Bytes of range data (old + new) per frame before a change is split. */
#define FRAME_DATA_BUDGET (16u << 20)
/* Room for a frame's fixed fields and strings: header + data budget + 24 bytes per
 * piece (at most 65536 pieces per frame) stays below MW_REC_MAX_FRAME. */
#define FRAME_HEADER_MAX (8u << 20)

/* ---- encoding ---- */

/* Buffers of at least this many bytes are mappings of their own, not heap memory. The
 * traced process's heap holds the script's own objects, watched ones among them: a large
 * heap buffer of ours freed and reused next to a watched array would write malloc's
 * bookkeeping onto the array's pages, and such neighbour writes cost the engine its
 * attribution of the page (fault_path.c). Mappings also go back to the system at once. */
#define MAPPED_MIN ((size_t)64 << 10)

void mw_rec_buf_free(struct mw_rec_buf *b)
{
    if (!b)
        return;
    if (b->mapped)
        mw_map_give(b->data, b->cap);
    else
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->mapped = 0;
}

static int reserve(struct mw_rec_buf *b, size_t n)
{
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    if (need < MAPPED_MIN && !b->mapped)
        return MW_GROW(b->data, b->cap, need);
    size_t cap = b->cap >= MAPPED_MIN ? b->cap : MAPPED_MIN;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    void *p;
    if (b->mapped) {
        p = mremap(b->data, b->cap, cap, MREMAP_MAYMOVE);
    } else {
        p = mw_map_take(cap, &cap);
        if (p && b->len)
            memcpy(p, b->data, b->len);
        if (p)
            free(b->data);
    }
    if (!p || p == MAP_FAILED)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    b->mapped = 1;
    return 0;
}

/* Little-endian fields, stored at p. */
static void store_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Callers reserve first; these only store. */
static void put_bytes(struct mw_rec_buf *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u8(struct mw_rec_buf *b, unsigned v)
{
    b->data[b->len++] = (unsigned char)v;
}

static void put_u32(struct mw_rec_buf *b, uint32_t v)
{
    store_le(b->data + b->len, v, 4);
    b->len += 4;
}

static void put_u64(struct mw_rec_buf *b, uint64_t v)
{
    store_le(b->data + b->len, v, 8);
    b->len += 8;
}

static void put_str(struct mw_rec_buf *b, const char *s)
{
    if (!s) {
        put_u32(b, NULL_LEN);
        return;
    }
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put_bytes(b, s, n);
}

static size_t str_size(const char *s)
{
    return 4 + (s ? strlen(s) : 0);
}

/* Starts a frame; returns the offset of its length field. */
static size_t frame_begin(struct mw_rec_buf *b, enum mw_record_type type)
{
    size_t at = b->len;
    put_u32(b, 0);
    put_u8(b, type);
    return at;
}

/* Makes room for a frame of need bytes (MW_EINVAL when its strings make it too long) and
 * starts it; *at is for frame_end. */
static int frame_open(struct mw_rec_buf *b, enum mw_record_type type, size_t need, size_t *at)
{
    if (need > FRAME_HEADER_MAX)
        return MW_EINVAL;
    int rc = reserve(b, need);
    if (rc)
        return rc;
    *at = frame_begin(b, type);
    return 0;
}

static void frame_end(struct mw_rec_buf *b, size_t at)
{
    store_le(b->data + at, (uint32_t)(b->len - at - 4), 4);
}

/* An optional array of dims values: a presence byte, then the values. */
static void put_dims(struct mw_rec_buf *b, size_t dims, const int64_t *v)
{
    put_u8(b, dims && v ? 1 : 0);
    if (dims && v)
        for (size_t i = 0; i < dims; i++)
            put_u64(b, (uint64_t)v[i]);
}

static int encode_u64s(struct mw_rec_buf *b, enum mw_record_type type, const uint64_t *v,
                       size_t n);

int mw_rec_encode_hello(struct mw_rec_buf *b, const struct mw_rec_hello *r)
{
    size_t at;
    int rc = frame_open(b, MW_REC_HELLO,
                        5 + str_size(r->python_version) + str_size(r->backend) + 16 + 16 + 4 +
                            r->argv_len + 4 + 16,
                        &at);
    if (rc)
        return rc;
    put_str(b, r->python_version);
    put_str(b, r->backend);
    put_u64(b, (uint64_t)r->pid);
    put_u64(b, (uint64_t)r->page_size);
    put_u64(b, (uint64_t)r->ppid);
    put_u64(b, (uint64_t)r->start_unix_ns);
    put_u32(b, r->argv_len);
    put_bytes(b, r->argv, r->argv_len);
    put_u32(b, r->flags);
    put_u64(b, r->inherited_ids);
    put_u64(b, r->inherited_seq);
    frame_end(b, at);
    return 0;
}

int mw_rec_encode_end(struct mw_rec_buf *b, const struct mw_rec_end *r)
{
    const uint64_t v[] = {(uint64_t)r->status, r->time_ns};
    return encode_u64s(b, MW_REC_END, v, 2);
}

int mw_rec_encode_lost(struct mw_rec_buf *b, const struct mw_rec_lost *r)
{
    const uint64_t v[] = {r->changes, r->records, r->bytes};
    return encode_u64s(b, MW_REC_LOST, v, 3);
}

size_t mw_rec_frame_size(const unsigned char *data, size_t len)
{
    if (len < 4)
        return 0;
    return 4 + (size_t)(data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                        (uint32_t)data[3] << 24);
}

int mw_rec_encode_object(struct mw_rec_buf *b, const struct mw_rec_object *r)
{
    if (!r->tag || r->ndim < -1 || r->ndim > MW_REC_MAX_NDIM)
        return MW_EINVAL;
    size_t dims = r->ndim > 0 ? (size_t)r->ndim : 0;
    size_t at;
    int rc = frame_open(b, MW_REC_OBJECT,
                        5 + 8 + str_size(r->tag) + str_size(r->type_name) + 8 + 8 + 1 +
                            str_size(r->format) + 8 + 4 + 2 + 16 * dims + 8,
                        &at);
    if (rc)
        return rc;
    put_u64(b, r->id);
    put_str(b, r->tag);
    put_str(b, r->type_name);
    put_u64(b, r->address);
    put_u64(b, r->size);
    put_u8(b, r->readonly ? 1 : 0);
    put_str(b, r->format);
    put_u64(b, (uint64_t)r->itemsize);
    put_u32(b, (uint32_t)r->ndim);
    put_dims(b, dims, r->shape);
    put_dims(b, dims, r->strides);
    put_u64(b, r->time_ns);
    frame_end(b, at);
    return 0;
}

/* A frame of fixed-width fields only. */
static int encode_u64s(struct mw_rec_buf *b, enum mw_record_type type, const uint64_t *v,
                       size_t n)
{
    size_t at;
    int rc = frame_open(b, type, 5 + 8 * n, &at);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        put_u64(b, v[i]);
    frame_end(b, at);
    return 0;
}

int mw_rec_encode_unwatch(struct mw_rec_buf *b, const struct mw_rec_unwatch *r)
{
    const uint64_t v[] = {r->id, r->time_ns};
    return encode_u64s(b, MW_REC_UNWATCH, v, 2);
}

int mw_rec_encode_stats(struct mw_rec_buf *b, const struct mw_rec_stats *r)
{
    const uint64_t v[] = {r->faults, r->checks, r->changes, r->old_unavailable,
                          r->tracked_objects_peak, r->changes_compared,
                          r->isolated_objects_peak, r->isolated_pages_peak,
                          r->open_pages_peak, r->short_of_memory, r->lost_for_memory};
    return encode_u64s(b, MW_REC_STATS, v, sizeof v / sizeof v[0]);
}

/* Appends ranges (or pieces of them) from (*ri, *rpos) until the frame's data budget is
 * used; returns the bytes of range data (old and new) it wrote. The frame's nranges field
 * is at count_at. */
static size_t put_ranges(struct mw_rec_buf *b, const struct mw_rec_change *r, uint32_t *ri,
                         uint64_t *rpos, size_t count_at)
{
    size_t budget = FRAME_DATA_BUDGET;
    uint32_t n = 0;
    while (*ri < r->nranges) {
        const struct mw_rec_range *g = &r->ranges[*ri];
        unsigned copies = g->old ? 2 : 1;
        uint64_t left = g->length - *rpos;
        uint64_t piece = left;
        if (piece * copies > budget) {
            piece = budget / copies;
            if (n > 0 && piece < 4096)
                break;   /* next frame */
            if (piece == 0)
                break;
        }
        put_u64(b, g->offset + *rpos);
        put_u64(b, piece);
        if (g->old) {
            put_u32(b, (uint32_t)piece);
            put_bytes(b, g->old + *rpos, (size_t)piece);
        } else {
            put_u32(b, NULL_LEN);
        }
        put_u32(b, (uint32_t)piece);
        put_bytes(b, g->new_ + *rpos, (size_t)piece);
        budget -= (size_t)piece * copies;
        n++;
        *rpos += piece;
        if (*rpos == g->length) {
            (*ri)++;
            *rpos = 0;
        }
        if (budget == 0)
            break;
    }
    store_le(b->data + count_at, n, 4);
    return FRAME_DATA_BUDGET - budget;
}

int mw_rec_encode_change(struct mw_rec_buf *b, const struct mw_rec_change *r)
{
    if (r->nranges && !r->ranges)
        return MW_EINVAL;
    for (uint32_t i = 0; i < r->nranges; i++)
        if (!r->ranges[i].new_ && r->ranges[i].length)
            return MW_EINVAL;
    size_t head = 5 + 32 + 16 + str_size(r->thread_name) + str_size(r->file) + 4 +
                  str_size(r->function) + str_size(r->native_symbol) +
                  str_size(r->native_library) + 9 + 4;
    if (head > FRAME_HEADER_MAX)
        return MW_EINVAL;
    /* Bytes of range data still to encode: a frame reserves what it may hold of them, not
     * its whole budget, so that a small change costs a small buffer. */
    uint64_t data_left = 0;
    for (uint32_t i = 0; i < r->nranges; i++)
        data_left += r->ranges[i].length * (r->ranges[i].old ? 2 : 1);
    size_t start = b->len;
    uint32_t ri = 0;
    uint64_t rpos = 0;
    int first = 1;
    do {
        /* Worst case per frame: header, its share of the data, and 24 bytes of fields per
         * piece. */
        size_t pieces = r->nranges - ri;
        size_t data = data_left < FRAME_DATA_BUDGET ? (size_t)data_left : FRAME_DATA_BUDGET;
        size_t need = head + data + 24 * (pieces < 65536 ? pieces : 65536) + 64;
        int rc = reserve(b, need);
        if (rc) {
            b->len = start;
            return rc;
        }
        size_t at, count_at;
        size_t more_at;
        if (first) {
            at = frame_begin(b, MW_REC_CHANGE);
            put_u64(b, r->seq);
            put_u64(b, r->time_ns);
            put_u64(b, r->object_id);
            put_u64(b, (uint64_t)r->thread_id);
            put_str(b, r->thread_name);
            put_str(b, r->file);
            put_u32(b, (uint32_t)r->line);
            put_str(b, r->function);
            put_str(b, r->native_symbol);
            put_str(b, r->native_library);
            /* The whole change's extent, for a writer that decides on its first frame. */
            uint64_t lo = UINT64_MAX, hi = 0;
            for (uint32_t i = 0; i < r->nranges; i++) {
                if (r->ranges[i].offset < lo)
                    lo = r->ranges[i].offset;
                if (r->ranges[i].offset + r->ranges[i].length > hi)
                    hi = r->ranges[i].offset + r->ranges[i].length;
            }
            put_u64(b, r->nranges ? lo : 0);
            put_u64(b, hi);
            put_u64(b, r->ordinal);
            put_u8(b, r->old_held ? 1 : 0);
        } else {
            at = frame_begin(b, MW_REC_RANGES);
            put_u64(b, r->seq);
        }
        more_at = b->len;
        put_u8(b, 0);
        count_at = b->len;
        put_u32(b, 0);
        /* Cap pieces per frame so that the reserve above holds. */
        struct mw_rec_change capped = *r;
        if (capped.nranges - ri > 65536)
            capped.nranges = ri + 65536;
        data_left -= put_ranges(b, &capped, &ri, &rpos, count_at);
        b->data[more_at] = ri < r->nranges;
        frame_end(b, at);
        first = 0;
    } while (ri < r->nranges);
    return 0;
}

int mw_rec_encode_change_head(struct mw_rec_buf *b, const struct mw_rec_change *r)
{
    size_t head = 5 + 32 + 16 + str_size(r->thread_name) + str_size(r->file) + 4 +
                  str_size(r->function) + str_size(r->native_symbol) +
                  str_size(r->native_library) + 9 + 1 + 4;
    size_t at;
    int rc = frame_open(b, MW_REC_CHANGE, head, &at);
    if (rc)
        return rc;
    put_u64(b, r->seq);
    put_u64(b, r->time_ns);
    put_u64(b, r->object_id);
    put_u64(b, (uint64_t)r->thread_id);
    put_str(b, r->thread_name);
    put_str(b, r->file);
    put_u32(b, (uint32_t)r->line);
    put_str(b, r->function);
    put_str(b, r->native_symbol);
    put_str(b, r->native_library);
    put_u64(b, r->extent_lo);
    put_u64(b, r->extent_hi);
    put_u64(b, r->ordinal);
    put_u8(b, r->old_held ? 1 : 0);
    put_u8(b, 1);   /* more follows */
    put_u32(b, 0);
    frame_end(b, at);
    return 0;
}

/* ---- frames built in place ---- */

/* Pieces in one frame at most, as mw_rec_encode_change keeps them. */
#define FRAME_PIECES 65536u
/* A frame's fixed fields: length, type, seq, more, nranges. */
#define RANGES_HEAD (4 + 1 + 8 + 1 + 4)

int mw_rec_frames_begin(struct mw_rec_frames *f, uint64_t data_bytes, size_t nranges)
{
    memset(f, 0, sizeof *f);
    f->frame_at = SIZE_MAX;
    uint64_t frames = data_bytes / (FRAME_DATA_BUDGET - 64) + nranges / FRAME_PIECES + 2;
    uint64_t need = data_bytes + 24 * (nranges + frames) + (RANGES_HEAD + 16) * frames;
    if (need > SIZE_MAX / 2)
        return -ENOMEM;
    int rc = reserve(&f->buf, (size_t)need);
    if (rc == 0 && MW_GROW(f->seq_at, f->capframes, (size_t)frames) != 0)
        rc = -ENOMEM;
    if (rc)
        mw_rec_frames_free(f);
    return rc;
}

static void frames_close(struct mw_rec_frames *f)
{
    if (f->frame_at == SIZE_MAX)
        return;
    store_le(f->buf.data + f->count_at, f->count, 4);
    frame_end(&f->buf, f->frame_at);
    f->frame_at = SIZE_MAX;
}

/* Opens a frame when there is room for its fixed fields in what begin reserved. */
static int frames_open(struct mw_rec_frames *f)
{
    if (f->nframes == f->capframes || f->buf.len + RANGES_HEAD + 24 > f->buf.cap)
        return -1;
    f->frame_at = frame_begin(&f->buf, MW_REC_RANGES);
    f->seq_at[f->nframes++] = f->buf.len;
    put_u64(&f->buf, 0);     /* seq: mw_rec_frames_finish */
    put_u8(&f->buf, 1);      /* more: idem */
    f->count_at = f->buf.len;
    put_u32(&f->buf, 0);
    f->count = 0;
    f->budget = FRAME_DATA_BUDGET;
    return 0;
}

uint64_t mw_rec_frames_add(struct mw_rec_frames *f, uint64_t offset, uint64_t len, int with_old,
                           unsigned char **old, unsigned char **new_)
{
    unsigned copies = with_old ? 2 : 1;
    uint64_t piece = len;
    if (f->frame_at != SIZE_MAX && (f->count == FRAME_PIECES || piece * copies > f->budget)) {
        /* What fits here, in whole 16-byte steps (elements stay whole), else a new frame. */
        piece = f->count < FRAME_PIECES ? f->budget / copies / 16 * 16 : 0;
        if (piece == 0) {
            frames_close(f);
            piece = len;
        }
    }
    if (f->frame_at == SIZE_MAX && frames_open(f) != 0)
        return 0;
    if (piece * copies > f->budget)
        piece = f->budget / copies / 16 * 16;
    if (f->buf.len + 24 + piece * copies > f->buf.cap)
        return 0;
    put_u64(&f->buf, offset);
    put_u64(&f->buf, piece);
    if (with_old) {
        put_u32(&f->buf, (uint32_t)piece);
        *old = f->buf.data + f->buf.len;
        f->buf.len += (size_t)piece;
    } else {
        put_u32(&f->buf, NULL_LEN);
        *old = NULL;
    }
    put_u32(&f->buf, (uint32_t)piece);
    *new_ = f->buf.data + f->buf.len;
    f->buf.len += (size_t)piece;
    f->budget -= (size_t)piece * copies;
    f->count++;
    return piece;
}

void mw_rec_frames_finish(struct mw_rec_frames *f, uint64_t seq)
{
    frames_close(f);
    for (size_t i = 0; i < f->nframes; i++) {
        store_le(f->buf.data + f->seq_at[i], seq, 8);
        f->buf.data[f->seq_at[i] + 8] = i + 1 < f->nframes;
    }
}

void mw_rec_frames_free(struct mw_rec_frames *f)
{
    mw_rec_buf_free(&f->buf);
    free(f->seq_at);
    f->seq_at = NULL;
    f->nframes = f->capframes = 0;
}

int mw_rec_encode_value(struct mw_rec_buf *b, const struct mw_rec_value *r)
{
    if (r->size && !r->bytes)
        return MW_EINVAL;
    size_t start = b->len;
    uint64_t at_byte = 0;
    do {
        /* FRAME_DATA_BUDGET is a multiple of MW_REC_VALUE_ALIGN. */
        uint64_t n = r->size - at_byte < FRAME_DATA_BUDGET ? r->size - at_byte : FRAME_DATA_BUDGET;
        size_t at;
        /* The frame's fields and bytes at once: frame_open checks only its fields. */
        int rc = reserve(b, 5 + 33 + 4 + (size_t)n);
        if (rc == 0)
            rc = frame_open(b, MW_REC_VALUE, 5 + 33 + 4, &at);
        if (rc) {
            b->len = start;
            return rc;
        }
        put_u64(b, r->object_id);
        put_u64(b, r->seq);
        put_u8(b, r->exact ? 1 : 0);
        put_u64(b, r->size);
        put_u64(b, at_byte);
        put_u32(b, (uint32_t)n);
        put_bytes(b, r->bytes + at_byte, (size_t)n);
        frame_end(b, at);
        at_byte += n;
    } while (at_byte < r->size);
    return 0;
}

int mw_rec_buf_flush(struct mw_rec_buf *b, int fd)
{
    size_t done = 0;
    int rc = 0;
    while (done < b->len) {
        ssize_t n = write(fd, b->data + done, b->len - done);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, -1) >= 0 || errno == EINTR)
                continue;
        }
        rc = -errno;
        break;
    }
    /* Keep what was not written, so that the caller may retry. */
    memmove(b->data, b->data + done, b->len - done);
    b->len -= done;
    return rc;
}
