/* DESIGN: the connection is a Unix stream socket in the abstract namespace, named by the
 * launcher (cmd_trace.c). A descriptor number is the script's to close: os.closerange(),
 * subprocess-style cleanups and dup2() over it are all legal Python. So the sender never
 * trusts the number alone:
 *   - before every send, fstat() must find the socket remembered at connect (st_dev,
 *     st_ino); a closed descriptor, or one that now names another file or socket, is no
 *     longer ours and is left alone (never closed, never written);
 *   - send(MSG_NOSIGNAL) fails with ENOTSOCK or EBADF should the number change between
 *     that check and the call to a non-socket, and never raises SIGPIPE;
 *   - then it connects again, says so in its hello (MW_HELLO_RESUME), and resends the frame
 *     that was cut, from its first byte: frames before it were delivered whole (a Unix
 *     socket queues sent bytes at the receiver at once, and closing ours does not take
 *     them back); the writer drops the cut frame of the old connection (serve.c).
 * What cannot be delivered anyway (no descriptor to be had: RLIMIT_NOFILE) is counted and
 * reported by a MW_REC_LOST record on the next connection. memwatch trace itself gone is
 * the one case where nothing is reported, because nobody is left to tell.
 *
 * The fork child's connection is made in the pthread_atfork handler, so it uses only
 * system calls and memory reserved before the fork (hello_buf).
 *
 * fstat and poll are made as raw system calls: the C library's are this library's own
 * (kwrite_interpose.c opens watched pages a call writes into), which a check that sends
 * what it found must not go through. */
#include "channel_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "own_fds.h"
#include "run_shared.h"

#define ARGV_MAX 4096
/* How long a process that is not a fork child waits for the run's shared memory after its
 * hello. memwatch trace answers a hello as soon as it reads it, which is at once unless
 * it is storing one large change (then the change's frames are read first). */
#define RUN_SHARED_WAIT_MS 10000
/* A hello's fixed part: frame head, strings' lengths, numbers. */
#define HELLO_FIXED 128

static struct sockaddr_un addr;
static socklen_t addr_len;
/* The socket; registered as memwatch's own (own_fds.h), so that the script's close(),
 * close_range() and dup2() leave it open under it. */
static _Atomic int link_fd = -1;
static dev_t link_dev;
static ino_t link_ino;
static unsigned link_gen;
static int link_follow;
static struct mw_rec_hello base_hello;
static char argv_text[ARGV_MAX];
static uint32_t argv_len;
/* Hellos are encoded here, never on the heap: not after a fork (no allocation there), and
 * not beside the script's objects (a buffer of ours on the heap shifts where they land, and
 * shares their pages: README "Neighbours"). */
static unsigned char hello_space[ARGV_MAX + 4096];
static struct mw_rec_buf hello_buf;
static struct mw_rec_lost lost;           /* counted, not yet reported */
static uint64_t lost_total_changes;

/* Closes memwatch's socket itself (the script's close() would leave it open). */
static void close_own_link(void)
{
    int fd = atomic_exchange(&link_fd, -1);
    if (fd >= 0)
        syscall(SYS_close, fd);
}

static int raw_fstat(int fd, struct stat *st)
{
    return (int)syscall(SYS_fstat, fd, st);
}

static void raw_poll_out(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    syscall(SYS_poll, &p, 1, ms);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The command line, as the kernel has it, cut at an argument boundary if long. */
static void read_argv(void)
{
    /* Raw calls: the C library's read is interposed (kwrite_interpose.c), and its first
     * call resolves the real one, which allocates: not here, before the script runs. */
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? (ssize_t)syscall(SYS_read, fd, argv_text, sizeof argv_text) : -1;
    if (fd >= 0)
        close(fd);
    argv_len = n > 0 ? (uint32_t)n : 0;
    while (argv_len && argv_text[argv_len - 1] != '\0')
        argv_len--;
}

/* Sends all of data on fd, waiting for room; only before the socket is handed out. */
static int send_blocking(int fd, const unsigned char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            raw_poll_out(fd, 100);
        } else if (!(n < 0 && errno == EINTR)) {
            return n < 0 ? -errno : -EPIPE;
        }
    }
    return 0;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reply to the hello of a process that is not a fork child: the run's shared memory
 * (run_shared.h), one byte with the memfd attached. 0, or a negative errno: -ETIMEDOUT
 * when none came in time (the process then runs untraced). Raw calls: recvmsg and poll
 * are interposed by this library. */
static int receive_run_shared(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t deadline = monotonic_ms() + RUN_SHARED_WAIT_MS;
    for (;;) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        long n = syscall(SYS_poll, &p, 1, (int)left);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.space, .msg_controllen = sizeof control.space};
    long n;
    do
        n = syscall(SYS_recvmsg, fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : -EPIPE;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EPROTO;
    int shared_fd;
    memcpy(&shared_fd, CMSG_DATA(c), sizeof shared_fd);
    return mw_run_shared_map(shared_fd);
}

/* A new connection with its hello (and what was counted lost, when it can be said
 * without allocating). 0 or a negative errno; -EPIPE when nobody listens any more. */
/* Connections made again after the first was lost (MW_HELLO_RESUME). */
static unsigned resumes;

static int connect_new(uint32_t flags, uint64_t inherited_ids, uint64_t inherited_seq)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (fd <= 2) {
        /* Descriptors 0-2 are the script's standard streams even when it closed them: a
         * later open() there would otherwise land its output in the trace. */
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        if (high < 0)
            return -errno;
        fd = high;
    }
    struct stat st;
    if (connect(fd, (struct sockaddr *)&addr, addr_len) != 0 || raw_fstat(fd, &st) != 0) {
        int err = errno == ECONNREFUSED || errno == ENOENT ? EPIPE : errno;
        close(fd);
        return -err;
    }
        if (flags & MW_HELLO_RESUME)
        __atomic_add_fetch(&resumes, 1, __ATOMIC_RELEASE);
    struct mw_rec_hello h = base_hello;
    h.pid = getpid();
    h.ppid = getppid();
    h.start_unix_ns = realtime_ns();
    h.argv = argv_text;
    h.argv_len = argv_len;
    h.flags = flags;
    h.inherited_ids = inherited_ids;
    h.inherited_seq = inherited_seq;
    hello_buf.len = 0;
    int rc = mw_rec_encode_hello(&hello_buf, &h);
    if (rc == 0 && lost.records && hello_buf.cap - hello_buf.len >= 64 &&
        mw_rec_encode_lost(&hello_buf, &lost) == 0)
        memset(&lost, 0, sizeof lost);
    if (rc == 0)
        rc = send_blocking(fd, hello_buf.data, hello_buf.len);
    if (rc == 0 && !(flags & (MW_HELLO_RESUME | MW_HELLO_FORKED)) && !mw_run_shared() &&
        (rc = receive_run_shared(fd)) < 0 && rc != -EPIPE) {
        /* No run shared memory (none came in time, or it cannot be mapped): the process
         * runs untraced, and its second hello says so (its row: traced = 0). */
        h.flags = MW_HELLO_UNTRACED;
        hello_buf.len = 0;
        if (mw_rec_encode_hello(&hello_buf, &h) == 0)
            send_blocking(fd, hello_buf.data, hello_buf.len);
    }
    if (rc < 0) {
        close(fd);
        return rc == -ECONNRESET ? -EPIPE : rc;
    }
    /* As much room as the pipe had (1 MiB): while the socket takes a check's records, the
     * checking thread sends them itself and the sender thread stays idle (its frees of
     * sent buffers are heap writes beside watched objects, from another thread). Past
     * net.core.wmem_max only a privileged process gets it. */
    int room = 1 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &room, sizeof room) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    link_fd = fd;
    static int registered;
    if (!registered)
        registered = mw_own_fd_add(&link_fd) == 0;
    link_dev = st.st_dev;
    link_ino = st.st_ino;
    link_gen++;
    return 0;
}

int mw_link_open(const char *name, const struct mw_rec_hello *base, int follow)
{
    size_t n = strlen(name);
    if (n + 1 >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    addr.sun_family = AF_UNIX;
    addr.sun_path[0] = '\0';   /* abstract: nothing on disk to leave behind or guard */
    memcpy(addr.sun_path + 1, name, n);
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    base_hello = *base;
    link_follow = follow;
    read_argv();
    /* Room for any hello of this process, and a lost record after it. */
    size_t room = HELLO_FIXED + strlen(base->python_version ? base->python_version : "") +
                  strlen(base->backend ? base->backend : "") + ARGV_MAX + 64;
    if (room > sizeof hello_space)
        return -ENAMETOOLONG;   /* a version string of kilobytes: not a CPython */
    hello_buf.data = hello_space;
    hello_buf.cap = sizeof hello_space;
    return connect_new(0, 0, 0);
}

int mw_link_is_open(void)
{
    return link_fd >= 0;
}

/* Whether link_fd is still the socket we connected. */
static int still_ours(void)
{
    struct stat st;
    return link_fd >= 0 && raw_fstat(link_fd, &st) == 0 && st.st_dev == link_dev &&
           st.st_ino == link_ino;
}

/* The start of the frame that holds byte at of data (data starts at a frame). */
static size_t frame_start(const unsigned char *data, size_t len, size_t at)
{
    size_t off = 0;
    for (;;) {
        size_t n = mw_rec_frame_size(data + off, len - off);
        if (n == 0 || off + n > at)
            return off;
        off += n;
    }
}

int mw_link_send(const unsigned char *data, size_t len, struct mw_link_pos *pos, int wait)
{
    for (;;) {
        if (!still_ours()) {
            /* Closed or replaced by the script: not ours to close. */
            link_fd = -1;
            int rc = connect_new(MW_HELLO_RESUME, 0, 0);
            if (rc < 0)
                return rc;
        }
        if (pos->gen != link_gen) {
            /* Frames sent whole over an earlier connection arrived; a cut one goes again. */
            pos->sent = frame_start(data, len, pos->sent);
            pos->gen = link_gen;
        }
        if (pos->sent >= len)
            return 0;
        ssize_t n = send(link_fd, data + pos->sent, len - pos->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            pos->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait)
                return 1;
            /* A bounded wait: the descriptor may be taken from us meanwhile. */
            raw_poll_out(link_fd, 200);
            continue;
        }
        if (n < 0 && (errno == ENOTSOCK || errno == EBADF))
            continue;   /* no longer ours: still_ours() says so */
        /* The other end is gone (or the script shut our socket down): one more try. */
        link_fd = -1;
        int rc = connect_new(MW_HELLO_RESUME, 0, 0);
        if (rc < 0)
            return rc;
    }
}

void mw_link_count_lost(const unsigned char *data, size_t len, size_t from)
{
    size_t off = frame_start(data, len, from);
    while (off < len) {
        size_t n = mw_rec_frame_size(data + off, len - off);
        if (n == 0 || n > len - off)
            break;
        lost.records++;
        if (data[off + 4] == MW_REC_CHANGE) {
            lost.changes++;
            lost_total_changes++;
        }
        off += n;
    }
    lost.bytes += len - frame_start(data, len, from);
}

uint64_t mw_link_lost_changes(void)
{
    return lost_total_changes;
}

unsigned mw_link_resumes(void)
{
    return __atomic_load_n(&resumes, __ATOMIC_ACQUIRE);
}

void mw_link_after_fork(uint64_t inherited_ids, uint64_t inherited_seq)
{
    /* The parent's connection is the parent's: the child never writes to it. */
    close_own_link();
    memset(&lost, 0, sizeof lost);
    lost_total_changes = 0;
    if (!link_follow || !hello_buf.data)
        return;
    connect_new(MW_HELLO_FORKED, inherited_ids, inherited_seq);
}

void mw_link_close(void)
{
    if (still_ours())
        close_own_link();
    link_fd = -1;
}
