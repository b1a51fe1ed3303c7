#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"

/* Flushing earlier than at each check keeps the buffer small when one check finds a lot. */
#define FLUSH_THRESHOLD (256 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int channel_fd = -1;               /* protected by lock */
static struct mw_rec_buf buffer;          /* protected by lock */
static int64_t start_ns;
static uint64_t last_object_id, last_seq; /* atomics */

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mw_channel_open(int fd, int64_t start_monotonic_ns)
{
    pthread_mutex_lock(&lock);
    channel_fd = fd;
    start_ns = start_monotonic_ns ? start_monotonic_ns : monotonic_ns();
    pthread_mutex_unlock(&lock);
    return 0;
}

int mw_channel_is_open(void)
{
    pthread_mutex_lock(&lock);
    int open = channel_fd >= 0;
    pthread_mutex_unlock(&lock);
    return open;
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

static int flush_locked(void)
{
    if (channel_fd < 0 || buffer.len == 0) {
        buffer.len = 0;
        return 0;
    }
    int status = mw_rec_buf_flush(&buffer, channel_fd);
    if (status < 0) {
        /* The reader is gone (memwatch trace was killed): stop sending, keep running. */
        buffer.len = 0;
        channel_fd = -1;
    }
    return status;
}

#define ENCODE(call)                                         \
    do {                                                     \
        pthread_mutex_lock(&lock);                           \
        int status_ = 0;                                     \
        if (channel_fd >= 0) {                               \
            status_ = (call);                                \
            if (status_ == 0 && buffer.len >= FLUSH_THRESHOLD) \
                status_ = flush_locked();                    \
        }                                                    \
        pthread_mutex_unlock(&lock);                         \
        return status_;                                      \
    } while (0)

int mw_channel_hello(const struct mw_rec_hello *r) { ENCODE(mw_rec_encode_hello(&buffer, r)); }
int mw_channel_object(const struct mw_rec_object *r) { ENCODE(mw_rec_encode_object(&buffer, r)); }
int mw_channel_change(const struct mw_rec_change *r) { ENCODE(mw_rec_encode_change(&buffer, r)); }
int mw_channel_stats(const struct mw_rec_stats *r) { ENCODE(mw_rec_encode_stats(&buffer, r)); }

int mw_channel_unwatch(uint64_t object_id)
{
    struct mw_rec_unwatch r = {.id = object_id, .time_ns = mw_channel_now_ns()};
    ENCODE(mw_rec_encode_unwatch(&buffer, &r));
}

int mw_channel_flush(void)
{
    pthread_mutex_lock(&lock);
    int status = flush_locked();
    pthread_mutex_unlock(&lock);
    return status;
}

void mw_channel_detach(void)
{
    /* Called in a forked child, where only this thread exists and the lock may have been
     * held by a thread that is gone: reset it rather than take it. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    lock = fresh;
    if (channel_fd >= 0)
        close(channel_fd);
    channel_fd = -1;
    buffer.len = 0;
}

void mw_channel_close(void)
{
    pthread_mutex_lock(&lock);
    flush_locked();
    if (channel_fd >= 0)
        close(channel_fd);
    channel_fd = -1;
    mw_rec_buf_free(&buffer);
    pthread_mutex_unlock(&lock);
}
