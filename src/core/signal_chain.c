/* memwatch's fault handler and the chain behind it: see signal_chain.h for the design.
 *
 * Async-signal-safety: chain_handler and everything it calls (claim, next_snapshot,
 * mw_signal_chain_sigaction, the real sigaction, pthread_sigmask, raise) are
 * async-signal-safe; errno is saved and restored; the handler runs on the thread's
 * alternate signal stack when it has one (SA_ONSTACK), else on its normal stack. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "signal_chain.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

#define NVERSIONS 8

struct chain {
    int sig;
    _Atomic int installed;
    _Atomic unsigned cur;            /* index of the published version */
    _Atomic unsigned gen;            /* version counter for writers */
    struct sigaction next[NVERSIONS];
};

static struct chain chains[2] = { { .sig = SIGSEGV }, { .sig = SIGBUS } };
static _Atomic(sigaction_fn) real_sigaction_ptr;
static _Atomic(mw_fault_claim_fn) claim_fn;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static struct chain *chain_of(int sig)
{
    return sig == SIGSEGV ? &chains[0] : sig == SIGBUS ? &chains[1] : NULL;
}

void mw_signal_chain_resolve(void)
{
    if (atomic_load(&real_sigaction_ptr))
        return;
    /* RTLD_NEXT from here finds libc's sigaction both when this code is in the main
     * executable and when it is in a preloaded library that defines sigaction itself. */
    sigaction_fn f = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!f)
        f = (sigaction_fn)dlsym(RTLD_DEFAULT, "__sigaction");
    atomic_store(&real_sigaction_ptr, f);
}

int mw_signal_chain_real_sigaction(int sig, const struct sigaction *act,
                                   struct sigaction *oldact)
{
    sigaction_fn f = atomic_load_explicit(&real_sigaction_ptr, memory_order_acquire);
    if (!f) {
        /* Called before our constructor: a runtime preloaded ahead of us (ASan's, in a
         * sanitized build) installing its handlers during its own initialization, never
         * from a signal handler. */
        mw_signal_chain_resolve();
        f = atomic_load_explicit(&real_sigaction_ptr, memory_order_acquire);
    }
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    return f(sig, act, oldact);
}

/* Async-signal-safe. */
static void next_snapshot(struct chain *c, struct sigaction *out)
{
    unsigned k = atomic_load_explicit(&c->cur, memory_order_acquire);
    memcpy(out, &c->next[k], sizeof(*out));
}

/* Async-signal-safe. */
static void next_publish(struct chain *c, const struct sigaction *act, struct sigaction *old)
{
    unsigned k = (atomic_fetch_add_explicit(&c->gen, 1, memory_order_relaxed) + 1) % NVERSIONS;
    memcpy(&c->next[k], act, sizeof(*act));
    unsigned prev = atomic_exchange_explicit(&c->cur, k, memory_order_acq_rel);
    if (old)
        memcpy(old, &c->next[prev], sizeof(*old));
}

/* Async-signal-safe: makes the default action the real one again. */
static void restore_default(struct chain *c)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    atomic_store(&c->installed, 0);
    mw_signal_chain_real_sigaction(c->sig, &dfl, NULL);
}

/* Async-signal-safe: the fault was not memwatch's; hand it to the next handler. */
static void chain_to_next(struct chain *c, int sig, siginfo_t *info, void *uc)
{
    struct sigaction next;
    next_snapshot(c, &next);
    int from_kernel = info && info->si_code > 0;

    if (!(next.sa_flags & SA_SIGINFO) &&
        (next.sa_handler == SIG_DFL || next.sa_handler == SIG_IGN)) {
        if (next.sa_handler == SIG_IGN && !from_kernel)
            return;                  /* an ignored signal sent by kill/raise */
        /* The kernel forces the default action for a fault whose handler is SIG_IGN, so
         * both cases die by the real signal, as they would without memwatch. */
        restore_default(c);
        if (!from_kernel)
            raise(sig);              /* nothing would re-execute: deliver it again */
        return;                      /* re-execute the faulting instruction */
    }

    if (next.sa_flags & SA_RESETHAND) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        next_publish(c, &dfl, NULL);
    }
    /* Run it with the mask it asked for, as the kernel would have. */
    sigset_t mask, saved;
    memcpy(&mask, &next.sa_mask, sizeof(mask));
    if (!(next.sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, &saved);
    if (next.sa_flags & SA_SIGINFO)
        next.sa_sigaction(sig, info, uc);
    else
        next.sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* The handler. Async-signal-safe; saves and restores errno. */
static void chain_handler(int sig, siginfo_t *info, void *uc)
{
    int saved_errno = errno;
    struct chain *c = chain_of(sig);
    mw_fault_claim_fn claim = atomic_load_explicit(&claim_fn, memory_order_acquire);
    if (c) {
        if (!(claim && claim(sig, info, uc)))
            chain_to_next(c, sig, info, uc);
    }
    errno = saved_errno;
}

static void our_action(struct sigaction *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sa_sigaction = chain_handler;
    sa->sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa->sa_mask);
}

int mw_signal_chain_install(mw_fault_claim_fn claim)
{
    mw_signal_chain_resolve();
    if (!atomic_load(&real_sigaction_ptr))
        return -ENOSYS;
    pthread_mutex_lock(&install_lock);
    atomic_store(&claim_fn, claim);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        struct chain *c = &chains[i];
        if (atomic_load(&c->installed))
            continue;
        struct sigaction ours, prev;
        our_action(&ours);
        if (mw_signal_chain_real_sigaction(c->sig, &ours, &prev) != 0) {
            rc = -errno;
            break;
        }
        if (prev.sa_sigaction == chain_handler && (prev.sa_flags & SA_SIGINFO)) {
            /* Already ours (e.g. re-installed after restore_default): keep next. */
        } else {
            next_publish(c, &prev, NULL);
        }
        atomic_store(&c->installed, 1);
    }
    pthread_mutex_unlock(&install_lock);
    return rc;
}

int mw_signal_chain_installed(int sig)
{
    struct chain *c = chain_of(sig);
    return c && atomic_load(&c->installed);
}

int mw_signal_chain_ensure_first(void)
{
    int fixed = 0;
    pthread_mutex_lock(&install_lock);
    for (int i = 0; i < 2; i++) {
        struct chain *c = &chains[i];
        if (!atomic_load(&c->installed))
            continue;
        struct sigaction cur;
        if (mw_signal_chain_real_sigaction(c->sig, NULL, &cur) != 0)
            continue;
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == chain_handler)
            continue;
        /* Someone replaced us without going through sigaction(): chain them. */
        struct sigaction ours;
        our_action(&ours);
        next_publish(c, &cur, NULL);
        if (mw_signal_chain_real_sigaction(c->sig, &ours, NULL) == 0)
            fixed++;
    }
    pthread_mutex_unlock(&install_lock);
    return fixed;
}

/* Async-signal-safe. */
int mw_signal_chain_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    struct chain *c = chain_of(sig);
    if (!c || !atomic_load_explicit(&c->installed, memory_order_acquire))
        return 0;
    if (act && (act->sa_flags & SA_SIGINFO) && act->sa_sigaction == chain_handler) {
        /* Someone handing our own handler back (restoring what a raw query returned):
         * we are already first; keep next as is. */
        if (oldact)
            next_snapshot(c, oldact);
        return 1;
    }
    if (act) {
        next_publish(c, act, oldact);
    } else if (oldact) {
        next_snapshot(c, oldact);
    }
    return 1;
}

/* Alternate signal stacks: one per thread that asks, freed at thread exit. */
static pthread_key_t altstack_key;
static pthread_once_t altstack_once = PTHREAD_ONCE_INIT;
static __thread int altstack_done __attribute__((tls_model("initial-exec")));
static size_t altstack_size;

/* The kernel's sigaltstack: a raw system call, since the injected library may define
 * sigaltstack itself. The kernel's stack_t is glibc's on Linux. */
static int real_sigaltstack(const stack_t *ss, stack_t *old)
{
    return (int)syscall(SYS_sigaltstack, ss, old);
}

static void altstack_free(void *mem)
{
    stack_t ss, cur;
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    if (real_sigaltstack(NULL, &cur) == 0 && cur.ss_sp == mem)
        real_sigaltstack(&ss, NULL);
    munmap(mem, altstack_size);
}

static void altstack_key_init(void)
{
    long min = sysconf(_SC_SIGSTKSZ);
    altstack_size = (size_t)(min > 16384 ? min : 16384) * 4;
    pthread_key_create(&altstack_key, altstack_free);
}

int mw_signal_altstack_ensure(void)
{
    if (altstack_done)
        return 0;
    stack_t cur;
    if (real_sigaltstack(NULL, &cur) != 0)
        return -errno;
    altstack_done = 1;
    if (!(cur.ss_flags & SS_DISABLE))
        return 0;                    /* the thread has one already (e.g. faulthandler's) */
    pthread_once(&altstack_once, altstack_key_init);
    size_t size = altstack_size;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = mem;
    ss.ss_size = size;
    if (real_sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(mem, size);
        return -e;
    }
    pthread_setspecific(altstack_key, mem);
    return 0;
}

/* The stack the program believes it installed (see mw_signal_chain_sigaltstack). */
static __thread stack_t virtual_stack __attribute__((tls_model("initial-exec")));
static __thread int has_virtual_stack __attribute__((tls_model("initial-exec")));

int mw_signal_chain_sigaltstack(const stack_t *ss, stack_t *old)
{
    stack_t real;
    if (real_sigaltstack(NULL, &real) != 0)
        return -1;
    if (ss && !(ss->ss_flags & SS_DISABLE) && ss->ss_size < (size_t)MINSIGSTKSZ) {
        errno = ENOMEM;
        return -1;
    }
    if (ss && (real.ss_flags & SS_ONSTACK)) {
        errno = EPERM;         /* changing it while running on it, as the kernel says */
        return -1;
    }
    if (old) {
        if (has_virtual_stack) {
            *old = virtual_stack;
            old->ss_flags = real.ss_flags & SS_ONSTACK;
        } else {
            memset(old, 0, sizeof(*old));
            old->ss_flags = SS_DISABLE;
        }
    }
    if (ss) {
        if (ss->ss_flags & SS_DISABLE) {
            has_virtual_stack = 0;
        } else {
            virtual_stack = *ss;
            has_virtual_stack = 1;
            if (mw_signal_altstack_ensure() != 0)
                return real_sigaltstack(ss, NULL);   /* no stack of ours: use theirs */
        }
    }
    return 0;
}
