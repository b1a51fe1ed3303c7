/* close(), close_range(), closefrom(), dup2() and dup3() for the injected library: the
 * script may close or replace any descriptor but memwatch's own (own_fds.h), which stay
 * open under it while the call succeeds for everything else. The calls then go to the C
 * library (cancellation points and all). Linked only into the LD_PRELOAD library
 * (mw_sigchain). */
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include "own_fds.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Resolved by the constructor, or at first use when a library loaded ahead of this one
 * calls them from its own constructor (see kwrite_interpose.c). */
#define REAL(name)                                                                  \
    static __typeof__(name) *name##_fn(void)                                       \
    {                                                                               \
        static __typeof__(name) *real;                                              \
        if (!real)                                                                  \
            real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                     \
        return real;                                                                \
    }
REAL(close)
REAL(close_range)
REAL(closefrom)
REAL(dup2)
REAL(dup3)

__attribute__((constructor)) static void fd_interpose_init(void)
{
    close_fn();
    close_range_fn();
    closefrom_fn();
    dup2_fn();
    dup3_fn();
}

int close(int fd)
{
    if (mw_own_fd_is(fd))
        return 0;                 /* memwatch's: the script goes on as if it were closed */
    return close_fn()(fd);
}

/* close_range over [first, last] around memwatch's descriptors. */
int close_range(unsigned first, unsigned last, int flags)
{
    int own[8];
    int n = first > last || ((unsigned)flags & CLOSE_RANGE_CLOEXEC)
                ? 0 : mw_own_fds_in(first, last, own, 8);
    unsigned from = first;
    for (int i = 0; i < n; i++) {
        unsigned fd = (unsigned)own[i];
        if (fd > from && close_range_fn()(from, fd - 1, flags) != 0)
            return -1;
        from = fd + 1;
    }
    if (n > 0 && from > last)
        return 0;
    return close_range_fn()(from, last, flags);
}

void closefrom(int lowfd)
{
    int own[8];
    int n = mw_own_fds_in(lowfd < 0 ? 0u : (unsigned)lowfd, ~0U, own, 8);
    if (n == 0) {
        closefrom_fn()(lowfd);
        return;
    }
    /* Below each of memwatch's descriptors, one by one (there are few below them); then
     * everything above the last. */
    for (int fd = lowfd < 0 ? 0 : lowfd, i = 0; i < n; fd = own[i++] + 1)
        for (; fd < own[i]; fd++)
            close_fn()(fd);
    closefrom_fn()(own[n - 1] + 1);
}

int dup2(int oldfd, int newfd)
{
    if (oldfd != newfd && mw_own_fd_is(newfd) && mw_own_fd_evacuate(newfd) != 0) {
        errno = EBUSY;
        return -1;
    }
    return dup2_fn()(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags)
{
    if (oldfd != newfd && mw_own_fd_is(newfd) && mw_own_fd_evacuate(newfd) != 0) {
        errno = EBUSY;
        return -1;
    }
    return dup3_fn()(oldfd, newfd, flags);
}
