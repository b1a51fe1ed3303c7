/* memwatch's own threads in the traced process: the channel's sender and autocheck's
 * poller. */
#ifndef MW_THREADS_H
#define MW_THREADS_H

#include <pthread.h>

/* Starts run(NULL) in a new thread whose signal mask blocks every signal but the
 * synchronous ones (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP). 0 or an errno value, as
 * pthread_create returns. Any thread may call it. */
int mw_threads_start(pthread_t *thread, void *(*run)(void *));

#endif
