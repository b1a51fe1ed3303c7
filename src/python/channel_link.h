/* The traced process's connection to `memwatch trace` (channel.c queues what goes over
 * it): a Unix stream socket, named in the environment by the launcher, that survives the
 * script closing or replacing its descriptor (see channel_link.c, DESIGN). */
#ifndef MW_CHANNEL_LINK_H
#define MW_CHANNEL_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* How far a buffer of whole frames has gone over the connection: sent bytes, over
 * connection number gen. A buffer starts at a frame boundary; a zeroed position is a
 * buffer not sent yet. */
struct mw_link_pos {
    size_t sent;
    unsigned gen;
};

/* Connects to the socket name (abstract namespace) and sends the hello, whose fields
 * other than pid, ppid, start time, argv and flags come from base (its strings must live
 * as long as the process). follow: fork children connect too (mw_link_after_fork). 0, or
 * a negative errno. */
int mw_link_open(const char *name, const struct mw_rec_hello *base, int follow);
/* Whether a connection was opened in this process (its descendants included). */
int mw_link_is_open(void);
/* Sends data[pos->sent, len): 0 when all of it is sent; 1 when the socket is full and
 * wait is 0 (pos says how far it went); negative when it cannot be delivered: -EPIPE when
 * memwatch trace is gone (nothing will be again), another errno when this attempt failed
 * (the caller gives the bytes up and counts them with mw_link_count_lost). Reconnects
 * when the descriptor is no longer the connection's (closed or replaced by the script),
 * resending the frame that was cut. Callers never send concurrently (channel.c). */
int mw_link_send(const unsigned char *data, size_t len, struct mw_link_pos *pos, int wait);
/* Counts the frames of data[from, len) as undeliverable: a MW_REC_LOST record says so
 * as soon as a connection is up again. */
void mw_link_count_lost(const unsigned char *data, size_t len, size_t from);
/* What was counted lost in this process and never reported (for the end of the run). */
uint64_t mw_link_lost_changes(void);
/* How many times this process connected again after losing its connection: the writer
 * forgets what it held for the process then (src/python/held.h). Any thread. */
unsigned mw_link_resumes(void);
/* In a fork child, from the pthread_atfork handler (async-signal-safe: no allocation, no
 * lock): a connection of the child's own, whose hello says it forked, with the ids and
 * seqs that were the parent's; or none when follow is 0 (--no-follow) or it fails. */
void mw_link_after_fork(uint64_t inherited_ids, uint64_t inherited_seq);
/* Closes the connection (end of the run). */
void mw_link_close(void);

#endif
