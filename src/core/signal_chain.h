/* memwatch's SIGSEGV/SIGBUS handler and the chain of handlers behind it.
 *
 * DESIGN
 * - memwatch's handler is installed once (mw_signal_chain_install) with
 *   SA_SIGINFO|SA_ONSTACK|SA_NODEFER|SA_RESTART. It first asks the detector (claim) whether
 *   the fault is on a page memwatch owns; if not, it calls the "next" handler: the one
 *   installed before memwatch, or any installed after it through sigaction()/signal()
 *   (see sigaction_interpose.c), with that handler's own convention (SA_SIGINFO or not),
 *   mask and SA_RESETHAND.
 * - If next is SIG_DFL (or SIG_IGN for a fault), memwatch restores SIG_DFL for real and
 *   returns: the faulting instruction runs again and the process dies by the real signal
 *   (a signal sent with kill/raise is re-raised instead, since nothing re-executes).
 * - "next" is read inside the handler and written by sigaction() calls that may
 *   themselves run in a signal handler (faulthandler restores its previous handler that
 *   way): no locks. It is kept in a small ring of versions; a writer fills a fresh
 *   version and publishes its index with one atomic exchange; a reader copies the
 *   published version.
 * - mw_signal_chain_ensure_first() re-installs memwatch's handler if something replaced
 *   it behind the interposer's back (a raw rt_sigaction syscall, a library resolving
 *   libc's sigaction directly), chaining the intruder.
 * - Alternate stacks: see mw_signal_chain_sigaltstack.
 * Everything that runs in the handler is async-signal-safe. */
#ifndef MW_SIGNAL_CHAIN_H
#define MW_SIGNAL_CHAIN_H

#include <signal.h>

/* Returns non-zero when the signal was handled (the faulting instruction may re-run). */
typedef int (*mw_fault_claim_fn)(int sig, siginfo_t *info, void *ucontext);

/* Installs memwatch's handler for SIGSEGV and SIGBUS (idempotent). 0 or -errno. */
int mw_signal_chain_install(mw_fault_claim_fn claim);
/* Is memwatch's handler installed for sig (as far as memwatch knows)? */
int mw_signal_chain_installed(int sig);
/* Re-installs memwatch's handler where something replaced it; returns how many signals
 * needed it (0 normally). Not for use in a signal handler. */
int mw_signal_chain_ensure_first(void);

/* For the interposed sigaction(): if sig is SIGSEGV/SIGBUS and memwatch's handler is
 * installed, records act (if any) as the next handler, stores the previous next handler
 * in oldact (if any) and returns 1; otherwise returns 0 and the caller passes the call to
 * the real sigaction. Async-signal-safe. */
int mw_signal_chain_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);
/* libc's sigaction, whatever interposes it. Async-signal-safe once resolved (it is
 * resolved by mw_signal_chain_install and by mw_signal_chain_resolve). */
int mw_signal_chain_real_sigaction(int sig, const struct sigaction *act,
                                   struct sigaction *oldact);
void mw_signal_chain_resolve(void);

/* Gives the calling thread an alternate signal stack if it has none (once per thread;
 * freed at thread exit). 0 or -errno. */
int mw_signal_altstack_ensure(void);

/* For the interposed sigaltstack(): a program's alternate stack is often heap memory
 * (faulthandler allocates it with PyMem_Malloc) and may share pages with watched
 * objects; the kernel cannot deliver a signal onto a protected stack page. So the
 * program's stack is only recorded (and reported back by later calls), and the thread
 * gets an mmap'd stack of memwatch's own instead. Same contract as sigaltstack(2):
 * 0, or -1 with errno. Not for use in a signal handler (it may allocate). */
int mw_signal_chain_sigaltstack(const stack_t *ss, stack_t *old);

#endif
