/* Where memwatch writes a file of its own (see outfile.h). */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reader.h"

/* A claim that changed on disk while it was checked is checked again, this many times. */
#define CLAIM_TRIES 8

static int fail(struct mw_outfile *o, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct mw_outfile *o, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    return status;
}

/* "cannot write trace 'x': why" or "cannot write 'x': why". */
static int cannot_write(struct mw_outfile *o, int e)
{
    return fail(o, -e, "cannot write %s'%s': %s", o->kind == MW_OUTFILE_TRACE ? "trace " : "",
                o->path, strerror(e));
}

static const char *what_is(mode_t m)
{
    return S_ISLNK(m) ? "a symbolic link" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO"
         : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The -wal, -shm and -journal SQLite keeps next to a database. */
static void unlink_sidecars(const char *path)
{
    static const char *const suffix[] = {"-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++)
        if (snprintf(p, sizeof p, "%s%s", path, suffix[i]) < (int)sizeof p)
            unlink(p);
}

/* A new temporary file next to path, ".<name>.XXXXXX", with the mode open(2) and 0666
 * would give it (mkstemp's is private): its descriptor and *name, or -1 and errno. */
static int make_temp(const char *path, char **name)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = path + dir;
    size_t n = dir + strlen(base) + sizeof(".memwatch..XXXXXX");
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    if (strlen(base) + sizeof(".XXXXXX") + 1 <= NAME_MAX)
        snprintf(tmp, n, "%.*s.%s.XXXXXX", (int)dir, path, base);
    else
        snprintf(tmp, n, "%.*s.memwatch.XXXXXX", (int)dir, path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        errno = e;
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        /* Not fatal: the file is only more private than it would be. */
    }
    *name = tmp;
    return fd;
}

/* 1 when path still names the file written in place, 0 when nothing does, -1 when another
 * file does. */
static int still_there(const struct mw_outfile *o)
{
    struct stat st;
    if (stat(o->path, &st) != 0)
        return 0;
    return st.st_dev == o->dev && st.st_ino == o->ino ? 1 : -1;
}

/* A new trace at path, locked before anyone can see it: made aside, locked, then linked
 * into place (link(2) never replaces a file). Where the file system has no hard links, it
 * is created in place and locked at once. */
static int create_locked(struct mw_outfile *o)
{
    char *tmp = NULL;
    int fd = make_temp(o->path, &tmp);
    if (fd < 0)
        return cannot_write(o, errno);
    flock(fd, LOCK_EX | LOCK_NB);   /* nobody else knows the file: this cannot fail */
    int rc = link(tmp, o->path), e = errno;
    unlink(tmp);
    free(tmp);
    if (rc != 0 && (e == EPERM || e == EOPNOTSUPP || e == ENOSYS)) {
        close(fd);
        fd = open(o->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        rc = fd < 0 ? -1 : flock(fd, LOCK_EX | LOCK_NB);
    }
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        return e == EEXIST ? -EEXIST : cannot_write(o, e);
    }
    struct stat st;
    fstat(fd, &st);
    o->dev = st.st_dev;
    o->ino = st.st_ino;
    o->lock_fd = fd;
    /* A -wal left next to a file that no longer exists would be replayed into ours. */
    unlink_sidecars(o->path);
    return 0;
}

static int is_sqlite(int fd)
{
    char head[16];
    return pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
           memcmp(head, "SQLite format 3", sizeof head) == 0;
}

/* With force, a file lst exists at path: may it be replaced? 0 (with the lock on it, for a
 * trace), -EAGAIN when it changed meanwhile, or the refusal. */
static int check_existing(struct mw_outfile *o, const struct stat *lst)
{
    if (S_ISDIR(lst->st_mode))
        return cannot_write(o, EISDIR);
    if (!S_ISREG(lst->st_mode))
        return fail(o, -EPERM, "'%s' is %s: -f replaces only a regular file", o->path,
                    what_is(lst->st_mode));
    /* Without blocking, without following a link that appeared meanwhile. */
    int fd = open(o->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st, now;
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? -EAGAIN : cannot_write(o, errno);
    int rc = 0;
    if (fstat(fd, &st) != 0 || st.st_dev != lst->st_dev || st.st_ino != lst->st_ino)
        rc = -EAGAIN;
    else if (o->kind == MW_OUTFILE_TRACE && flock(fd, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK
                 ? fail(o, -EBUSY, "'%s' is being written by another memwatch trace: wait for "
                                   "it to end, or write elsewhere (-o)", o->path)
                 : cannot_write(o, errno);
    else if (stat(o->path, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)
        rc = -EAGAIN;   /* replaced while it was being locked */
    else if (st.st_size > 0 && o->kind == MW_OUTFILE_TRACE && !mw_trace_file_is_trace(o->path))
        rc = fail(o, -EPERM, "'%s' is not a memwatch trace: -f replaces only a trace (remove "
                             "the file first to replace it)", o->path);
    else if (o->kind == MW_OUTFILE_REPORT && is_sqlite(fd))
        rc = fail(o, -EPERM, "'%s' is an SQLite database: a report never replaces one (remove "
                             "the file first to replace it)", o->path);
    if (rc == 0 && o->kind == MW_OUTFILE_TRACE)
        o->lock_fd = fd;
    else
        close(fd);
    return rc;
}

static void release(struct mw_outfile *o)
{
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    o->lock_fd = -1;
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
}

int mw_outfile_claim(struct mw_outfile *o, const char *path, int force,
                     enum mw_outfile_kind kind)
{
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    o->force = force;
    o->kind = kind;
    if (!(o->path = strdup(path)))
        return fail(o, -ENOMEM, "out of memory");
    int rc = -EAGAIN;
    for (int tries = 0; rc == -EAGAIN && tries < CLAIM_TRIES; tries++) {
        struct stat lst;
        int exists = lstat(path, &lst) == 0;
        if (!exists && errno != ENOENT)
            rc = cannot_write(o, errno);
        else if (exists && S_ISDIR(lst.st_mode))
            rc = cannot_write(o, EISDIR);   /* not a file -f could replace */
        else if (exists && !force)
            rc = -EEXIST;
        else if (exists)
            rc = check_existing(o, &lst);
        else if (kind == MW_OUTFILE_TRACE)
            rc = (rc = create_locked(o)) == -EEXIST && force ? -EAGAIN : rc;
        else
            rc = 1;   /* a new report: written aside */
        if (rc == 0 && exists)
            rc = 1;   /* a file replaced: written aside */
    }
    if (rc == 1) {
        int fd = make_temp(path, &o->tmp);
        if (fd < 0) {
            rc = cannot_write(o, errno);
        } else {
            close(fd);
            rc = 0;
        }
    } else if (rc == -EAGAIN) {
        rc = fail(o, -EAGAIN, "cannot write '%s': it keeps changing", path);
    }
    if (rc != 0) {
        char err[sizeof o->err];
        memcpy(err, o->err, sizeof err);
        mw_outfile_abandon(o);
        memcpy(o->err, err, sizeof err);
    }
    return rc;
}

const char *mw_outfile_write_path(const struct mw_outfile *o)
{
    return o->tmp ? o->tmp : o->path;
}

/* fsync of the file at path, or of the directory that holds it. */
static int sync_path(const char *path, int dir)
{
    char d[PATH_MAX];
    if (dir) {
        const char *slash = strrchr(path, '/');
        snprintf(d, sizeof d, "%.*s", slash ? (int)(slash - path + 1) : 1, slash ? path : ".");
        path = d;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -errno;   /* EINVAL: cannot be synced */
    close(fd);
    return rc;
}

/* Moves the temporary file over path: rename, or for a new report link, which refuses to
 * replace a file that appeared meanwhile. */
static int move_into_place(struct mw_outfile *o)
{
    if (o->kind == MW_OUTFILE_REPORT && !o->force) {
        if (link(o->tmp, o->path) == 0) {
            unlink(o->tmp);
            return 0;
        }
        if (errno == EEXIST)
            return -EEXIST;
        if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS)
            return -errno;
        /* A file system without hard links: the check at the claim has to do. */
    }
    if (o->kind == MW_OUTFILE_TRACE)
        unlink_sidecars(o->path);   /* the old trace's: they would be replayed into ours */
    return rename(o->tmp, o->path) == 0 ? 0 : -errno;
}

int mw_outfile_commit(struct mw_outfile *o)
{
    int rc = 0;
    if (!o->tmp) {
        int here = still_there(o);
        if (here == 0)
            rc = fail(o, -ENOENT, "trace '%s' was removed while the script ran; its changes "
                                  "are lost", o->path);
        else if (here < 0)
            rc = fail(o, -ESTALE, "trace '%s' was replaced by another file while the script "
                                  "ran; this run's changes are lost", o->path);
        release(o);
        return rc;
    }
    if ((rc = sync_path(o->tmp, 0)) == 0 && (rc = move_into_place(o)) == 0) {
        sync_path(o->path, 1);
    } else if (rc == -EEXIST) {
        fail(o, rc, "'%s' already exists (use -f to overwrite it)", o->path);
    } else if (rc == -ENOENT && o->kind == MW_OUTFILE_TRACE) {
        /* The temporary file went, or the directory with it. */
        fail(o, rc, "trace '%s' was removed while the script ran; its changes are lost",
             o->path);
    } else if (o->kind == MW_OUTFILE_TRACE) {
        /* The run's changes are complete in the temporary file: keep it, and say where. */
        fail(o, rc, "cannot move trace '%s' into place: %s; its changes are in '%s'", o->path,
             strerror(-rc), o->tmp);
        free(o->tmp);
        o->tmp = NULL;
    } else {
        fail(o, rc, "cannot write '%s': %s", o->path, strerror(-rc));
    }
    if (rc && o->tmp)
        unlink(o->tmp);
    release(o);
    return rc;
}

void mw_outfile_abandon(struct mw_outfile *o)
{
    if (o->tmp) {
        unlink(o->tmp);
        if (o->kind == MW_OUTFILE_TRACE)
            unlink_sidecars(o->tmp);
    } else if (o->path && o->lock_fd >= 0 && still_there(o) == 1) {
        unlink(o->path);
        unlink_sidecars(o->path);
    }
    release(o);
}
