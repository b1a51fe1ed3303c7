/* See xproc_page.h. Only atomics and direct system calls (futex, getpid, kill,
 * clock_gettime): everything here runs in fault handlers. The futex is a shared one (not
 * FUTEX_PRIVATE_FLAG): the word lives in memory several processes map. */
#include "xproc_page.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic unsigned wait_ms = MW_XPROC_WAIT_MS;

void mw_xproc_set_wait(unsigned ms)
{
    atomic_store(&wait_ms, ms < MW_XPROC_WAIT_MS ? ms : MW_XPROC_WAIT_MS);
}

static uint32_t self_pid(void)
{
    return (uint32_t)syscall(SYS_getpid);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int owner_gone(uint32_t pid)
{
    return syscall(SYS_kill, (pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* e's owner word when another process shares the page, else NULL. */
static _Atomic uint32_t *shared_word(const struct mw_page *e)
{
    struct mw_xproc_word *w = atomic_load_explicit(&((struct mw_page *)e)->xowner,
                                                   memory_order_acquire);
    return w && atomic_load_explicit(&w->sharers, memory_order_acquire) > 1 ? &w->owner : NULL;
}

int mw_xproc_shared(const struct mw_page *e)
{
    return shared_word(e) != NULL;
}

int mw_xproc_try(struct mw_page *e)
{
    _Atomic uint32_t *word = shared_word(e);
    if (!word)
        return 1;
    uint32_t me = self_pid(), cur = 0;
    return atomic_compare_exchange_strong(word, &cur, me) || cur == me;
}

void mw_xproc_acquire(struct mw_page *e)
{
    _Atomic uint32_t *word = shared_word(e);
    if (!word)
        return;
    int saved_errno = errno;
    uint32_t me = self_pid();
    int64_t deadline = -1;
    for (;;) {
        uint32_t cur = 0;
        if (atomic_compare_exchange_strong(word, &cur, me) || cur == me)
            break;
        if (owner_gone(cur)) {
            atomic_compare_exchange_strong(word, &cur, 0);   /* died holding it */
            continue;
        }
        int64_t now = monotonic_ms();
        if (deadline < 0)
            deadline = now + atomic_load_explicit(&wait_ms, memory_order_relaxed);
        else if (now >= deadline)
            break;   /* see xproc_page.h: the write goes ahead */
        struct timespec ts = {0, 2 * 1000 * 1000};
        syscall(SYS_futex, word, FUTEX_WAIT, cur, &ts, NULL, 0);
    }
    errno = saved_errno;
}

void mw_xproc_release(struct mw_page *e)
{
    struct mw_xproc_word *w = atomic_load_explicit(&e->xowner, memory_order_acquire);
    if (!w)
        return;
    _Atomic uint32_t *word = &w->owner;   /* given back even if sharers grew meanwhile */
    if (!atomic_load_explicit(word, memory_order_relaxed))
        return;   /* a page no second process binds is never owned: no system call */
    uint32_t me = self_pid();
    if (atomic_compare_exchange_strong(word, &me, 0)) {
        int saved_errno = errno;
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        errno = saved_errno;
    }
}
