/* The record streams of a run (serve.h).
 *
 * DESIGN
 * - One socket, many connections: every traced process connects on its own (the script,
 *   and unless --no-follow its fork children and exec'd Python children), says hello (pid,
 *   parent, command line, start) and sends its records; each connection has its own
 *   parser. The socket is in the abstract namespace (nothing on disk), named with 64
 *   random bits, and a connection from another user is refused (SO_PEERCRED).
 * - The run's shared memory: one memfd made at listen time (run_settings.h: its size and
 *   layout), sent (SCM_RIGHTS) in reply to the hello of every process that is not a fork
 *   child; fork children inherit its mapping. A process the reply cannot reach (it gave up
 *   waiting) is recorded as untraced.
 * - Ids: the traced processes number objects and changes from counters they share (the
 *   first page of the run's shared memory: channel.c), so ids and seqs are the run's,
 *   unique, in the order they were given out, and kept as they come. The writer still maps (process, local id) to the trace's ids, so that a record
 *   naming an object its process never announced (nor its parent before the fork, which
 *   the child's hello bounds) is recognised and waits for the parent's record or is
 *   dropped.
 * - One change at a time: a change may span frames (record.h), and the change store holds
 *   one change being stored; while a connection is in the middle of one (or has sent a
 *   change's base value but not the change), only that connection is read.
 * - A reconnecting process (MW_HELLO_RESUME: the script closed its descriptor) resends the
 *   frame that was cut; its old connection holds every frame before, already queued here,
 *   so it is read to its end before the new one, and its cut frame is dropped uncounted.
 * - Exec: a process keeps its pid across exec. A hello (not a reconnection) from a pid
 *   already known is a new image of that process: its earlier connections, which the
 *   kernel closed at the exec, are read to their end first, and its row (one per pid, the
 *   table's key) is replaced by the new image's: command line, forked = 0, traced. The new
 *   image inherits no object ids; the changes of both carry the pid. The earlier image's
 *   hello always comes first: it was sent before the exec, on a connection accepted
 *   before the new image's, and connections are read in the order they were accepted.
 * - Untraced processes: a traced process that execs another program (or an interpreter
 *   memwatch does not trace) sends a note first, a hello with MW_HELLO_UNTRACED on a
 *   connection of its own; it becomes a row with traced = 0, whose end is not known.
 * - The run ends when the root process has exited and every connection has closed. */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mw_error.h"
#include "mw_grow.h"
#include "run_settings.h"

#define READ_SIZE (256 * 1024)

struct proc {
    int64_t pid;
    struct proc *parent;
    uint64_t inherited_ids;
    uint64_t *ids;              /* (local, global) pairs, local increasing */
    size_t nids, capids;
    size_t last_found;          /* where announced_by found the last id it was asked */
    int64_t status;             /* from its MW_REC_END; -1 unknown */
    int untraced;               /* known from a note (MW_HELLO_UNTRACED): it sends nothing */
};

struct conn {
    int fd;
    mw_rec_decoder *d;
    struct proc *p;             /* NULL until its hello */
    int64_t peer_pid;           /* who connected (0: unknown) */
    int mid_change;             /* only this connection is read until the change is whole */
    int blocked;                /* waits for its parent's object (must_wait) */
    int skipping;               /* the rest of a change of an object never known */
};

struct mw_serve {
    int listen_fd;
    struct conn *conns;
    size_t nconns, capconns;
    struct proc **procs;
    size_t nprocs, capprocs;
    uint64_t last_id, last_seq;
    uint64_t undelivered;
    pid_t root;
    int run_fd;                 /* the run's shared memory (run_settings.h); -1: none */
};

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mw_serve_listen(mw_serve **out, char *name, size_t name_size)
{
    mw_serve *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint64_t)realtime_ns() ^ ((uint64_t)getpid() << 32);
    snprintf(name, name_size, "memwatch-%ld-%016llx", (long)getpid(), (unsigned long long)r);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(addr.sun_path + 1, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    /* Sparse: only the pages the processes touch cost memory. */
    s->run_fd = memfd_create("memwatch-run", MFD_CLOEXEC);
    if (s->run_fd >= 0 && ftruncate(s->run_fd, (off_t)MW_RUN_SHARED_SIZE) != 0) {
        close(s->run_fd);
        s->run_fd = -1;
    }
    s->listen_fd = s->run_fd < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, len) != 0 ||
        listen(s->listen_fd, 128) != 0) {
        int err = errno;
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        if (s->run_fd >= 0)
            close(s->run_fd);
        free(s);
        return -err;
    }
    *out = s;
    return 0;
}

uint64_t mw_serve_undelivered(const mw_serve *s)
{
    return s->undelivered;
}

void mw_serve_destroy(mw_serve *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nconns; i++) {
        close(s->conns[i].fd);
        mw_rec_decoder_destroy(s->conns[i].d);
    }
    for (size_t i = 0; i < s->nprocs; i++) {
        free(s->procs[i]->ids);
        free(s->procs[i]);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->run_fd >= 0)
        close(s->run_fd);
    free(s->conns);
    free(s->procs);
    free(s);
}

static void accept_all(mw_serve *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct ucred cred;
        socklen_t cl = sizeof cred;
        mw_rec_decoder *d = NULL;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != getuid() ||
            MW_GROW(s->conns, s->capconns, s->nconns + 1) != 0 || mw_rec_decoder_create(&d)) {
            close(fd);   /* another user's, or no memory to serve it */
            continue;
        }
        s->conns[s->nconns++] = (struct conn){.fd = fd, .d = d, .peer_pid = cred.pid};
    }
}

static struct proc *find_proc(mw_serve *s, int64_t pid)
{
    for (size_t i = s->nprocs; i-- > 0;)
        if (s->procs[i]->pid == pid)
            return s->procs[i];
    return NULL;
}

/* The trace's id of the object p announced as local (0: p announced none such). */
static uint64_t announced_by(struct proc *p, uint64_t local)
{
    /* A check's changes come in the order of their objects' memory, which is mostly the
     * order they were watched in: the next id after the last one found, or that one. */
    for (size_t at = p->last_found; at < p->nids && at <= p->last_found + 1; at++)
        if (p->ids[2 * at] == local) {
            p->last_found = at;
            return p->ids[2 * at + 1];
        }
    size_t lo = 0, hi = p->nids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->ids[2 * mid] < local)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->nids && p->ids[2 * lo] == local) {
        p->last_found = lo;
        return p->ids[2 * lo + 1];
    }
    return 0;
}

/* The trace's id of p's object local (0: unknown). */
static uint64_t global_id(struct proc *p, uint64_t local)
{
    for (; p; p = p->parent) {
        uint64_t g = announced_by(p, local);
        if (g)
            return g;
        if (local > p->inherited_ids)
            return 0;
    }
    return 0;
}

/* The trace's id of an object another process announced (its memory shared with p, which
 * watches it too: shared_watch.c), or 0. Ids are the run's (DESIGN), so any process's. */
static uint64_t announced_anywhere(const mw_serve *s, uint64_t id)
{
    for (size_t i = 0; i < s->nprocs; i++) {
        uint64_t g = announced_by(s->procs[i], id);
        if (g)
            return g;
    }
    return 0;
}

/* The trace's id of an object p names: its own, its ancestors' before its fork, or one
 * another process announced. */
static uint64_t object_of(const mw_serve *s, struct proc *p, uint64_t local)
{
    uint64_t g = global_id(p, local);
    return g ? g : announced_anywhere(s, local);
}

static uint64_t new_object(mw_serve *s, struct proc *p, uint64_t local)
{
    uint64_t g = local;   /* the run's own (see DESIGN) */
    if (g > s->last_id)
        s->last_id = g;
    /* Kept sorted: a process announces its objects in increasing order. */
    if (MW_GROW(p->ids, p->capids, 2 * (p->nids + 1)) == 0) {
        size_t at = p->nids;
        while (at > 0 && p->ids[2 * (at - 1)] > local)
            at--;
        memmove(p->ids + 2 * (at + 1), p->ids + 2 * at, 2 * (p->nids - at) * sizeof *p->ids);
        p->ids[2 * at] = local;
        p->ids[2 * at + 1] = g;
        p->nids++;
    }
    return g;
}

/* A change's seq: the process's own (see DESIGN). */
static uint64_t global_seq(mw_serve *s, struct proc *p, uint64_t local)
{
    (void)p;
    if (local > s->last_seq)
        s->last_seq = local;
    return local;
}

static int connected(const mw_serve *s, const struct proc *p)
{
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i].p == p && s->conns[i].fd >= 0)
            return 1;
    return 0;
}

/* Whether the record names an object the process inherited from its parent whose record
 * the parent has not delivered yet (it was queued before the fork, the child connected
 * first): the connection waits for it while the parent is connected. */
static int must_wait(const mw_serve *s, const struct conn *c, const struct mw_rec_decoded *rec)
{
    struct proc *p = c->p;
    uint64_t local = rec->type == MW_REC_CHANGE ? rec->u.change.object_id
                   : rec->type == MW_REC_VALUE ? rec->u.value.object_id
                   : rec->type == MW_REC_UNWATCH ? rec->u.unwatch.id : 0;
    if (!local || object_of(s, p, local))
        return 0;
    if (p->parent && local <= p->inherited_ids) {
        for (const struct proc *q = p->parent; q; q = q->parent)
            if (connected(s, q))
                return 1;
        return 0;
    }
    /* Another process's object, watched here through shared memory: its record is on
     * that process's connection (sent before the watch was published). */
    for (size_t i = 0; i < s->nconns; i++)
        if (&s->conns[i] != c && s->conns[i].fd >= 0 && s->conns[i].p != p)
            return 1;
    return 0;
}

/* A record of p, in the trace's ids, applied. A change of an object never known (its
 * parent died before saying what it was) is counted dropped, with its other frames. */
static int apply_translated(mw_serve *s, mw_trace_writer *w, struct conn *c,
                            struct mw_rec_decoded *rec)
{
    struct proc *p = c->p;
    if (c->skipping && rec->type == MW_REC_RANGES) {
        c->skipping = rec->u.ranges.more;
        return 0;
    }
    c->skipping = 0;
    switch (rec->type) {
    case MW_REC_OBJECT:
        rec->u.object.id = new_object(s, p, rec->u.object.id);
        break;
    case MW_REC_UNWATCH:
        if (!(rec->u.unwatch.id = object_of(s, p, rec->u.unwatch.id)))
            return 0;
        break;
    case MW_REC_CHANGE:
        rec->u.change.seq = global_seq(s, p, rec->u.change.seq);
        if (!(rec->u.change.object_id = object_of(s, p, rec->u.change.object_id))) {
            c->skipping = rec->u.change.more;
            mw_trace_writer_note_dropped(w);
            return 0;
        }
        rec->u.change.pid = p->pid;
        c->mid_change = rec->u.change.more;
        break;
    case MW_REC_RANGES:
        rec->u.ranges.seq = global_seq(s, p, rec->u.ranges.seq);
        c->mid_change = rec->u.ranges.more;
        break;
    case MW_REC_VALUE:
        rec->u.value.seq = global_seq(s, p, rec->u.value.seq);
        if (!(rec->u.value.object_id = object_of(s, p, rec->u.value.object_id)))
            return 0;
        rec->u.value.pid = p->pid;
        c->mid_change = 1;   /* its change follows */
        break;
    case MW_REC_LOST:
        s->undelivered += rec->u.lost.changes;
        return 0;
    case MW_REC_END:
        p->status = rec->u.end.status;
        mw_trace_writer_process_exiting(w, p->pid);
        return 0;
    case MW_REC_STATS:
        if (p->parent)
            return 0;   /* the run's engine counters are the root's */
        break;
    default:
        break;
    }
    return mw_trace_writer_apply(w, rec);
}

static int read_conn(mw_serve *s, mw_trace_writer *w, struct conn *c, int *eof);
static int apply_frames(mw_serve *s, mw_trace_writer *w, struct conn *c);

/* A new process of the run, with its row (none for an unknown pid). */
static struct proc *add_proc(mw_serve *s, mw_trace_writer *w, const struct mw_trace_process *row,
                             int *rc)
{
    struct proc *p = calloc(1, sizeof *p);
    if (!p || MW_GROW(s->procs, s->capprocs, s->nprocs + 1) != 0) {
        free(p);
        *rc = -ENOMEM;
        return NULL;
    }
    s->procs[s->nprocs++] = p;
    p->pid = row->pid;
    p->status = -1;
    *rc = row->pid > 0 ? mw_trace_writer_process(w, row) : 0;
    return p;
}

/* Reads p's connections other than c to their end and closes them: p reconnected (their
 * frames all came before the new connection's), or exec'd (the kernel closed them at the
 * exec, before the new image said hello). */
static int finish_older_conns(mw_serve *s, mw_trace_writer *w, struct conn *c, struct proc *p)
{
    for (size_t i = 0; i < s->nconns; i++) {
        struct conn *old = &s->conns[i];
        if (old == c || old->p != p || old->fd < 0)
            continue;
        int eof = 0, rc = read_conn(s, w, old, &eof);
        if (rc)
            return rc;
        close(old->fd);
        old->fd = -1;
        old->mid_change = 0;
    }
    return 0;
}

/* Gives a process that is not a fork child the run's shared memory (run_settings.h): one
 * byte with the memfd attached. 0, or a negative errno (the process is gone, or gave up
 * waiting for it: it runs untraced). */
static int send_run_shared(const mw_serve *s, const struct conn *c)
{
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.space, .msg_controllen = sizeof control.space};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &s->run_fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : n < 0 ? -errno : -EPIPE;
}

/* A process said hello: its row, or (a reconnection) its old connection read to its end
 * first, and its cut frame dropped. A hello of a pid already known that is no
 * reconnection is a new image of that process (it exec'd; see DESIGN): its earlier
 * connections are read to their end, and its row now describes the new image. */
static int hello(mw_serve *s, mw_trace_writer *w, struct conn *c, struct mw_rec_decoded *rec)
{
    pid_t root = s->root;
    const struct mw_rec_hello *h = &rec->u.hello;
    struct proc *p = find_proc(s, h->pid);
    int rc;
    if (p && (h->flags & MW_HELLO_RESUME)) {
        c->p = p;
        return finish_older_conns(s, w, c, p);
    }
    if (p && (rc = finish_older_conns(s, w, c, p)) != 0)
        return rc;
    int untraced = (h->flags & MW_HELLO_UNTRACED) != 0;
    /* The script and every exec'd child get the run's counters; fork children have them. */
    if (!untraced && !(h->flags & MW_HELLO_FORKED) && s->run_fd >= 0 &&
        send_run_shared(s, c) != 0)
        untraced = 1;
    struct mw_trace_process row = {
        .pid = h->pid, .ppid = h->ppid, .root = h->pid == root,
        .forked = (h->flags & MW_HELLO_FORKED) != 0, .traced = !untraced,
        .argv = h->argv, .argv_len = h->argv_len, .start_unix_ns = h->start_unix_ns,
    };
    if (!(p = add_proc(s, w, &row, &rc)))
        return rc;
    p->untraced = untraced;
    if (h->flags & MW_HELLO_FORKED) {
        p->parent = find_proc(s, h->ppid);
        p->inherited_ids = p->parent ? h->inherited_ids : 0;
    }
    c->p = p;
    if (rc == 0 && !untraced && (h->pid == root || root == 0))
        rc = mw_trace_writer_apply(w, rec);   /* the run's interpreter and backend */
    return rc;
}

/* Reads what c has now and applies its whole frames. *eof when it is closed. */
static int read_conn(mw_serve *s, mw_trace_writer *w, struct conn *c, int *eof)
{
    for (;;) {
        /* Straight into the decoder's buffer: the frames are decoded where they land. */
        unsigned char *room = mw_rec_decoder_space(c->d, READ_SIZE);
        if (!room)
            return -ENOMEM;
        ssize_t got = read(c->fd, room, READ_SIZE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (got <= 0) {
            *eof = 1;
            return 0;
        }
        mw_rec_decoder_commit(c->d, (size_t)got);
        int rc = apply_frames(s, w, c);
        if (rc || c->blocked)
            return rc;
        if (got < READ_SIZE)
            return 0;
    }
}

/* Applies the whole frames c has; stops early when c must wait (c->blocked). */
static int apply_frames(mw_serve *s, mw_trace_writer *w, struct conn *c)
{
    struct mw_rec_decoded rec;
    int rc;
    c->blocked = 0;
    while ((rc = mw_rec_decoder_next(c->d, &rec)) == 1) {
        if (c->p && rec.type != MW_REC_HELLO && must_wait(s, c, &rec)) {
            mw_rec_decoder_unget(c->d);
            c->blocked = 1;
            return 0;
        }
        {
            if (rec.type == MW_REC_HELLO) {
                rc = hello(s, w, c, &rec);
            } else {
                /* Records without a hello (a stream made by hand): the peer's. */
                struct mw_trace_process row = {.pid = c->peer_pid, .traced = 1,
                                               .root = c->peer_pid == s->root};
                if (!c->p)
                    c->p = add_proc(s, w, &row, &rc);
                if (c->p)
                    rc = apply_translated(s, w, c, &rec);
            }
            int timeout;
            if (rc || (rc = mw_trace_writer_due(w, &timeout)))
                return rc;
        }
    }
    if (rc < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "malformed record in the stream of process %lld",
                 (long long)(c->p ? c->p->pid : c->peer_pid));
        return mw_trace_writer_fail(w, rc, msg);
    }
    return 0;
}

/* c's stream ended: what it was sending is stored as far as it came (a frame cut off by
 * the process's death is counted dropped), and its process's end is noted. */
static int close_conn(mw_trace_writer *w, struct conn *c)
{
    int type = 0;
    int cut = mw_rec_decoder_pending(c->d, &type) > 0 &&
              (type == MW_REC_CHANGE || type == MW_REC_RANGES);
    int rc = mw_trace_writer_end_stream(w, cut);
    if (c->p)
        mw_trace_writer_process_exiting(w, c->p->pid);   /* or connecting again: see held.h */
    if (rc == 0 && c->p && !c->p->untraced)
        rc = mw_trace_writer_process_end(w, c->p->pid, realtime_ns(),
                                         c->p->status >= 0 ? (int)c->p->status : -1, 0);
    close(c->fd);
    c->fd = -1;
    c->mid_change = 0;
    return rc;
}

/* Drops the connections closed so far. */
static void sweep(mw_serve *s)
{
    size_t j = 0;
    for (size_t i = 0; i < s->nconns; i++) {
        if (s->conns[i].fd >= 0)
            s->conns[j++] = s->conns[i];
        else
            mw_rec_decoder_destroy(s->conns[i].d);
    }
    s->nconns = j;
}

/* One round: waits for records (or the batch's time, or the root's end), reads them. */
static int serve_once(mw_serve *s, mw_trace_writer *w, int root_done)
{
    int timeout, rc = mw_trace_writer_due(w, &timeout);
    if (rc)
        return rc;
    if (!root_done && (timeout < 0 || timeout > 50))
        timeout = 50;   /* the root is waited for without a signal handler */
    struct conn *only = NULL;
    for (size_t i = 0; i < s->nconns && !only; i++)
        if (s->conns[i].mid_change && s->conns[i].fd >= 0)
            only = &s->conns[i];
    /* Connections waiting for their parent's objects try again; until they can, they are
     * not read (their records stay in order) and the round is short. Not while another
     * connection is in the middle of a change: its next frames must come next. */
    for (size_t i = 0; i < s->nconns && rc == 0; i++)
        if (s->conns[i].blocked && s->conns[i].fd >= 0 && (!only || only == &s->conns[i]) &&
            (rc = apply_frames(s, w, &s->conns[i])) == 0 && s->conns[i].blocked)
            timeout = timeout < 0 || timeout > 10 ? 10 : timeout;
    if (rc)
        return rc;
    if (only && only->fd < 0)
        only = NULL;
    size_t n = only ? 1 : s->nconns + 1;
    struct pollfd *pf = calloc(n, sizeof *pf);
    if (!pf)
        return -ENOMEM;
    if (only) {
        pf[0] = (struct pollfd){.fd = only->fd, .events = POLLIN};
    } else {
        pf[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < s->nconns; i++)
            pf[i + 1] = (struct pollfd){.fd = s->conns[i].blocked ? -1 : s->conns[i].fd,
                                        .events = POLLIN};
    }
    int ready = poll(pf, (nfds_t)n, timeout);
    for (size_t i = 0; ready > 0 && rc == 0 && i < n; i++) {
        if (!pf[i].revents)
            continue;
        if (!only && i == 0) {
            accept_all(s);
            continue;
        }
        struct conn *c = only ? only : &s->conns[i - 1];
        if (c->fd < 0 || (only && c != only))
            continue;   /* closed meanwhile by a reconnection; or another's change is open */
        int eof = 0;
        rc = read_conn(s, w, c, &eof);
        if (rc == 0 && eof)
            rc = close_conn(w, c);
        else if (c->mid_change)
            only = c;   /* its change's next frames come before anyone else's records */
    }
    free(pf);
    sweep(s);
    return rc;
}

int mw_serve_run(mw_serve *s, mw_trace_writer *w, pid_t root, int follow, int *root_status)
{
    s->root = root;
    int rc = mw_trace_writer_meta(w, "follow", follow != 0);
    int root_done = 0;
    while (rc == 0) {
        if (!root_done) {
            pid_t got = waitpid(root, root_status, WNOHANG);
            root_done = got == root || (got < 0 && errno == ECHILD);
        }
        if (root_done) {
            accept_all(s);   /* a child that connected just before */
            if (s->nconns == 0)
                break;
        }
        rc = serve_once(s, w, root_done);
    }
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i].fd >= 0) {
            int eof = 0;
            if (rc == 0)
                rc = read_conn(s, w, &s->conns[i], &eof);
            int rc2 = close_conn(w, &s->conns[i]);
            if (rc == 0)
                rc = rc2;
        }
    sweep(s);
    if (rc == 0 && s->undelivered)
        rc = mw_trace_writer_meta(w, "changes_undelivered", s->undelivered);
    if (rc == 0 && root > 0) {
        int st = *root_status;
        rc = mw_trace_writer_process_end(w, root, 0, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                                         WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
    /* Nothing is read any more: a process still sending finds nobody, and goes on. */
    close(s->listen_fd);
    s->listen_fd = -1;
    while (!root_done) {
        pid_t got = waitpid(root, root_status, 0);
        root_done = got == root || (got < 0 && errno != EINTR);
    }
    if (rc) {
        /* A record could not be stored: the batch it was in goes, so that the trace keeps
         * a prefix of what came (a statement that failed for a full disk may leave its
         * transaction open, and later records of the batch stored). */
        mw_trace_writer_abandon(w);
        return rc;
    }
    return mw_trace_writer_commit(w);
}

int mw_trace_writer_consume_fd(mw_trace_writer *w, int fd)
{
    mw_serve *s = calloc(1, sizeof *s);
    mw_rec_decoder *d = NULL;
    if (!s || MW_GROW(s->conns, s->capconns, 1) != 0 ||
        mw_rec_decoder_create(&d)) {
        mw_serve_destroy(s);
        return mw_trace_writer_fail(w, -ENOMEM, "out of memory");
    }
    s->listen_fd = -1;
    s->run_fd = -1;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);   /* the caller closes its own */
    s->conns[s->nconns++] = (struct conn){.fd = dup_fd, .d = d};
    int rc = dup_fd < 0 ? mw_trace_writer_fail(w, -errno, "cannot read records") : 0;
    while (rc == 0 && s->nconns)
        rc = serve_once(s, w, 1);
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i].fd >= 0)
            close_conn(w, &s->conns[i]);
    sweep(s);
    int crc = mw_trace_writer_commit(w);
    mw_serve_destroy(s);
    return rc ? rc : crc;
}
