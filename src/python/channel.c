/* DESIGN: records are encoded by whichever thread runs a check (with the GIL held) into the
 * current buffer; flushing hands the buffer to a sender thread through a FIFO queue, and
 * the sender writes it to the pipe with no lock held. So the traced program never blocks
 * on the pipe (or on the disk behind it) while it holds the GIL, and records reach the
 * pipe in the order they were encoded. The queue is bounded (QUEUE_LIMIT bytes): a thread
 * that flushes into a full queue waits, with the GIL released, until the sender catches up
 * (memwatch-trace(1): "when the trace falls behind"). Nothing is ever dropped, except when
 * the reading end is gone (memwatch trace itself was killed); then records are discarded.
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
#include "threads.h"

/* Hand the current buffer to the sender once it holds this much. */
#define FLUSH_THRESHOLD (256 * 1024)
/* The most the checking thread writes to the pipe itself (write_now_locked). */
#define WRITE_NOW_MAX ((size_t)64 << 10)
/* How much may wait for the pipe before encoders wait. */
#define QUEUE_LIMIT ((size_t)64 << 20)

struct chunk {
    struct mw_rec_buf buf;
    size_t queued;          /* what it counts in queued_bytes */
    struct chunk *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;   /* queue became non-empty */
static pthread_cond_t work_done = PTHREAD_COND_INITIALIZER;    /* the sender wrote a chunk */
static int channel_fd = -1;
static int broken;                      /* the reader is gone: discard */
static struct mw_rec_buf current;       /* being encoded */
static struct chunk *queue_head, *queue_tail;
static size_t queued_bytes;
static int sending;                     /* the sender is writing a chunk it took */
static pthread_t sender;
static int sender_running, sender_stop;
static int64_t start_ns;
static uint64_t waited_ns;              /* time encoders spent waiting for queue room */
static uint64_t last_object_id, last_seq;   /* atomics */

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *send_loop(void *arg)
{
    (void)arg;
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
        int fd = broken ? -1 : channel_fd;
        pthread_mutex_unlock(&lock);
        int status = fd >= 0 ? mw_rec_buf_flush(&c->buf, fd) : 0;
        pthread_mutex_lock(&lock);
        if (status < 0)
            broken = 1;
        queued_bytes -= c->queued;
        sending = 0;
        mw_rec_buf_free(&c->buf);
        free(c);
        pthread_cond_broadcast(&work_done);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int mw_channel_open(int fd, int64_t start_monotonic_ns)
{
    pthread_mutex_lock(&lock);
    channel_fd = fd;
    /* Non-blocking, so that write_now_locked() never waits; the sender polls for room. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    start_ns = start_monotonic_ns ? start_monotonic_ns : monotonic_ns();
    pthread_mutex_unlock(&lock);
    return 0;
}

uint64_t mw_channel_now_ns(void)
{
    int64_t d = monotonic_ns() - start_ns;
    return d > 0 ? (uint64_t)d : 0;
}

uint64_t mw_channel_next_object_id(void)
{
    return __atomic_add_fetch(&last_object_id, 1, __ATOMIC_RELAXED);
}

uint64_t mw_channel_next_seq(void)
{
    return __atomic_add_fetch(&last_seq, 1, __ATOMIC_RELAXED);
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

/* When nothing is waiting for the pipe, the checking thread writes what it found itself,
 * if the pipe takes it all without waiting (the pipe is non-blocking): the changes are then
 * in the pipe before the script goes on, even if its next line crashes the process. What
 * does not fit stays in `current` for the sender. Returns 0 when all was written. */
static int write_now_locked(void)
{
    size_t done = 0;
    while (done < current.len) {
        ssize_t n = write(channel_fd, current.data + done, current.len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            broken = 1;
            current.len = 0;
            return 0;
        }
        break;
    }
    if (done)
        memmove(current.data, current.data + done, current.len - done);
    current.len -= done;
    return current.len == 0 ? 0 : -1;
}

static int queue_locked(struct mw_rec_buf *buf);

/* Moves the current buffer to the queue; waits while the queue is over its limit. */
static int hand_over_locked(void)
{
    if (channel_fd < 0 || broken) {
        current.len = 0;
        return 0;
    }
    if (current.len == 0)
        return 0;
    /* Small batches go straight into the pipe (crash-safe at once, and cheap); a large one
     * (a bulk value) is the sender's to write, off the checking thread. */
    if (!queue_head && !sending && current.len <= WRITE_NOW_MAX && write_now_locked() == 0)
        return 0;
    return queue_locked(&current);
}

/* Moves buf (which is then empty) to the sender's queue; waits while the queue is over
 * its limit. */
static int queue_locked(struct mw_rec_buf *buf)
{
    if (start_sender_locked() < 0) {
        /* No thread: write it ourselves. */
        int status = mw_rec_buf_flush(buf, channel_fd);
        if (status < 0)
            broken = 1;
        return status;
    }
    struct chunk *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->buf = *buf;
    c->next = NULL;
    *buf = (struct mw_rec_buf){0};
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
    if (!queue_has_room()) {
        int64_t t0 = monotonic_ns();
        wait_until(queue_has_room);
        waited_ns += (uint64_t)(monotonic_ns() - t0);
    }
    return 0;
}

#define ENCODE(call)                                            \
    do {                                                        \
        pthread_mutex_lock(&lock);                              \
        int status_ = 0;                                        \
        if (channel_fd >= 0 && !broken) {                       \
            status_ = (call);                                   \
            if (status_ == 0 && current.len >= FLUSH_THRESHOLD) \
                status_ = hand_over_locked();                   \
        }                                                       \
        pthread_mutex_unlock(&lock);                            \
        return status_;                                         \
    } while (0)

int mw_channel_hello(const struct mw_rec_hello *r) { ENCODE(mw_rec_encode_hello(&current, r)); }
int mw_channel_object(const struct mw_rec_object *r) { ENCODE(mw_rec_encode_object(&current, r)); }
int mw_channel_change(const struct mw_rec_change *r) { ENCODE(mw_rec_encode_change(&current, r)); }
int mw_channel_stats(const struct mw_rec_stats *r) { ENCODE(mw_rec_encode_stats(&current, r)); }
int mw_channel_value(const struct mw_rec_value *r) { ENCODE(mw_rec_encode_value(&current, r)); }

int mw_channel_change_frames(const struct mw_rec_change *head, struct mw_rec_frames *frames)
{
    pthread_mutex_lock(&lock);
    int status = 0;
    if (channel_fd >= 0 && !broken) {
        /* The head, then the frames as they are: what is before them goes first. */
        status = mw_rec_encode_change_head(&current, head);
        if (status == 0)
            status = hand_over_locked();
        if (status == 0 && channel_fd >= 0 && !broken) {
            status = queue_locked(&frames->buf);
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
    if (channel_fd >= 0 && !broken && current.len) {
        status = mw_rec_buf_flush(&current, channel_fd);
        if (status < 0)
            broken = 1;
    }
    current.len = 0;
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

void mw_channel_detach(void)
{
    /* In a forked child only this thread exists (no sender), and the lock may have been
     * held by a thread that is gone: start over rather than take it. */
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_ready = PTHREAD_COND_INITIALIZER, fresh_done = PTHREAD_COND_INITIALIZER;
    lock = fresh_lock;
    work_ready = fresh_ready;
    work_done = fresh_done;
    if (channel_fd >= 0)
        close(channel_fd);
    channel_fd = -1;
    current.len = 0;
    queue_head = queue_tail = NULL;   /* the parent's to send; leaked in the child */
    queued_bytes = 0;
    sending = 0;
    sender_running = 0;
}

void mw_channel_close(void)
{
    mw_channel_drain();
    pthread_mutex_lock(&lock);
    int joined = sender_running;
    sender_stop = 1;
    pthread_cond_signal(&work_ready);
    pthread_mutex_unlock(&lock);
    if (joined)
        pthread_join(sender, NULL);
    pthread_mutex_lock(&lock);
    sender_running = 0;
    if (channel_fd >= 0)
        close(channel_fd);
    channel_fd = -1;
    mw_rec_buf_free(&current);
    pthread_mutex_unlock(&lock);
}
