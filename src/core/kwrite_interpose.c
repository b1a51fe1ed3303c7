/* The C library's system-call wrappers that write into the caller's memory, for the
 * injected library.
 *
 * A kernel write into a protected page fails with EFAULT (the kernel does not take a
 * write-protection fault on the program's behalf), under both mechanisms. Watched bytes
 * share pages with the rest of the program, so any buffer the kernel fills can lie on a
 * protected page, beside watched bytes or inside them: os.getcwd(), os.listdir() (the
 * DIR's buffer), os.urandom(), epoll.poll(), sched_getaffinity(), f.readinto(buf),
 * sock.recv_into(buf)... Under memwatch they would fail where python3 succeeds. Each
 * wrapper here first opens the watched pages of the buffers the call may write and pins
 * them until it returns (mw_engine_kwrite_begin): the call then behaves exactly as without
 * memwatch, and the check reports what it wrote into watched bytes, attributed to the
 * calling thread and its Python line.
 *
 * When the pin table is full (64 calls in flight), a call that failed with EFAULT on
 * watched memory is made again once after opening the pages again (Wine's fallback does
 * the same), for the calls where a failed attempt consumed nothing (reads of files and
 * sockets, paths, random bytes); calls whose failure has side effects (accept, wait,
 * epoll_wait, sigtimedwait) are not repeated.
 *
 * What this cannot see: calls the C library makes internally (they write memwatch-free
 * stack buffers in practice), and calls made through a handle of the C library itself
 * (ctypes.CDLL("libc.so.6").getcwd): dlsym() on that handle finds the C library's own
 * definition. ctypes.CDLL(None) and every call from python3 or an extension module come
 * here. README "Backends" lists them.
 *
 * Cost when nothing is watched: one load and a compare per call. Linked only into the
 * LD_PRELOAD library (mw_sigchain), like sigaction_interpose.c. */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "watcher.h"

/* glibc declares read()'s buffer write-only (access attribute), and our definitions
 * inherit that: GCC then takes handing the address to the engine as a read of
 * uninitialized memory. Only the address is used. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/* readdir_r() is deprecated, but programs still call it, and its DIR is filled the same. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ---- pins ------------------------------------------------------------------------------ */

#define MAX_PINS 8

struct pins {
    int ntokens;
    int token[MAX_PINS];
    int nranges;
    struct {
        uintptr_t addr;
        size_t len;
    } range[MAX_PINS];
};

/* Addresses as integers: see the pragma above. */
static void pin(struct pins *p, uintptr_t addr, size_t len)
{
    if (!addr || !len)
        return;
    if (p->nranges < MAX_PINS) {
        p->range[p->nranges].addr = addr;
        p->range[p->nranges].len = len;
        p->nranges++;
    }
    int t = mw_engine_kwrite_begin((const void *)addr, len);
    if (t && p->ntokens < MAX_PINS)
        p->token[p->ntokens++] = t;
    else if (t)
        mw_engine_kwrite_end(t);   /* no room to remember it: the retry covers the call */
}

static void pin_iov(struct pins *p, const struct iovec *iov, size_t n)
{
    for (size_t i = 0; iov && i < n; i++)
        pin(p, (uintptr_t)iov[i].iov_base, iov[i].iov_len);
}

static void unpin(struct pins *p)
{
    int saved = errno;
    for (int i = 0; i < p->ntokens; i++)
        mw_engine_kwrite_end(p->token[i]);
    p->ntokens = 0;
    errno = saved;
}

/* Did the call fail because of a page memwatch protects? Then it is worth one retry. */
static int failed_on_watched(const struct pins *p, int failed)
{
    if (!failed || errno != EFAULT)
        return 0;
    for (int i = 0; i < p->nranges; i++)
        if (mw_engine_owns_range((const void *)p->range[i].addr, p->range[i].len))
            return 1;
    return 0;
}

/* Pins again what the first attempt pinned. */
static void repin(struct pins *p)
{
    struct pins again = *p;
    unpin(p);
    p->nranges = 0;
    for (int i = 0; i < again.nranges; i++)
        pin(p, again.range[i].addr, again.range[i].len);
}

/* The body of every wrapper: pins (statements using p_), the call, the result type and the
 * test of failure on r_. RETRY(...) makes the call again once on EFAULT; ONCE(...) never. */
#define KWRITE_RETRY(type, call, failed, pinning)                                             \
    do {                                                                                   \
        if (!interposers_ready)                                                            \
            return call;                                                                   \
        struct pins p_ = { 0 };                                                            \
        pinning;                                                                           \
        type r_ = call;                                                                    \
        if (failed_on_watched(&p_, failed)) {                                              \
            repin(&p_);                                                                    \
            r_ = call;                                                                     \
        }                                                                                  \
        unpin(&p_);                                                                        \
        return r_;                                                                         \
    } while (0)

#define KWRITE_ONCE(type, call, pinning)                                                      \
    do {                                                                                   \
        if (!interposers_ready)                                                            \
            return call;                                                                   \
        struct pins p_ = { 0 };                                                            \
        pinning;                                                                           \
        type r_ = call;                                                                    \
        unpin(&p_);                                                                        \
        return r_;                                                                         \
    } while (0)

#define PIN(addr, len) pin(&p_, (uintptr_t)(addr), (len))
#define PIN_OBJ(ptr) PIN((ptr), sizeof(*(ptr)))
#define PIN_IOV(iov, n) pin_iov(&p_, (iov), (size_t)(n))

/* ---- the real functions ------------------------------------------------------------------ */

#define KWRITE_CALLS(X)                                                                    \
    X(read) X(pread) X(pread64) X(readv) X(preadv) X(preadv64) X(preadv2) X(preadv64v2)     \
    X(recv) X(recvfrom) X(recvmsg) X(recvmmsg) X(accept) X(accept4) X(getsockopt)          \
    X(getsockname) X(getpeername) X(getcwd) X(readlink) X(readlinkat) X(getrandom)          \
    X(getentropy) X(readdir) X(readdir64) X(readdir_r) X(readdir64_r) X(getdents64)         \
    X(stat) X(stat64) X(lstat) X(lstat64) X(fstat) X(fstat64) X(fstatat) X(fstatat64)      \
    X(statx) X(statfs) X(fstatfs) X(statvfs) X(fstatvfs) X(uname) X(sysinfo) X(getrusage)   \
    X(times) X(getrlimit) X(prlimit) X(clock_gettime) X(clock_getres) X(nanosleep)         \
    X(clock_nanosleep) X(epoll_wait) X(epoll_pwait) X(poll) X(ppoll) X(select) X(pselect)   \
    X(sched_getaffinity) X(pipe) X(pipe2) X(socketpair) X(wait) X(waitpid) X(wait3)        \
    X(wait4) X(waitid) X(sigtimedwait) X(sigwaitinfo) X(sigpending) X(getgroups)           \
    X(getresuid) X(getresgid) X(getxattr) X(lgetxattr) X(fgetxattr) X(listxattr)           \
    X(llistxattr) X(flistxattr) X(fcntl) X(ioctl)

#define DECLARE_REAL(name)                                                                 \
    static __typeof__(name) *real_##name;                                                  \
    static __typeof__(name) *real_of_##name(void)                                          \
    {                                                                                      \
        if (!real_##name)                                                                  \
            real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name);                \
        return real_##name;                                                                \
    }
KWRITE_CALLS(DECLARE_REAL)

/* Resolved by the constructor, before any thread of the program exists. A library loaded
 * ahead of this one (the sanitizer runtime of a sanitized build, another preloaded tool)
 * may call one of them from its own constructor, before ours ran: then it is resolved
 * on first use, which is still single-threaded start-up. */
#define REAL(name) real_of_##name()

/* Set by the constructor. Before it, a library loaded ahead of this one may already call
 * these (a sanitized build's runtime calls getrlimit while it starts, before it can check
 * any memory): the call goes straight to the C library, and the wrappers themselves are
 * not instrumented by the sanitizers (their instrumentation needs the runtime started). */
static int interposers_ready;
#define INTERPOSER __attribute__((no_sanitize("address", "undefined")))

__attribute__((constructor)) static void kwrite_interpose_init(void)
{
#define RESOLVE(name) (void)REAL(name);
    KWRITE_CALLS(RESOLVE)
#undef RESOLVE
    interposers_ready = 1;
}

/* ---- files and sockets --------------------------------------------------------------------- */

INTERPOSER ssize_t read(int fd, void *buf, size_t n)
{
    KWRITE_RETRY(ssize_t, REAL(read)(fd, buf, n), r_ < 0, PIN(buf, n));
}

INTERPOSER ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    KWRITE_RETRY(ssize_t, REAL(pread)(fd, buf, n, off), r_ < 0, PIN(buf, n));
}

INTERPOSER ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    KWRITE_RETRY(ssize_t, REAL(pread64)(fd, buf, n, off), r_ < 0, PIN(buf, n));
}

INTERPOSER ssize_t readv(int fd, const struct iovec *iov, int n)
{
    KWRITE_RETRY(ssize_t, REAL(readv)(fd, iov, n), r_ < 0, PIN_IOV(iov, n));
}

INTERPOSER ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    KWRITE_RETRY(ssize_t, REAL(preadv)(fd, iov, n, off), r_ < 0, PIN_IOV(iov, n));
}

INTERPOSER ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
    KWRITE_RETRY(ssize_t, REAL(preadv64)(fd, iov, n, off), r_ < 0, PIN_IOV(iov, n));
}

INTERPOSER ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    KWRITE_RETRY(ssize_t, REAL(preadv2)(fd, iov, n, off, flags), r_ < 0, PIN_IOV(iov, n));
}

INTERPOSER ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    KWRITE_RETRY(ssize_t, REAL(preadv64v2)(fd, iov, n, off, flags), r_ < 0, PIN_IOV(iov, n));
}

INTERPOSER ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    KWRITE_RETRY(ssize_t, REAL(recv)(fd, buf, n, flags), r_ < 0, PIN(buf, n));
}

/* The address out-parameters: *len bytes at addr, and *len itself. */
#define PIN_SOCKADDR(addr, len)                                                            \
    do {                                                                                   \
        PIN_OBJ(len);                                                                      \
        if ((len) && (addr))                                                               \
            PIN(addr, *(len));                                                             \
    } while (0)

INTERPOSER ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                 socklen_t *addrlen)
{
    KWRITE_RETRY(ssize_t, REAL(recvfrom)(fd, buf, n, flags, addr, addrlen), r_ < 0,
                 { PIN(buf, n); PIN_SOCKADDR(addr, addrlen); });
}

static void pin_msghdr(struct pins *p, struct msghdr *msg)
{
    if (!msg)
        return;
    pin(p, (uintptr_t)msg, sizeof(*msg));
    pin_iov(p, msg->msg_iov, msg->msg_iovlen);
    pin(p, (uintptr_t)msg->msg_name, msg->msg_namelen);
    pin(p, (uintptr_t)msg->msg_control, msg->msg_controllen);
}

INTERPOSER ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    KWRITE_RETRY(ssize_t, REAL(recvmsg)(fd, msg, flags), r_ < 0, pin_msghdr(&p_, msg));
}

INTERPOSER int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout)
{
    KWRITE_ONCE(int, REAL(recvmmsg)(fd, vec, n, flags, timeout), {
        PIN(vec, (size_t)n * sizeof(*vec));
        for (unsigned int i = 0; vec && i < n && i < MAX_PINS; i++)
            pin_msghdr(&p_, &vec[i].msg_hdr);
        PIN_OBJ(timeout);
    });
}

INTERPOSER int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    KWRITE_ONCE(int, REAL(accept)(fd, addr, len), PIN_SOCKADDR(addr, len));
}

INTERPOSER int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    KWRITE_ONCE(int, REAL(accept4)(fd, addr, len, flags), PIN_SOCKADDR(addr, len));
}

INTERPOSER int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    KWRITE_RETRY(int, REAL(getsockopt)(fd, level, name, val, len), r_ < 0,
                 PIN_SOCKADDR(val, len));
}

INTERPOSER int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    KWRITE_RETRY(int, REAL(getsockname)(fd, addr, len), r_ < 0, PIN_SOCKADDR(addr, len));
}

INTERPOSER int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    KWRITE_RETRY(int, REAL(getpeername)(fd, addr, len), r_ < 0, PIN_SOCKADDR(addr, len));
}

INTERPOSER int socketpair(int domain, int type, int protocol, int sv[2])
{
    KWRITE_ONCE(int, REAL(socketpair)(domain, type, protocol, sv), PIN(sv, 2 * sizeof(int)));
}

INTERPOSER int pipe(int fds[2])
{
    KWRITE_ONCE(int, REAL(pipe)(fds), PIN(fds, 2 * sizeof(int)));
}

INTERPOSER int pipe2(int fds[2], int flags)
{
    KWRITE_ONCE(int, REAL(pipe2)(fds, flags), PIN(fds, 2 * sizeof(int)));
}

/* ---- paths, directories, random bytes --------------------------------------------------------- */

INTERPOSER char *getcwd(char *buf, size_t size)
{
    /* getcwd(NULL, 0) allocates: memory of the C library's, filled in user space. */
    KWRITE_RETRY(char *, REAL(getcwd)(buf, size), !r_, PIN(buf, size));
}

INTERPOSER ssize_t readlink(const char *path, char *buf, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(readlink)(path, buf, size), r_ < 0, PIN(buf, size));
}

INTERPOSER ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(readlinkat)(dirfd, path, buf, size), r_ < 0, PIN(buf, size));
}

INTERPOSER ssize_t getrandom(void *buf, size_t n, unsigned int flags)
{
    KWRITE_RETRY(ssize_t, REAL(getrandom)(buf, n, flags), r_ < 0, PIN(buf, n));
}

INTERPOSER int getentropy(void *buf, size_t n)
{
    KWRITE_RETRY(int, REAL(getentropy)(buf, n), r_ < 0, PIN(buf, n));
}

/* A DIR is one allocation of the C library's: its header and the buffer getdents fills. */
#define PIN_DIR(dirp) PIN(dirp, malloc_usable_size(dirp))

INTERPOSER struct dirent *readdir(DIR *dirp)
{
    KWRITE_ONCE(struct dirent *, REAL(readdir)(dirp), PIN_DIR(dirp));
}

INTERPOSER struct dirent64 *readdir64(DIR *dirp)
{
    KWRITE_ONCE(struct dirent64 *, REAL(readdir64)(dirp), PIN_DIR(dirp));
}

INTERPOSER int readdir_r(DIR *dirp, struct dirent *entry, struct dirent **result)
{
    KWRITE_ONCE(int, REAL(readdir_r)(dirp, entry, result),
                { PIN_DIR(dirp); PIN_OBJ(entry); PIN_OBJ(result); });
}

INTERPOSER int readdir64_r(DIR *dirp, struct dirent64 *entry, struct dirent64 **result)
{
    KWRITE_ONCE(int, REAL(readdir64_r)(dirp, entry, result),
                { PIN_DIR(dirp); PIN_OBJ(entry); PIN_OBJ(result); });
}

INTERPOSER ssize_t getdents64(int fd, void *buf, size_t n)
{
    KWRITE_ONCE(ssize_t, REAL(getdents64)(fd, buf, n), PIN(buf, n));
}

/* ---- file status ------------------------------------------------------------------------------ */

INTERPOSER int stat(const char *path, struct stat *st)
{
    KWRITE_RETRY(int, REAL(stat)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int stat64(const char *path, struct stat64 *st)
{
    KWRITE_RETRY(int, REAL(stat64)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int lstat(const char *path, struct stat *st)
{
    KWRITE_RETRY(int, REAL(lstat)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int lstat64(const char *path, struct stat64 *st)
{
    KWRITE_RETRY(int, REAL(lstat64)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstat(int fd, struct stat *st)
{
    KWRITE_RETRY(int, REAL(fstat)(fd, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstat64(int fd, struct stat64 *st)
{
    KWRITE_RETRY(int, REAL(fstat64)(fd, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    KWRITE_RETRY(int, REAL(fstatat)(dirfd, path, st, flags), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    KWRITE_RETRY(int, REAL(fstatat64)(dirfd, path, st, flags), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *st)
{
    KWRITE_RETRY(int, REAL(statx)(dirfd, path, flags, mask, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int statfs(const char *path, struct statfs *st)
{
    KWRITE_RETRY(int, REAL(statfs)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstatfs(int fd, struct statfs *st)
{
    KWRITE_RETRY(int, REAL(fstatfs)(fd, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int statvfs(const char *path, struct statvfs *st)
{
    KWRITE_RETRY(int, REAL(statvfs)(path, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER int fstatvfs(int fd, struct statvfs *st)
{
    KWRITE_RETRY(int, REAL(fstatvfs)(fd, st), r_ < 0, PIN_OBJ(st));
}

INTERPOSER ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(getxattr)(path, name, value, size), r_ < 0, PIN(value, size));
}

INTERPOSER ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(lgetxattr)(path, name, value, size), r_ < 0, PIN(value, size));
}

INTERPOSER ssize_t fgetxattr(int fd, const char *name, void *value, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(fgetxattr)(fd, name, value, size), r_ < 0, PIN(value, size));
}

INTERPOSER ssize_t listxattr(const char *path, char *list, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(listxattr)(path, list, size), r_ < 0, PIN(list, size));
}

INTERPOSER ssize_t llistxattr(const char *path, char *list, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(llistxattr)(path, list, size), r_ < 0, PIN(list, size));
}

INTERPOSER ssize_t flistxattr(int fd, char *list, size_t size)
{
    KWRITE_RETRY(ssize_t, REAL(flistxattr)(fd, list, size), r_ < 0, PIN(list, size));
}

/* ---- the system, the process, time ------------------------------------------------------------- */

INTERPOSER int uname(struct utsname *buf)
{
    KWRITE_RETRY(int, REAL(uname)(buf), r_ < 0, PIN_OBJ(buf));
}

INTERPOSER int sysinfo(struct sysinfo *info)
{
    KWRITE_RETRY(int, REAL(sysinfo)(info), r_ < 0, PIN_OBJ(info));
}

INTERPOSER int getrusage(int who, struct rusage *usage)
{
    KWRITE_RETRY(int, REAL(getrusage)(who, usage), r_ < 0, PIN_OBJ(usage));
}

INTERPOSER clock_t times(struct tms *buf)
{
    KWRITE_RETRY(clock_t, REAL(times)(buf), r_ == (clock_t)-1, PIN_OBJ(buf));
}

INTERPOSER int getrlimit(__rlimit_resource_t resource, struct rlimit *rlim)
{
    KWRITE_RETRY(int, REAL(getrlimit)(resource, rlim), r_ < 0, PIN_OBJ(rlim));
}

INTERPOSER int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *rlim,
            struct rlimit *old)
{
    KWRITE_RETRY(int, REAL(prlimit)(pid, resource, rlim, old), r_ < 0, PIN_OBJ(old));
}

/* The vDSO serves the usual clocks from user space, where a write to a protected page is an
 * ordinary fault: only the clocks the kernel answers (the CPU-time ones, and any dynamic
 * clock) need their result pinned, which keeps time.perf_counter() as cheap as before. */
static int clock_in_kernel(clockid_t clk)
{
    return clk == CLOCK_PROCESS_CPUTIME_ID || clk == CLOCK_THREAD_CPUTIME_ID || clk < 0;
}

INTERPOSER int clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (!clock_in_kernel(clk))
        return REAL(clock_gettime)(clk, ts);
    KWRITE_RETRY(int, REAL(clock_gettime)(clk, ts), r_ < 0, PIN_OBJ(ts));
}

INTERPOSER int clock_getres(clockid_t clk, struct timespec *res)
{
    KWRITE_RETRY(int, REAL(clock_getres)(clk, res), r_ < 0, PIN_OBJ(res));
}

INTERPOSER int nanosleep(const struct timespec *req, struct timespec *rem)
{
    KWRITE_ONCE(int, REAL(nanosleep)(req, rem), PIN_OBJ(rem));
}

INTERPOSER int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    KWRITE_ONCE(int, REAL(clock_nanosleep)(clk, flags, req, rem), PIN_OBJ(rem));
}

INTERPOSER int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *mask)
{
    KWRITE_RETRY(int, REAL(sched_getaffinity)(pid, size, mask), r_ < 0, PIN(mask, size));
}

INTERPOSER int getgroups(int size, gid_t list[])
{
    KWRITE_RETRY(int, REAL(getgroups)(size, list), r_ < 0,
                 PIN(list, size > 0 ? (size_t)size * sizeof(gid_t) : 0));
}

INTERPOSER int getresuid(uid_t *r, uid_t *e, uid_t *s)
{
    KWRITE_RETRY(int, REAL(getresuid)(r, e, s), r_ < 0, { PIN_OBJ(r); PIN_OBJ(e); PIN_OBJ(s); });
}

INTERPOSER int getresgid(gid_t *r, gid_t *e, gid_t *s)
{
    KWRITE_RETRY(int, REAL(getresgid)(r, e, s), r_ < 0, { PIN_OBJ(r); PIN_OBJ(e); PIN_OBJ(s); });
}

/* ---- waiting: events, children, signals -------------------------------------------------------- */

INTERPOSER int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    KWRITE_ONCE(int, REAL(epoll_wait)(epfd, events, max, timeout),
                PIN(events, max > 0 ? (size_t)max * sizeof(*events) : 0));
}

INTERPOSER int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask)
{
    KWRITE_ONCE(int, REAL(epoll_pwait)(epfd, events, max, timeout, mask),
                PIN(events, max > 0 ? (size_t)max * sizeof(*events) : 0));
}

INTERPOSER int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    KWRITE_ONCE(int, REAL(poll)(fds, n, timeout), PIN(fds, n * sizeof(*fds)));
}

INTERPOSER int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    KWRITE_ONCE(int, REAL(ppoll)(fds, n, ts, mask), PIN(fds, n * sizeof(*fds)));
}

INTERPOSER int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    KWRITE_ONCE(int, REAL(select)(n, r, w, e, tv),
                { PIN_OBJ(r); PIN_OBJ(w); PIN_OBJ(e); PIN_OBJ(tv); });
}

INTERPOSER int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
            const sigset_t *mask)
{
    KWRITE_ONCE(int, REAL(pselect)(n, r, w, e, ts, mask), { PIN_OBJ(r); PIN_OBJ(w); PIN_OBJ(e); });
}

INTERPOSER pid_t wait(int *status)
{
    KWRITE_ONCE(pid_t, REAL(wait)(status), PIN_OBJ(status));
}

INTERPOSER pid_t waitpid(pid_t pid, int *status, int options)
{
    KWRITE_ONCE(pid_t, REAL(waitpid)(pid, status, options), PIN_OBJ(status));
}

INTERPOSER pid_t wait3(int *status, int options, struct rusage *usage)
{
    KWRITE_ONCE(pid_t, REAL(wait3)(status, options, usage), { PIN_OBJ(status); PIN_OBJ(usage); });
}

INTERPOSER pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage)
{
    KWRITE_ONCE(pid_t, REAL(wait4)(pid, status, options, usage),
                { PIN_OBJ(status); PIN_OBJ(usage); });
}

INTERPOSER int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    KWRITE_ONCE(int, REAL(waitid)(idtype, id, info, options), PIN_OBJ(info));
}

INTERPOSER int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout)
{
    KWRITE_ONCE(int, REAL(sigtimedwait)(set, info, timeout), PIN_OBJ(info));
}

INTERPOSER int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
    KWRITE_ONCE(int, REAL(sigwaitinfo)(set, info), PIN_OBJ(info));
}

INTERPOSER int sigpending(sigset_t *set)
{
    KWRITE_RETRY(int, REAL(sigpending)(set), r_ < 0, PIN_OBJ(set));
}

/* ---- fcntl and ioctl: the third argument is memory the kernel fills only for some
 * requests ---------------------------------------------------------------------------------------- */

INTERPOSER int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    uintptr_t arg = va_arg(ap, uintptr_t);
    va_end(ap);
    int fills_lock = cmd == F_GETLK || cmd == F_OFD_GETLK;
    KWRITE_ONCE(int, REAL(fcntl)(fd, cmd, arg),
                PIN(fills_lock ? arg : 0, sizeof(struct flock)));
}

/* Requests that say how much they read back: _IOR/_IOWR numbers carry their size. */
INTERPOSER int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    uintptr_t arg = va_arg(ap, uintptr_t);
    va_end(ap);
    size_t size = (_IOC_DIR(request) & _IOC_READ) ? _IOC_SIZE(request) : 0;
    KWRITE_ONCE(int, REAL(ioctl)(fd, request, arg), PIN(arg, size));
}
