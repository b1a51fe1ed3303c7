/* Telling memwatch trace that a process of the run runs untraced: a traced process that
 * execs (or spawns) a program memwatch does not trace — another program, an interpreter of
 * another version, a shell — sends a note for it (record.h, MW_HELLO_UNTRACED), and the
 * trace gets a processes row with traced = 0, its parent and command line (serve.c).
 * Only when children are followed (the run's socket is known). */
#ifndef MW_UNTRACED_NOTE_H
#define MW_UNTRACED_NOTE_H

#include <sys/types.h>

/* Remembers the run's socket (abstract name); NULL or too long: no notes. Called by the
 * constructor before the environment is given back to the user. */
void mw_untraced_note_init(const char *socket_name);
/* Says that process pid, child of ppid, runs argv untraced: its own connection, one
 * record, closed. Async-signal-safe, no memory of the caller's changed (it runs between
 * vfork and exec): system calls and the stack only. Failures are silent (the program
 * runs anyway; the trace then has no row for it). */
void mw_untraced_note(pid_t pid, pid_t ppid, char *const argv[]);

#endif
