/* Where memwatch writes a file of its own, a trace or a report (issue 14, items 1 and 8):
 * what an existing file at that path may be, one writer at a time, and no half-written
 * file where a good one stood.
 *
 *   - Without force, an existing path (of any kind) is never touched: -EEXIST.
 *   - With force, only a regular file is replaced, never a device, a FIFO, a socket, a
 *     directory or a symbolic link; a trace replaces only a memwatch trace or an empty
 *     file, and a report never replaces an SQLite database. Anything else is refused:
 *     the way to replace it is to remove it first, which cannot be a slip of -o.
 *   - A trace file has one writer: the writer holds flock(2) on it for the whole run, so
 *     a second run refuses it, with force too. (flock, not fcntl: SQLite's own locks on
 *     the file are fcntl locks, and the two do not meet on a local file system.)
 *   - What replaces a file is written to a temporary file in the same directory, synced,
 *     and renamed over it once complete: a crash leaves the old file, never half a new
 *     one. A new trace (nothing stood there) is written in place, so that it can be read
 *     while the script runs, and a killed run leaves what it recorded where it was asked;
 *     a new report is written aside too and linked into place, so no half page appears.
 * Refusals and failures carry a one-line message (without "memwatch: ") in err. */
#ifndef MW_TRACE_OUTFILE_H
#define MW_TRACE_OUTFILE_H

#include <sys/types.h>

enum mw_outfile_kind { MW_OUTFILE_TRACE, MW_OUTFILE_REPORT };

struct mw_outfile {
    char *path;                 /* the destination, as named */
    char *tmp;                  /* the file written instead, moved over path by the
                                   commit; NULL: written in place */
    int lock_fd;                /* holds flock on the destination (traces); -1: none */
    int force;
    enum mw_outfile_kind kind;
    dev_t dev;                  /* of the file written in place */
    ino_t ino;
    char err[640];
};

/* Claims path (see above). 0; -EEXIST (exists, without force; err is empty); -EISDIR (a
 * directory); -EBUSY (another memwatch writes it); -EPERM (a file that may not be
 * replaced); -ENOMEM; or -errno when it cannot be created. err says why in each case but
 * -EEXIST. On failure nothing is left behind. */
int mw_outfile_claim(struct mw_outfile *o, const char *path, int force,
                     enum mw_outfile_kind kind);
/* Where the content goes: the temporary file, or path itself. */
const char *mw_outfile_write_path(const struct mw_outfile *o);
/* After the content is complete and closed: syncs it, moves it into place (rename; link
 * for a new report, which fails with -EEXIST if a file appeared meanwhile), syncs the
 * directory, releases the lock. 0, -ENOENT when the file or its directory was removed,
 * -ESTALE when path names another file than the trace written in place, or -errno;
 * err says which. The claim is released in every case. */
int mw_outfile_commit(struct mw_outfile *o);
/* Gives up: removes what the claim created (the temporary file, or the new file in place
 * while path still names it), releases the lock. Accepts a released claim. */
void mw_outfile_abandon(struct mw_outfile *o);

#endif
