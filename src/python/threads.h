/* memwatch's own threads in the traced process: the channel's sender and autocheck's
 * poller. */
#ifndef MW_THREADS_H
#define MW_THREADS_H

#include <pthread.h>

/* Starts run(NULL) in a new thread whose signal mask blocks every signal but the
 * synchronous ones (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP). 0 or an errno value, as
 * pthread_create returns. Any thread may call it. */
int mw_threads_start(pthread_t *thread, void *(*run)(void *));

/* The calling thread, which holds the GIL, is one of memwatch's (the poller takes the GIL
 * to check): it does not count as the program's. */
void mw_threads_own_python_thread(void);
/* With the GIL held: does the program run more than one Python thread? Looks at two or
 * three thread states at most: cheap enough for every line boundary. */
int mw_threads_program_has_several(void);

#endif
