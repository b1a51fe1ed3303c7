/* DESIGN: records are encoded by whichever thread runs a check (with the GIL held) into the
 * current buffer; flushing hands the buffer to a sender thread through a FIFO queue, and
 * the sender writes it to the pipe with no lock held. So the traced program never blocks
 * on the pipe (or on the disk behind it) while it holds the GIL, and records reach the
 * pipe in the order they were encoded. The queue is bounded (QUEUE_LIMIT bytes): a thread
 * that flushes into a full queue waits, with the GIL released, until the sender catches up
 * (memwatch-trace(1): "when the trace falls behind"). The connection itself is
 * channel_link.c's: it survives the script closing descriptors. Nothing is ever dropped,
 * except what the link cannot deliver at all (counted, and reported to the trace), and
 * everything once the reading end is gone (memwatch trace itself was killed).
 *
 * Locks: `lock` protects every static below. It is never held while taking the GIL nor
 * during write(). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "channel_link.h"
#include "map_cache.h"
#include "mw_grow.h"
#include "run_shared.h"
#include "threads.h"
#include "watcher.h"

/* Hand the current buffer to the sender once it holds this much. */
#define FLUSH_THRESHOLD (256 * 1024)
/* The most the checking thread writes to the pipe itself (write_now_locked). */
#define WRITE_NOW_MAX ((size_t)64 << 10)
/* How much may wait for the pipe before encoders wait. */
#define QUEUE_LIMIT ((size_t)64 << 20)
/* The largest sent buffer kept for reuse (a spare): what a hand-off at FLUSH_THRESHOLD
 * grows to. */
#define SPARE_MAX ((size_t)1 << 20)
#define SPARES 4

struct chunk {
    struct mw_rec_buf buf;
    struct mw_link_pos pos;     /* how far it went */
    size_t queued;          /* what it counts in queued_bytes */
    struct chunk *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;   /* queue became non-empty */
static pthread_cond_t work_done = PTHREAD_COND_INITIALIZER;    /* the sender wrote a chunk */
static int channel_open;                /* connected (this process is traced) */
static int broken;                      /* the reader is gone: discard */
static struct mw_rec_buf current;       /* being encoded */
/* Sent chunks' buffers, kept to be the next `current` when one is handed over: encoding
 * then writes into pages already there, instead of growing a fresh buffer by realloc and
 * mremap (and faulting its pages in) after every hand-off. As many as a check of many
 * small changes keeps queued (SPARES), each a mapping of its own
 * (record.c, MAPPED_MIN) of at most SPARE_MAX bytes: a heap buffer kept alive would sit
 * beside the script's objects (README "Neighbours"), a larger one goes back to
 * map_cache.c as before. A fork child inherits it like `current` (the sender gives it
 * back only under `lock`, held across fork). */
static struct mw_rec_buf spare[SPARES];
static int nspare;
static struct mw_link_pos current_pos;  /* how much of it is sent already */
static struct chunk *queue_head, *queue_tail;
static size_t queued_bytes;
static int sending;                     /* the sender is writing a chunk it took */
static pthread_t sender;
static int sender_running, sender_stop;
static int64_t start_ns;
static uint64_t waited_ns;              /* time encoders spent waiting for queue room */
/* The last object id and change seq given out (atomics). They are the run's, not the
 * process's: the first page of the run's shared memory (run_shared.h), which every traced
 * process maps (the script and its exec'd children receive it when they connect, fork
 * children inherit it), so that all processes number their objects and changes in one
 * sequence, in the order they found them, and the trace keeps the numbers as they come
 * (serve.c). */
enum { LAST_OBJECT_ID, LAST_SEQ };
static uint64_t own_counters[2];
static uint64_t *counters = own_counters;

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* After a send that failed with status: the bytes from sent on are given up, and counted
 * unless memwatch trace is gone (then nothing is sent again). Called with `lock` held. */
static void gave_up(int status, const struct mw_rec_buf *b, size_t sent)
{
    if (status >= 0)
        return;
    if (status == -EPIPE)
        broken = 1;
    else
        mw_link_count_lost(b->data, b->len, sent);
}

/* A buffer that was sent: kept as a spare when there is room and it is not too large,
 * else freed. Called with `lock` held. */
static void keep_or_free(struct mw_rec_buf *b)
{
    if (nspare < SPARES && b->mapped && b->cap <= SPARE_MAX) {
        spare[nspare] = *b;
        spare[nspare++].len = 0;
        *b = (struct mw_rec_buf){0};
        return;
    }
    mw_rec_buf_free(b);
}

/* `current`, just handed over (its buffer is the queue's now), starts again from a kept
 * spare, or empty: never still pointing at the buffer it gave away. */
static void take_spare_locked(void)
{
    current = nspare ? spare[--nspare] : (struct mw_rec_buf){0};
}

/* A queued chunk, sent with status: counted off the queue, its buffer kept or freed. */
static void chunk_sent_locked(struct chunk *c, int status)
{
    gave_up(status, &c->buf, c->pos.sent);
    queued_bytes -= c->queued;
    keep_or_free(&c->buf);
    free(c);
}

static void *send_loop(void *arg)
{
    (void)arg;
    /* memwatch's own thread: what it writes beside watched bytes (freeing what it sent) is
     * never the program's (README, Neighbours). */
    mw_engine_own_work(1);
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!queue_head && !sender_stop)
            pthread_cond_wait(&work_ready, &lock);
        if (!queue_head)
            break;
        struct chunk *c = queue_head;
        queue_head = c->next;
        if (!queue_head)
            queue_tail = NULL;
        sending = 1;
        int skip = broken;
        pthread_mutex_unlock(&lock);
        int status = skip ? 0 : mw_link_send(c->buf.data, c->buf.len, &c->pos, 1);
        pthread_mutex_lock(&lock);
        sending = 0;
        chunk_sent_locked(c, status);
        pthread_cond_broadcast(&work_done);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int mw_channel_open(const char *socket_name, int64_t start_monotonic_ns,
                    const struct mw_rec_hello *hello, int follow)
{
    pthread_mutex_lock(&lock);
    start_ns = start_monotonic_ns ? start_monotonic_ns : monotonic_ns();
    int rc = mw_link_open(socket_name, hello, follow);
    channel_open = rc == 0;
    if (channel_open && mw_run_shared())   /* a connection is made only with it (channel_link.c) */
        counters = mw_run_shared();
    /* The record buffer is made now, before the script allocates anything, as it always
     * was, and of the size it always had (the hello's, before hellos carried a command
     * line): made at the first watch, or larger, it would sit beside the script's objects,
     * or move them, and its writes would be a watched page's neighbour's (README
     * "Neighbours"). */
    if (channel_open &&
        MW_GROW(current.data, current.cap,
                5 + 4 + strlen(hello->python_version ? hello->python_version : "") + 4 +
                    strlen(hello->backend ? hello->backend : "") + 16) != 0)
        current.len = 0;
    pthread_mutex_unlock(&lock);
    return rc;
}

uint64_t mw_channel_now_ns(void)
{
    int64_t d = monotonic_ns() - start_ns;
    return d > 0 ? (uint64_t)d : 0;
}

uint64_t mw_channel_next_object_id(void)
{
    return __atomic_add_fetch(&counters[LAST_OBJECT_ID], 1, __ATOMIC_RELAXED);
}

uint64_t mw_channel_next_seq(void)
{
    return __atomic_add_fetch(&counters[LAST_SEQ], 1, __ATOMIC_RELAXED);
}

static int start_sender_locked(void)
{
    if (sender_running)
        return 0;
    int err = mw_threads_start(&sender, send_loop);
    if (err)
        return -err;
    sender_running = 1;
    sender_stop = 0;
    return 0;
}

static int queue_has_room(void) { return queued_bytes <= QUEUE_LIMIT || broken; }
static int queue_is_empty(void) { return (!queue_head && !sending) || broken; }

/* Waits with `lock` held until ready() says so; releases the GIL meanwhile if this thread
 * holds it, and takes it back only after letting go of `lock` (see the lock order above).
 * The predicate is tested under `lock` before every wait, so no wake-up is missed. */
static void wait_until(int (*ready)(void))
{
    if (ready())
        return;
    if (Py_IsInitialized() && PyGILState_Check()) {
        pthread_mutex_unlock(&lock);
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&lock);
        while (!ready())
            pthread_cond_wait(&work_done, &lock);
        pthread_mutex_unlock(&lock);
        Py_END_ALLOW_THREADS
        pthread_mutex_lock(&lock);
    } else {
        while (!ready())
            pthread_cond_wait(&work_done, &lock);
    }
}

/* When nothing is waiting for the socket, the checking thread writes what it found itself,
 * if the socket takes it all without waiting: the changes are then with memwatch trace
 * before the script goes on, even if its next line crashes the process. What does not fit
 * stays in `current` (current_pos says how far it went) for the sender. Returns 0 when all
 * was written (or given up). */
static int write_now_locked(void)
{
    int status = mw_link_send(current.data, current.len, &current_pos, 0);
    if (status == 1)
        return -1;
    gave_up(status, &current, current_pos.sent);
    current.len = 0;
    current_pos = (struct mw_link_pos){0};
    return 0;
}

static int queue_locked(struct mw_rec_buf *buf, struct mw_link_pos *pos, int may_wait);

/* Moves the current buffer to the queue; waits while the queue is over its limit, unless
 * !may_wait (more of the same record follows, which must go right behind it). */
static int hand_over_locked_ex(int may_wait)
{
    if (!channel_open || broken) {
        current.len = 0;
        current_pos = (struct mw_link_pos){0};
        return 0;
    }
    if (current.len == 0)
        return 0;
    /* Small batches go straight into the pipe (crash-safe at once, and cheap); a large one
     * (a bulk value) is the sender's to write, off the checking thread. */
    if (!queue_head && !sending && current.len <= WRITE_NOW_MAX && write_now_locked() == 0)
        return 0;
    return queue_locked(&current, &current_pos, may_wait);
}

static int hand_over_locked(void)
{
    return hand_over_locked_ex(1);
}

static int nothing_queued(void)
{
    return !queue_head && !sending;
}

/* Moves buf (which is then empty), sent as far as pos says (NULL: not at all), to the
 * sender's queue; waits while the queue is over its limit when may_wait (waiting lets go
 * of `lock`, and another thread's records may then come next). */
static int queue_locked(struct mw_rec_buf *buf, struct mw_link_pos *pos, int may_wait)
{
    struct mw_link_pos none = {0};
    if (!pos)
        pos = &none;
    if (start_sender_locked() < 0) {
        /* No thread: write it ourselves. */
        int status = mw_link_send(buf->data, buf->len, pos, 1);
        gave_up(status, buf, pos->sent);
        buf->len = 0;
        *pos = (struct mw_link_pos){0};
        return 0;
    }
    struct chunk *c = malloc(sizeof *c);
    if (!c) {
        /* No memory to queue it (the script ran out): send it ourselves, after what is
         * queued before it, rather than lose it. */
        wait_until(nothing_queued);
        int status = mw_link_send(buf->data, buf->len, pos, 1);
        gave_up(status, buf, pos->sent);
        buf->len = 0;
        *pos = (struct mw_link_pos){0};
        return 0;
    }
    c->buf = *buf;
    c->pos = *pos;
    c->next = NULL;
    *buf = (struct mw_rec_buf){0};
    *pos = (struct mw_link_pos){0};
    if (buf == &current)
        take_spare_locked();
    if (queue_tail)
        queue_tail->next = c;
    else
        queue_head = c;
    queue_tail = c;
    /* What waits is counted by its bytes, not its buffer's capacity, which a large change
     * left large. */
    c->queued = c->buf.len;
    queued_bytes += c->queued;
    pthread_cond_signal(&work_ready);
    if (may_wait && !queue_has_room()) {
        int64_t t0 = monotonic_ns();
        wait_until(queue_has_room);
        waited_ns += (uint64_t)(monotonic_ns() - t0);
    }
    return 0;
}

/* An encoder that found no memory (the script used it all) tries again once what is
 * queued has been sent: the sender frees those buffers or keeps them as spares, and the
 * record fits in one of them, instead of being lost. Encoders leave the buffer as it was
 * when they fail. */
#define ENCODE_OR_WAIT(call, status)                            \
    do {                                                        \
        (status) = (call);                                      \
        if ((status) == -ENOMEM && !nothing_queued()) {         \
            wait_until(nothing_queued);                         \
            if (!current.cap)                                   \
                take_spare_locked();                            \
            (status) = (call);                                  \
        }                                                       \
    } while (0)

#define ENCODE(call)                                            \
    do {                                                        \
        pthread_mutex_lock(&lock);                              \
        int status_ = 0;                                        \
        if (channel_open && !broken) {                       \
            ENCODE_OR_WAIT(call, status_);                      \
            if (status_ == 0 && current.len >= FLUSH_THRESHOLD) \
                status_ = hand_over_locked();                   \
        }                                                       \
        pthread_mutex_unlock(&lock);                            \
        return status_;                                         \
    } while (0)

int mw_channel_object(const struct mw_rec_object *r) { ENCODE(mw_rec_encode_object(&current, r)); }
int mw_channel_change(const struct mw_rec_change *r) { ENCODE(mw_rec_encode_change(&current, r)); }
int mw_channel_stats(const struct mw_rec_stats *r) { ENCODE(mw_rec_encode_stats(&current, r)); }
int mw_channel_value(const struct mw_rec_value *r) { ENCODE(mw_rec_encode_value(&current, r)); }

int mw_channel_change_frames(const struct mw_rec_change *head, struct mw_rec_frames *frames)
{
    pthread_mutex_lock(&lock);
    int status = 0;
    if (channel_open && !broken) {
        /* The head, then the frames as they are: what is before them goes first, and
         * nothing between them (no wait for room until both are queued). */
        ENCODE_OR_WAIT(mw_rec_encode_change_head(&current, head), status);
        if (status == 0)
            status = hand_over_locked_ex(0);
        if (status == 0 && channel_open && !broken) {
            status = queue_locked(&frames->buf, NULL, 1);
            free(frames->seq_at);
            frames->seq_at = NULL;
        }
    }
    pthread_mutex_unlock(&lock);
    mw_rec_frames_free(frames);   /* what was not queued */
    return status;
}

int mw_channel_unwatch(uint64_t object_id)
{
    struct mw_rec_unwatch r = {.id = object_id, .time_ns = mw_channel_now_ns()};
    ENCODE(mw_rec_encode_unwatch(&current, &r));
}

uint64_t mw_channel_waited_ns(void)
{
    pthread_mutex_lock(&lock);
    uint64_t ns = waited_ns;
    pthread_mutex_unlock(&lock);
    return ns;
}

int mw_channel_flush(void)
{
    pthread_mutex_lock(&lock);
    int status = hand_over_locked();
    pthread_mutex_unlock(&lock);
    return status;
}

int mw_channel_write_now(void)
{
    pthread_mutex_lock(&lock);
    int status = 0;
    if (channel_open && !broken && current.len) {
        status = mw_link_send(current.data, current.len, &current_pos, 1);
        gave_up(status, &current, current_pos.sent);
    }
    current.len = 0;
    current_pos = (struct mw_link_pos){0};
    pthread_mutex_unlock(&lock);
    return status;
}

int mw_channel_drain(void)
{
    pthread_mutex_lock(&lock);
    int status = hand_over_locked();
    wait_until(queue_is_empty);
    pthread_mutex_unlock(&lock);
    return status;
}

/* Stops the sender thread once it has sent everything queued (it starts again when next
 * needed: start_sender_locked). Called with `lock` held, which it lets go meanwhile. */
static void stop_sender_locked(void)
{
    if (!sender_running)
        return;
    sender_stop = 1;
    pthread_cond_signal(&work_ready);
    pthread_mutex_unlock(&lock);
    pthread_join(sender, NULL);
    pthread_mutex_lock(&lock);
    sender_running = 0;
    sender_stop = 0;
    /* What a thread queued while `lock` was let go, after the sender had finished: sent
     * now, in order, before anything written after it. */
    while (queue_head) {
        struct chunk *c = queue_head;
        queue_head = c->next;
        chunk_sent_locked(c, broken ? 0 : mw_link_send(c->buf.data, c->buf.len, &c->pos, 1));
    }
    queue_tail = NULL;
    pthread_cond_broadcast(&work_done);
}

/* The parent's records go before the fork, and `lock` is held across it (released by
 * mw_channel_after_fork_parent, re-made in the child), then the map cache's lock: no
 * thread of memwatch's is inside the allocator when the process is copied. The sender
 * thread finishes what is queued and stops: with a thread of memwatch's running,
 * os.fork() in Python 3.12+ warns that the process is multi-threaded, which under python3
 * it is not; the sender starts again at the next record that needs it. No thread is
 * started here either: one starting while the process forks holds an allocator lock of
 * its own that the child would inherit taken (AddressSanitizer's allocator has no fork
 * handlers: a fork child hung in its first thread). */
void mw_channel_before_fork(void)
{
    pthread_mutex_lock(&lock);
    stop_sender_locked();
    if (channel_open && !broken && current.len) {
        /* Written now, from this thread, after everything before it. */
        int status = mw_link_send(current.data, current.len, &current_pos, 1);
        gave_up(status, &current, current_pos.sent);
        current.len = 0;
        current_pos = (struct mw_link_pos){0};
    }
    mw_map_cache_lock_for_fork();
}

void mw_channel_after_fork_parent(void)
{
    mw_map_cache_unlock_after_fork();
    pthread_mutex_unlock(&lock);
}

void mw_channel_after_fork(void)
{
    /* In a forked child only this thread exists (no sender), and the lock may have been
     * held by a thread that is gone: start over rather than take it. The parent's
     * records not yet sent are the parent's to send; the child's connection is its own
     * (channel_link.c), and says which object ids and seqs came from the parent. */
    mw_map_cache_unlock_after_fork();   /* taken by this very thread before the fork */
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_ready = PTHREAD_COND_INITIALIZER, fresh_done = PTHREAD_COND_INITIALIZER;
    lock = fresh_lock;
    work_ready = fresh_ready;
    work_done = fresh_done;
    current.len = 0;
    current_pos = (struct mw_link_pos){0};
    queue_head = queue_tail = NULL;   /* the parent's to send; leaked in the child */
    queued_bytes = 0;
    sending = 0;
    sender_running = 0;
    sender_stop = 0;
    if (channel_open && !broken) {
        mw_link_after_fork(__atomic_load_n(&counters[LAST_OBJECT_ID], __ATOMIC_RELAXED),
                           __atomic_load_n(&counters[LAST_SEQ], __ATOMIC_RELAXED));
        channel_open = mw_link_is_open();
    } else {
        channel_open = 0;
    }
}

int mw_channel_is_open(void)
{
    return channel_open && !broken;
}

int mw_channel_end(int status)
{
    struct mw_rec_end r = {.status = status, .time_ns = mw_channel_now_ns()};
    ENCODE(mw_rec_encode_end(&current, &r));
}

void mw_channel_close(void)
{
    mw_channel_drain();
    pthread_mutex_lock(&lock);
    stop_sender_locked();
    mw_link_close();
    channel_open = 0;
    mw_rec_buf_free(&current);
    while (nspare)
        mw_rec_buf_free(&spare[--nspare]);
    pthread_mutex_unlock(&lock);
}
