/* memwatch's own descriptors (see own_fds.h). */
#include "own_fds.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 8

static _Atomic int *_Atomic slot[SLOTS];

int mw_own_fd_add(_Atomic int *where)
{
    for (int i = 0; i < SLOTS; i++) {
        _Atomic int *none = NULL;
        if (atomic_compare_exchange_strong(&slot[i], &none, where))
            return 0;
    }
    return -1;
}

int mw_own_fd_is(int fd)
{
    if (fd < 0)
        return 0;
    for (int i = 0; i < SLOTS; i++) {
        _Atomic int *w = atomic_load(&slot[i]);
        if (w && atomic_load(w) == fd)
            return 1;
    }
    return 0;
}

int mw_own_fd_evacuate(int fd)
{
    for (int i = 0; i < SLOTS; i++) {
        _Atomic int *w = atomic_load(&slot[i]);
        if (!w || atomic_load(w) != fd)
            continue;
        /* A copy first, then the owner's variable, then the old number goes: a reader
         * sees one or the other, both naming the same open file. */
        int moved = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
        if (moved < 0)
            return -1;
        atomic_store(w, moved);
        syscall(SYS_close, fd);
    }
    return 0;
}

int mw_own_fds_in(unsigned lo, unsigned hi, int *out, int max)
{
    int n = 0;
    for (int i = 0; i < SLOTS && n < max; i++) {
        _Atomic int *w = atomic_load(&slot[i]);
        int fd = w ? atomic_load(w) : -1;
        if (fd >= 0 && (unsigned)fd >= lo && (unsigned)fd <= hi)
            out[n++] = fd;
    }
    for (int i = 1; i < n; i++)            /* a handful: insertion sort */
        for (int k = i; k > 0 && out[k - 1] > out[k]; k--) {
            int t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}
