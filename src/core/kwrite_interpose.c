/* read(), readv(), pread(), preadv(), recv(), recvfrom() and recvmsg() for the injected
 * library: a kernel write into a protected page fails with EFAULT (the kernel does not
 * take a write-protection fault for the program), so under memwatch `f.readinto(buf)`,
 * `sock.recv_into(buf)`, `os.readv` or `os.preadv` into a watched buffer would raise
 * OSError where python3 succeeds. Each call first opens the watched pages of its buffers
 * and pins them until it returns (mw_engine_kwrite_begin): the call then behaves exactly
 * as without memwatch, and the check reports what it wrote, attributed to the calling
 * thread. When the pin table is full (64 calls in flight), an EFAULT on watched memory is
 * retried once after opening the pages again (Wine's fallback does the same).
 *
 * Cost when nothing is watched: one load and a compare per call. Linked only into the
 * LD_PRELOAD library (mw_sigchain), like sigaction_interpose.c. */

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "watcher.h"

/* glibc declares read()'s buffer write-only (access attribute), and our definitions
 * inherit that: GCC then takes handing the address to the engine as a read of
 * uninitialized memory. Only the address is used. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define MAX_IOV_PINS 8

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*readv_fn)(int, const struct iovec *, int);
typedef ssize_t (*preadv_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*preadv2_fn)(int, const struct iovec *, int, off_t, int);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*recvfrom_fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

static struct {
    read_fn read;
    pread_fn pread, pread64;
    readv_fn readv;
    preadv_fn preadv, preadv64;
    preadv2_fn preadv2, preadv64v2;
    recv_fn recv;
    recvfrom_fn recvfrom;
    recvmsg_fn recvmsg;
} real;

/* Resolved before any thread can call them (never lazily inside a call). */
__attribute__((constructor)) static void kwrite_interpose_init(void)
{
    real.read = (read_fn)dlsym(RTLD_NEXT, "read");
    real.pread = (pread_fn)dlsym(RTLD_NEXT, "pread");
    real.pread64 = (pread_fn)dlsym(RTLD_NEXT, "pread64");
    real.readv = (readv_fn)dlsym(RTLD_NEXT, "readv");
    real.preadv = (preadv_fn)dlsym(RTLD_NEXT, "preadv");
    real.preadv64 = (preadv_fn)dlsym(RTLD_NEXT, "preadv64");
    real.preadv2 = (preadv2_fn)dlsym(RTLD_NEXT, "preadv2");
    real.preadv64v2 = (preadv2_fn)dlsym(RTLD_NEXT, "preadv64v2");
    real.recv = (recv_fn)dlsym(RTLD_NEXT, "recv");
    real.recvfrom = (recvfrom_fn)dlsym(RTLD_NEXT, "recvfrom");
    real.recvmsg = (recvmsg_fn)dlsym(RTLD_NEXT, "recvmsg");
}

struct pins {
    int n;
    int token[MAX_IOV_PINS];
};

/* Addresses as integers: glibc declares read()'s buffer write-only, and the compiler
 * would take passing it on as a read of uninitialized memory. */
static void pin_buf(struct pins *p, uintptr_t buf, size_t len)
{
    int t = mw_engine_kwrite_begin((const void *)buf, len);
    if (t && p->n < MAX_IOV_PINS)
        p->token[p->n++] = t;
    else if (t)
        mw_engine_kwrite_end(t);   /* no room to remember it: the retry covers the call */
}

static void pin_iov(struct pins *p, const struct iovec *iov, int n)
{
    for (int i = 0; iov && i < n; i++)
        pin_buf(p, (uintptr_t)iov[i].iov_base, iov[i].iov_len);
}

static void unpin(struct pins *p)
{
    int saved = errno;
    for (int i = 0; i < p->n; i++)
        mw_engine_kwrite_end(p->token[i]);
    p->n = 0;
    errno = saved;
}

static int retry_buf(ssize_t r, uintptr_t buf, size_t len)
{
    return r < 0 && errno == EFAULT && mw_engine_owns_range((const void *)buf, len);
}

static int retry_iov(ssize_t r, const struct iovec *iov, int n)
{
    if (!(r < 0 && errno == EFAULT) || !iov)
        return 0;
    for (int i = 0; i < n; i++)
        if (mw_engine_owns_range(iov[i].iov_base, iov[i].iov_len))
            return 1;
    return 0;
}

/* One body for every single-buffer call: pin, call, retry once on EFAULT. */
#define KWRITE_BUF(call, buf, len)                                                         \
    do {                                                                                   \
        struct pins p_ = { 0, { 0 } };                                                     \
        pin_buf(&p_, (uintptr_t)(buf), len);                                               \
        ssize_t r_ = call;                                                                 \
        if (retry_buf(r_, (uintptr_t)(buf), len)) {                                        \
            unpin(&p_);                                                                    \
            pin_buf(&p_, (uintptr_t)(buf), len);                                                \
            r_ = call;                                                                     \
        }                                                                                  \
        unpin(&p_);                                                                        \
        return r_;                                                                         \
    } while (0)

#define KWRITE_IOV(call, iov, n)                                                           \
    do {                                                                                   \
        struct pins p_ = { 0, { 0 } };                                                     \
        pin_iov(&p_, iov, n);                                                              \
        ssize_t r_ = call;                                                                 \
        if (retry_iov(r_, iov, n)) {                                                       \
            unpin(&p_);                                                                    \
            pin_iov(&p_, iov, n);                                                          \
            r_ = call;                                                                     \
        }                                                                                  \
        unpin(&p_);                                                                        \
        return r_;                                                                         \
    } while (0)

ssize_t read(int fd, void *buf, size_t n)
{
    KWRITE_BUF(real.read(fd, buf, n), buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    KWRITE_BUF(real.pread(fd, buf, n, off), buf, n);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    KWRITE_BUF(real.pread64(fd, buf, n, off), buf, n);
}

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    KWRITE_IOV(real.readv(fd, iov, n), iov, n);
}

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    KWRITE_IOV(real.preadv(fd, iov, n, off), iov, n);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
    KWRITE_IOV(real.preadv64(fd, iov, n, off), iov, n);
}

ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    KWRITE_IOV(real.preadv2(fd, iov, n, off, flags), iov, n);
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    KWRITE_IOV(real.preadv64v2(fd, iov, n, off, flags), iov, n);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    KWRITE_BUF(real.recv(fd, buf, n, flags), buf, n);
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                 socklen_t *addrlen)
{
    KWRITE_BUF(real.recvfrom(fd, buf, n, flags, addr, addrlen), buf, n);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    KWRITE_IOV(real.recvmsg(fd, msg, flags), msg ? msg->msg_iov : NULL,
               msg ? (int)msg->msg_iovlen : 0);
}
