/* The traced side of the record stream (src/trace/record.h): encodes what the engine finds
 * and sends it over this process's connection to `memwatch trace` (channel_link.h).
 * Without a connection (memwatch's library loaded some other way, or a child that is not
 * followed) every call is a no-op. Thread-safe. */
#ifndef MW_CHANNEL_H
#define MW_CHANNEL_H

#include <stdint.h>
#include "record.h"

/* Connects to memwatch trace's socket and says hello (hello: the fields that do not
 * change; channel_link.h); follow: fork children connect too. 0 or a negative errno. */
int mw_channel_open(const char *socket_name, int64_t start_monotonic_ns,
                    const struct mw_rec_hello *hello, int follow);
/* Whether records go anywhere. */
int mw_channel_is_open(void);
/* The process is ending with status (-1: unknown). */
int mw_channel_end(int status);
/* Nanoseconds since the run started. */
uint64_t mw_channel_now_ns(void);
uint64_t mw_channel_next_object_id(void);
uint64_t mw_channel_next_seq(void);
int mw_channel_object(const struct mw_rec_object *r);
int mw_channel_unwatch(uint64_t object_id);
int mw_channel_change(const struct mw_rec_change *r);
int mw_channel_stats(const struct mw_rec_stats *r);
int mw_channel_value(const struct mw_rec_value *r);
/* A large change: its head, then its ranges' frames, built in place (record.h), which the
 * channel takes (frames is left empty): no copy of their bytes. */
int mw_channel_change_frames(const struct mw_rec_change *head, struct mw_rec_frames *frames);
/* Hands what is buffered to the sender thread (waits only while its queue is full). */
int mw_channel_flush(void);
/* How long the traced program has waited for the trace to catch up (queue full). */
uint64_t mw_channel_waited_ns(void);
/* Waits until everything encoded so far is sent. */
int mw_channel_drain(void);
/* Writes what is buffered from this thread, now (before the interpreter starts). */
int mw_channel_write_now(void);
/* In the parent, before fork() (pthread_atfork): what is encoded is sent now (or queued
 * behind the running sender), and the channel's lock stays held across the fork, so that
 * no thread of memwatch's is inside the allocator then; mw_channel_after_fork_parent
 * releases it. */
void mw_channel_before_fork(void);
void mw_channel_after_fork_parent(void);
/* In a forked child (from pthread_atfork: async-signal-safe): forget the parent's
 * connection and queue without writing to them, and connect the child's own when
 * children are followed. */
void mw_channel_after_fork(void);
/* Drain, stop the sender and close (end of run). */
void mw_channel_close(void);

#endif
