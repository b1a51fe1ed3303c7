/* The record stream between the traced process and the trace writer.
 *
 * DESIGN: the traced process never touches the trace file. It encodes what it finds into
 * records and writes them to a pipe; the `memwatch trace` process on the other end turns
 * them into SQLite rows (writer.c). So whatever the traced process dies of (SIGKILL,
 * os._exit, a real segfault), every record already written to the pipe reaches the file,
 * and the pipe is the bounded queue: when it is full, the traced program's write blocks
 * (documented in memwatch-trace(1)); nothing is ever dropped.
 *
 * Wire format: a sequence of frames, each `u32 length (of what follows, little endian),
 * u8 type, payload`. Payload fields are little-endian fixed-width integers, and
 * strings/blobs as `u32 length, bytes` (u32 0xFFFFFFFF = NULL). */
#ifndef MW_RECORD_H
#define MW_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum mw_record_type {
    MW_REC_HELLO = 1,       /* the traced interpreter started */
    MW_REC_OBJECT = 2,      /* an object was watched */
    MW_REC_UNWATCH = 3,     /* an object stopped being watched */
    MW_REC_CHANGE = 4,      /* a change with its ranges */
    MW_REC_STATS = 5,       /* engine statistics at the end of the run */
    MW_REC_RANGES = 6,      /* more ranges of the change just sent (large changes) */
    MW_REC_VALUE = 7,       /* an object's whole value before a change (its base) */
    MW_REC_END = 8,         /* the process is exiting, with this status */
    MW_REC_LOST = 9,        /* what the sender could not deliver (channel.c) */
};

/* Frames are bounded so that a malformed length cannot make the reader allocate
 * gigabytes: mw_rec_encode_change splits a change whose bytes do not fit in one frame
 * into a MW_REC_CHANGE frame followed by MW_REC_RANGES frames with the same seq (a range
 * longer than a frame is cut into adjacent ranges); each frame says whether more of the
 * change follows, so that the writer can store a change as soon as its last frame is in.
 * mw_rec_encode_value cuts a value into MW_REC_VALUE frames the same way, at multiples of
 * MW_REC_VALUE_ALIGN bytes. The decoder refuses longer frames. */
#define MW_REC_MAX_FRAME (32u << 20)
#define MW_REC_MAX_NDIM 64
#define MW_REC_VALUE_ALIGN ((uint64_t)1 << 20)

/* The first record of every connection (one per traced process, and one more each time
 * a process reconnects: MW_HELLO_RESUME). A process that is not a fork child (the script,
 * an exec'd Python child) receives the run's shared memory in reply (serve.c).
 * MW_HELLO_UNTRACED: not the process's own hello but a note about it, sent by a traced
 * process that exec'd or spawned a program memwatch does not trace (another program,
 * another interpreter: src/python/children.c); it has pid, ppid, start and argv only,
 * and is the connection's only record. */
enum { MW_HELLO_RESUME = 1, MW_HELLO_FORKED = 2, MW_HELLO_UNTRACED = 4 };
struct mw_rec_hello {
    const char *python_version;   /* sys.version */
    const char *backend;          /* detection backend in use */
    int64_t pid;
    int64_t page_size;
    int64_t ppid;
    int64_t start_unix_ns;        /* wall clock when the process started (or forked) */
    const char *argv;             /* the command line, each argument NUL-terminated */
    uint32_t argv_len;            /* bytes of argv */
    uint32_t flags;               /* MW_HELLO_* */
    /* MW_HELLO_FORKED: object ids up to this one, and change seqs up to inherited_seq,
     * were the parent's when it forked. */
    uint64_t inherited_ids, inherited_seq;
};

/* The process ends: its exit status (-1 when not known). */
struct mw_rec_end {
    int64_t status;
    uint64_t time_ns;
};

/* Records the sender had to give up since the last such record: changes among them,
 * and all their bytes. */
struct mw_rec_lost {
    uint64_t changes, records, bytes;
};

struct mw_rec_object {
    uint64_t id;                  /* unique in the run */
    const char *tag;
    const char *type_name;        /* Python type name, e.g. "numpy.ndarray" */
    uint64_t address;
    uint64_t size;
    int readonly;
    const char *format;           /* struct-module format, NULL when unknown */
    int64_t itemsize;             /* 0 when unknown */
    int32_t ndim;                 /* -1 when unknown */
    const int64_t *shape;         /* ndim entries, or NULL */
    const int64_t *strides;       /* ndim entries, or NULL */
    uint64_t time_ns;             /* since the run started (CLOCK_MONOTONIC based) */
};

struct mw_rec_unwatch {
    uint64_t id;
    uint64_t time_ns;
};

struct mw_rec_range {
    uint64_t offset;
    uint64_t length;
    const unsigned char *old;     /* NULL: old value unavailable (range incomplete) */
    const unsigned char *new_;
};

struct mw_rec_change {
    uint64_t seq;                 /* global, increasing */
    uint64_t time_ns;
    uint64_t object_id;
    int64_t thread_id;            /* kernel tid */
    const char *thread_name;      /* may be NULL */
    const char *file;             /* may be NULL */
    int32_t line;                 /* 0 = unknown */
    const char *function;         /* may be NULL */
    const char *native_symbol;    /* may be NULL */
    const char *native_library;   /* may be NULL */
    uint32_t nranges;
    const struct mw_rec_range *ranges;
    /* The object's value as the writer holds it (change_store.h, held values): ordinal is
     * this change's number among the object's changes sent by this process (1, 2, ...;
     * 0: not counted), and old_held says that the ranges without old bytes take theirs
     * from the writer's copy, which holds the value after change ordinal - 1. */
    uint64_t ordinal;
    int old_held;
    int more;                     /* decoded: MW_REC_RANGES frames of this change follow */
    /* Decoded: from the first changed byte to the end of the last, over all its frames
     * (the encoder computes them from ranges). */
    uint64_t extent_lo, extent_hi;
    /* Not on the wire: the writing process, set by the trace writer (serve.c). */
    int64_t pid;
};

/* Continuation of a change: more of its ranges (see MW_REC_MAX_FRAME). */
struct mw_rec_ranges {
    uint64_t seq;
    uint32_t nranges;
    const struct mw_rec_range *ranges;
    int more;                     /* more MW_REC_RANGES frames of this change follow */
};

/* An object's whole value (size bytes, in its own coordinates) just before change seq:
 * what the trace decodes its later bytes from under --values=full. Decoded, a frame holds
 * the bytes [offset, offset + length) of it. */
struct mw_rec_value {
    uint64_t object_id;
    uint64_t seq;
    int exact;                    /* every byte is what the check before seq saw */
    uint64_t size;                /* of the whole value */
    uint64_t offset;
    uint64_t length;
    const unsigned char *bytes;
    /* Not on the wire: the sending process, set by the trace writer (serve.c). */
    int64_t pid;
};

struct mw_rec_stats {
    uint64_t faults, checks, changes, old_unavailable, tracked_objects_peak;
    /* How writes were found and what watching cost the program's memory layout (README
     * "Neighbours"): changes found by comparing a page left open rather than by a trap,
     * and the most objects moved to isolated pages, pages they took, and pages left open
     * at once. */
    uint64_t changes_compared, isolated_objects_peak, isolated_pages_peak, open_pages_peak;
    /* Memory ran out in checks: changes recorded with less than usual (old value
     * unavailable, ranges only), and changes lost (src/python/check.c). */
    uint64_t short_of_memory, lost_for_memory;
};

/* Encoding: appends frames to a growable buffer; the caller writes buf->data to the fd.
 * A zero-initialized struct is an empty buffer. Encoders return 0, -ENOMEM, or MW_EINVAL
 * (a string too long for a frame, ndim out of range); on error the buffer is unchanged.
 * Strings must not contain NUL bytes (they are C strings on both sides). */
struct mw_rec_buf {
    unsigned char *data;
    size_t len, cap;
    int mapped;                   /* data is a mapping of its own (large), not malloc'd */
};
void mw_rec_buf_free(struct mw_rec_buf *b);
int mw_rec_encode_hello(struct mw_rec_buf *b, const struct mw_rec_hello *r);
int mw_rec_encode_end(struct mw_rec_buf *b, const struct mw_rec_end *r);
int mw_rec_encode_lost(struct mw_rec_buf *b, const struct mw_rec_lost *r);
/* The bytes of the frame (its length, type and payload) at data, whose first bytes are a
 * whole frame's length field, or 0 when fewer than 4 bytes are left. */
size_t mw_rec_frame_size(const unsigned char *data, size_t len);
int mw_rec_encode_object(struct mw_rec_buf *b, const struct mw_rec_object *r);
int mw_rec_encode_unwatch(struct mw_rec_buf *b, const struct mw_rec_unwatch *r);
int mw_rec_encode_change(struct mw_rec_buf *b, const struct mw_rec_change *r);
int mw_rec_encode_stats(struct mw_rec_buf *b, const struct mw_rec_stats *r);
/* The whole value r->bytes (r->size bytes; offset and length are ignored), in as many
 * frames as it takes. */
int mw_rec_encode_value(struct mw_rec_buf *b, const struct mw_rec_value *r);
/* A change's frames, head first: the CHANGE frame alone (r->nranges and r->ranges are
 * ignored), saying that MW_REC_RANGES frames follow and giving r->extent_lo/hi. */
int mw_rec_encode_change_head(struct mw_rec_buf *b, const struct mw_rec_change *r);

/* A change's ranges built straight into MW_REC_RANGES frames by whoever has their bytes
 * (the traced process's harvest), so that they reach the pipe without another copy:
 * begin with the bytes and ranges to come (everything is reserved then: pointers handed
 * out stay valid), add each range (a piece of it at a time when it does not fit a
 * frame), then finish with the change's seq. */
struct mw_rec_frames {
    struct mw_rec_buf buf;
    size_t frame_at, count_at;    /* the open frame's length and nranges fields */
    uint32_t count;               /* pieces in the open frame */
    size_t budget;                /* data bytes it may still take */
    size_t *seq_at;               /* each frame's seq field */
    size_t nframes, capframes;
};
int mw_rec_frames_begin(struct mw_rec_frames *f, uint64_t data_bytes, size_t nranges);
/* The piece of the range at offset (len bytes, old bytes too when with_old) that fits:
 * its length (a multiple of 16 unless it is the whole rest), with where its old and new
 * bytes go; 0 when out of room (a broken reservation). */
uint64_t mw_rec_frames_add(struct mw_rec_frames *f, uint64_t offset, uint64_t len, int with_old,
                           unsigned char **old, unsigned char **new_);
void mw_rec_frames_finish(struct mw_rec_frames *f, uint64_t seq);
void mw_rec_frames_free(struct mw_rec_frames *f);

/* Writes the whole buffer to fd (retrying on EINTR and short writes), then empties it. */
int mw_rec_buf_flush(struct mw_rec_buf *b, int fd);

/* Decoding: one frame at a time. A decoded record's pointers point into the frame and
 * stay valid until the next call on the same decoder. */
struct mw_rec_decoded {
    enum mw_record_type type;
    union {
        struct mw_rec_hello hello;
        struct mw_rec_object object;
        struct mw_rec_unwatch unwatch;
        struct mw_rec_change change;
        struct mw_rec_stats stats;
        struct mw_rec_ranges ranges;
        struct mw_rec_value value;
        struct mw_rec_end end;
        struct mw_rec_lost lost;
    } u;
};
typedef struct mw_rec_decoder mw_rec_decoder;
int mw_rec_decoder_create(mw_rec_decoder **out);
void mw_rec_decoder_destroy(mw_rec_decoder *d);
/* Feeds bytes read from the pipe. */
int mw_rec_decoder_feed(mw_rec_decoder *d, const void *bytes, size_t len);
/* The same without a copy: room for want more bytes (NULL when out of memory), to read
 * into; then commit the bytes read. Frames returned before are no longer valid. */
void *mw_rec_decoder_space(mw_rec_decoder *d, size_t want);
void mw_rec_decoder_commit(mw_rec_decoder *d, size_t got);
/* 1 and fills *out when a whole frame is available, 0 when more bytes are needed,
 * MW_EFORMAT on a malformed frame. */
int mw_rec_decoder_next(mw_rec_decoder *d, struct mw_rec_decoded *out);
/* Gives the frame returned last back, to be returned again by the next call (before any
 * feed): a reader that cannot apply it yet. */
void mw_rec_decoder_unget(mw_rec_decoder *d);
/* Bytes fed but not yet returned as whole frames (a partial frame at end of input), and
 * that partial frame's type when its type byte has arrived (else 0). */
size_t mw_rec_decoder_pending(const mw_rec_decoder *d, int *partial_type);

#endif
