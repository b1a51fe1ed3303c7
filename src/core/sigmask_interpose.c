/* pthread_sigmask() and sigprocmask() for the injected library: SIGSEGV, SIGBUS and SIGTRAP
 * are never blocked. A write to a watched page raises one of them in the writing thread,
 * and a thread that blocks them (thread pools often block every signal before they start
 * their workers: torch's, OpenMP's) would be killed by the kernel instead of reaching
 * memwatch's handler. Blocking a synchronous fault signal has no use of its own (the kernel
 * forces it through), so leaving them out changes nothing else a program can observe, except
 * that the old mask it reads back never contains them. Linked only into the LD_PRELOAD
 * library (mw_sigchain). Async-signal-safe, like the functions it replaces. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

static void strip_fault_signals(sigset_t *set)
{
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
    sigdelset(set, SIGTRAP);
    /* glibc never lets its two internal signals (32: cancellation, 33: setxid) be blocked;
     * sigdelset() refuses to name them, so clear their bits directly. */
    unsigned long *bits = (unsigned long *)(void *)set;
    bits[0] &= ~((1UL << (32 - 1)) | (1UL << (33 - 1)));
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t copy;
    if (set && how != SIG_UNBLOCK) {
        copy = *set;
        strip_fault_signals(&copy);
        set = &copy;
    }
    /* The kernel's own call: nothing here depends on lazy symbol resolution. */
    if (syscall(SYS_rt_sigprocmask, how, set, old, (size_t)(_NSIG / 8)) != 0)
        return errno;
    return 0;
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    int err = pthread_sigmask(how, set, old);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
