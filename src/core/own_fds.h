/* memwatch's own descriptors in the traced process (the userfaultfd context, the trace
 * channel's socket), kept out of the script's reach: a script may close every descriptor
 * (os.closerange(3, 4096) before exec'ing a daemon, subprocess-like code), or dup2() its
 * own file over a number that happens to be memwatch's. fd_interpose.c consults this
 * registry: close(), close_range() and closefrom() leave these descriptors open (the
 * script sees success, as if they had been closed), and dup2()/dup3() onto one first move
 * memwatch's descriptor to another number. Raw system calls are not covered: the channel
 * reconnects then (channel_link.c), and the engine's protection ends.
 *
 * Every function is async-signal-safe (a handful of atomics over a fixed array). */
#ifndef MW_OWN_FDS_H
#define MW_OWN_FDS_H

/* Registers the descriptor held in *where (read and updated atomically by its owner's
 * code and by a move). 0, or -1 when the registry is full (the descriptor stays the
 * script's to close). memwatch closes its own with a raw system call after setting the
 * variable to -1, which takes it out of the registry. */
int mw_own_fd_add(_Atomic int *where);
/* Is fd one of memwatch's? */
int mw_own_fd_is(int fd);
/* fd is about to be replaced by dup2/dup3: memwatch's descriptor there, if any, moves to
 * another number first (its owner's variable is updated). 0, or -1 when it cannot move. */
int mw_own_fd_evacuate(int fd);
/* The registered descriptors in [lo, hi], ascending, into out (at most max); their count. */
int mw_own_fds_in(unsigned lo, unsigned hi, int *out, int max);

#endif
