/* DESIGN: memwatch's threads block every signal meant for the script (SIGINT, SIGTERM,
 * SIGCHLD, ...): the kernel hands a process-directed signal to any thread that does not
 * block it, and one taken by them would not interrupt what the main thread is blocked in
 * (sleep, select, a read), so the script's handler would run late. The synchronous signals
 * stay unblocked: these threads write to memory that may share a page with watched data,
 * and the fault must reach memwatch's handler (a blocked SIGSEGV would kill the process).
 * The mask is set before the thread exists (it inherits its creator's), so it is never
 * wrong for a moment. */
#include <Python.h>

#include "threads.h"

#include <signal.h>

static PyThreadState *own_tstate;   /* the poller's, once it took the GIL (GIL held) */

void mw_threads_own_python_thread(void)
{
    own_tstate = PyThreadState_Get();
}

int mw_threads_program_has_several(void)
{
    PyThreadState *t = PyThreadState_Get();
    int n = 0;
    for (PyThreadState *p = PyInterpreterState_ThreadHead(t->interp); p && n < 2;
         p = PyThreadState_Next(p))
        n += p != own_tstate;
    return n > 1;
}

int mw_threads_start(pthread_t *thread, void *(*run)(void *))
{
    sigset_t mask, old;
    sigfillset(&mask);
    sigdelset(&mask, SIGSEGV);
    sigdelset(&mask, SIGBUS);
    sigdelset(&mask, SIGFPE);
    sigdelset(&mask, SIGILL);
    sigdelset(&mask, SIGTRAP);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    int err = pthread_create(thread, NULL, run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}
