/* The traced side of the record stream (src/trace/record.h): encodes what the engine finds
 * and writes it to the pipe that `memwatch trace` reads. Without a pipe (memwatch's
 * library loaded some other way) every call is a no-op. Thread-safe. */
#ifndef MW_CHANNEL_H
#define MW_CHANNEL_H

#include <stdint.h>
#include "record.h"

int mw_channel_open(int fd, int64_t start_monotonic_ns);
/* Nanoseconds since the run started. */
uint64_t mw_channel_now_ns(void);
uint64_t mw_channel_next_object_id(void);
uint64_t mw_channel_next_seq(void);
int mw_channel_hello(const struct mw_rec_hello *r);
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
/* Waits until everything encoded so far is in the pipe. */
int mw_channel_drain(void);
/* Writes what is buffered from this thread, now (before the interpreter starts). */
int mw_channel_write_now(void);
/* In a forked child: forget the pipe without writing to it. */
void mw_channel_detach(void);
/* Drain, stop the sender and close (end of run). */
void mw_channel_close(void);

#endif
