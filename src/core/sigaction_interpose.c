/* sigaction(), signal() and sigaltstack() for the injected library: while memwatch's SIGSEGV/SIGBUS
 * handler is installed, a program installing its own handler for those signals (Python's
 * faulthandler, signal.signal, pytest) gets it chained behind memwatch's instead of
 * replacing it, and reads back what it would have seen without memwatch. Every other
 * signal goes straight to libc. Linked only into the LD_PRELOAD library (mw_sigchain):
 * the preloaded definitions win over libc's for every later-loaded object's calls.
 *
 * sigaltstack() records the program's alternate stack instead of installing it, and gives
 * the thread an mmap'd one of memwatch's own: a heap-allocated stack (faulthandler's) may
 * share a page with a watched object, and the kernel cannot deliver a signal onto a
 * protected page (the process would die silently on the next watched write).
 *
 * sigaction() and signal() are async-signal-safe, like the functions they replace:
 * programs call sigaction() from signal handlers (faulthandler restores its previous
 * handler that way). */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "signal_chain.h"

__attribute__((constructor)) static void interpose_init(void)
{
    mw_signal_chain_resolve();   /* never resolve lazily inside a signal handler */
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    if (mw_signal_chain_sigaction(sig, act, oldact))
        return 0;
    return mw_signal_chain_real_sigaction(sig, act, oldact);
}

/* glibc's signal(): BSD semantics (SA_RESTART, the signal blocked while it runs). */
sighandler_t signal(int sig, sighandler_t handler)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&sa.sa_mask, sig);
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;   /* shares storage with sa_sigaction */
}

int sigaltstack(const stack_t *ss, stack_t *old)
{
    return mw_signal_chain_sigaltstack(ss, old);
}
