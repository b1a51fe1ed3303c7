/* The change-detection engine: watch memory ranges, detect writes with page protection,
 * report exact changed byte ranges with their old and new bytes.
 *
 * The engine is process-wide (a fault names a page, not a watcher), and a mw_watcher is an
 * owner of regions with its own memory limit and statistics. Several watchers may watch
 * ranges on the same page; a check harvests every dirty page once and reports each
 * region's change with the region's user pointer, so the caller routes it.
 *
 * Thread-safety: every function here may be called from any thread; they serialize on the
 * engine lock. None of them may be called from a signal handler. */
#ifndef MW_WATCHER_H
#define MW_WATCHER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mw_writer.h"

typedef struct mw_watcher mw_watcher;

/* Names and parsing: src/trace/run_settings.h. */
enum mw_backend {
    MW_BACKEND_AUTO = 0,   /* the best mechanism this kernel supports */
    MW_BACKEND_MPROTECT,   /* mprotect(PROT_READ) + SIGSEGV handler: portable */
    MW_BACKEND_UFFD,       /* userfaultfd write-protect (Linux) */
};

struct mw_watcher_config {
    size_t max_memory_bytes;   /* everything allocated for this watcher's watching; 0 = 1 GiB */
    enum mw_backend backend;
};

/* One changed byte range of a region. old is NULL when the old contents were not kept
 * (memory limit reached at write time): then new holds the current bytes of the range. */
struct mw_range {
    size_t offset;              /* from the start of the region */
    size_t length;
    const unsigned char *old;   /* length bytes, or NULL: old value unavailable */
    const unsigned char *new_;  /* length bytes */
};

/* One change: the changed ranges of one region found by one check. Pointers are valid
 * only during the callback. */
struct mw_change {
    uint64_t region_id;
    void *region_user;          /* the user pointer given to mw_watcher_watch */
    const void *region_addr;
    size_t region_size;
    size_t nranges;
    const struct mw_range *ranges;
    const struct mw_writer *writer;  /* the first write's writer; never NULL */
    uint64_t first_fault_ns;    /* CLOCK_MONOTONIC time of the first write seen */
    int compared;               /* found by comparing a page left open (shadowed), not by a
                                 * trap: the writer is the line at whose boundary it was seen */
};

typedef void (*mw_change_fn)(const struct mw_change *change, void *ctx);

struct mw_watcher_stats {
    size_t tracked_objects;
    size_t tracked_bytes;
    size_t memory_used_bytes;   /* index share + old-content copies held + bookkeeping */
    size_t memory_limit_bytes;
    uint64_t faults;            /* first writes to protected pages seen */
    uint64_t checks;
    uint64_t pages_compared;    /* dirty pages the checks compared (engine-wide, like checks) */
    uint64_t changes;           /* changes reported */
    uint64_t old_unavailable;   /* changes whose old value could not be kept */
    uint64_t changes_compared;  /* of changes: found on a page left open (shadow.c) */
    size_t pages_open;          /* pages left open now (engine-wide) */
    size_t pages_open_peak;     /* most at once (engine-wide) */
};

/* Engine-wide setup; idempotent. Installs the fault handler. */
int mw_engine_init(void);
/* Optional: fills struct mw_writer at fault time. */
void mw_engine_set_writer_hook(mw_writer_hook hook, void *hook_ctx);
/* 1 when every page of [addr, addr + len) is protected and unwritten since the last check
 * (so its bytes read now are what that check saw); 0 otherwise. Any thread, any time. */
int mw_engine_unwritten(const void *addr, size_t len);
/* Changed runs of one page at most bytes apart are reported as one range, with the
 * unchanged bytes between them (equal in old and new); such ranges start and end at
 * multiples of 16 bytes from the region's start (or at the page's edge), so they hold
 * whole elements. 0, the default: exact ranges. */
void mw_engine_set_coalesce_gap(size_t bytes);
/* Which backend auto resolves to (uffd where the kernel has userfaultfd write-protection
 * with UFFD_FEATURE_SIGBUS and WP_UNPOPULATED, mprotect otherwise; MEMWATCH_DISABLE_UFFD=1
 * in the environment simulates a kernel without it), and whether one is available. */
enum mw_backend mw_engine_default_backend(void);
int mw_engine_backend_available(enum mw_backend backend);
/* The mechanism is process-wide (a fault names a page, not a watcher). Before the engine
 * is initialized, or while it watches nothing, the next mw_engine_init or
 * mw_watcher_create with an explicit backend selects it; once something is watched, a
 * watcher asking for another backend gets MW_EBACKEND. MW_EBACKEND if unavailable. */
int mw_engine_set_backend(enum mw_backend backend);
/* The backend in use (resolved, never AUTO once initialized; before, what auto picks). */
enum mw_backend mw_engine_backend(void);

/* Kernel writes into watched memory (read(), readv(), recv() into a watched buffer):
 * protected pages make such calls fail with EFAULT, under both mechanisms. Before the
 * call, mw_engine_kwrite_begin opens the watched pages of [addr, addr+len) the way a
 * first write from the calling thread would (old copy kept, writer = this thread and its
 * Python line) and pins the range so that no check protects those pages again until
 * mw_engine_kwrite_end(token). Returns a token for mw_engine_kwrite_end (0: nothing to
 * release). Cheap when nothing is watched. Not async-signal-safe. */
int mw_engine_kwrite_begin(const void *addr, size_t len);
void mw_engine_kwrite_end(int token);
/* memwatch's own write of len bytes from src to dst, where dst may share a protected page
 * with watched bytes but is not watched itself (storage being moved next to other watched
 * objects): written without a fault, and without losing a write another thread makes to
 * the page's watched bytes meanwhile. Each page is done as a neighbour's write is
 * (fault_path.c). 0, or MW_ENOMEM-style status when a page could not be opened. */
int mw_engine_write(void *dst, const void *src, size_t len);
/* The pages of [start, start+len) are memory other traced processes map too: word_of
 * gives each page's word in memory they share, which says which process has the page open
 * (xproc_page.h). Pages not watched are skipped. Takes the engine lock. */
struct mw_xproc_word;
void mw_engine_share_pages(const void *start, size_t len,
                           struct mw_xproc_word *(*word_of)(uintptr_t page, void *ctx), void *ctx);
/* The program is about to unmap (munmap, mremap) [addr, addr+len): when watched pages lie
 * there, hook(addr, len) runs first (unmap_interpose.c), so the caller can find what was
 * written before the memory goes and stop watching it. Cheap when nothing watched is
 * there. Not async-signal-safe. */
void mw_engine_set_unmap_hook(void (*hook)(const void *addr, size_t len));
void mw_engine_before_unmap(const void *addr, size_t len);
/* The program has just mapped [addr, addr+len) shared from a file descriptor (mmap with
 * MAP_SHARED: a SharedMemory block, a file): hook(addr, len) runs (map_interpose in
 * unmap_interpose.c), so that memory another process watches is watched here too
 * (shared_watch.c). Not async-signal-safe. */
void mw_engine_set_map_hook(void (*hook)(void *addr, size_t len));
void mw_engine_after_shared_map(void *addr, size_t len);
/* Does [addr, addr+len) touch a page the engine protects? (To decide on a retry.) */
int mw_engine_owns_range(const void *addr, size_t len);
/* True when addr lies on a page the engine protects (for signal chaining decisions). */
int mw_engine_owns_address(const void *addr);
/* Undo all protection (before interpreter finalization, and in a forked child). */
void mw_engine_unprotect_all(void);
/* In a child made by fork(): forget everything, unprotect, never report. */
void mw_engine_detach_after_fork(void);
/* In a child made by fork() (async-signal-safe): forget everything and unprotect, like
 * mw_engine_detach_after_fork, but leave the engine to start afresh at its next use, with
 * the child's own detector state: the watchers made before the fork are the parent's and
 * must not be used (their memory is leaked in the child). */
void mw_engine_reset_after_fork(void);
/* Has any page been written since the last check? Async-signal-safe, lock-free. */
int mw_engine_has_dirty(void);

int mw_watcher_create(const struct mw_watcher_config *config, mw_watcher **out);
/* Unwatches everything left (without a final check) and frees. Accepts NULL. */
void mw_watcher_destroy(mw_watcher *w);

/* Starts watching [addr, addr+size). user is handed back in each change. Returns
 * MW_EINVAL (NULL / zero size), MW_EUNMAPPED, MW_EOWN, MW_ELIMIT. */
int mw_watcher_watch(mw_watcher *w, const void *addr, size_t size, void *user,
                     uint64_t *region_id_out);
/* Stops watching. With fn, runs a check first (see mw_engine_check) and hands fn every
 * change found, of every region, so that nothing written before the unwatch is lost. With
 * fn NULL, no check runs: what this region had pending is discarded, and other regions'
 * pending changes stay for the next check. */
int mw_watcher_unwatch(mw_watcher *w, uint64_t region_id, mw_change_fn fn, void *ctx);
/* Harvests every dirty page of every watcher (re-protect first, then diff) and calls fn
 * for each change, in region order; change->region_user tells whose it is. Returns the
 * number of changes reported, or a negative status. A write racing with a check is
 * reported by this check or by the next, never lost. */
int mw_engine_check(mw_change_fn fn, void *ctx);
/* The same at a line boundary: what is found on shadowed pages is attributed to
 * line_writer, the line (and thread) that just ran. */
int mw_engine_check_line(mw_change_fn fn, void *ctx, const struct mw_writer *line_writer);

/* Pages whose neighbours are busy (every write of theirs would trap) can be left open and
 * compared at every check instead, by a caller that checks at each line boundary while any
 * is (shadow.c). hook is called, async-signal-safely in the faulting thread, when a page is
 * offered; NULL (the default) never offers one. */
void mw_engine_set_hot_hook(void (*hook)(void));
/* Leaves open the pages offered since the last call (every check does it too); returns how
 * many are open now. */
int mw_engine_shadow_hot(void);
/* Did a shadowed page's watched bytes change since the last check? Cheap (no scratch,
 * no system call): for the caller's line boundaries. */
int mw_engine_shadows_changed(void);
/* How many pages are left open. */
size_t mw_engine_shadowed(void);
/* allowed 0: no page is left open from now on, and those that are are protected again (and
 * compared a last time) at the next check; 1 (the default): pages may be left open again.
 * For a caller that cannot tell which thread wrote an open page (several threads run). */
void mw_engine_allow_shadows(int allowed);
/* The calling thread's check and what it does with the changes (building them, the
 * callback, the trace) start (on = 1) or end (0). Its writes next to watched bytes are
 * memwatch's, not the program's: they can make a page busy but never use up its budget of
 * single-stepped neighbour writes (README, Neighbours), so they never leave a page open
 * with its writer unknown. Async-signal-safe. */
void mw_engine_own_work(int on);
void mw_watcher_stats(const mw_watcher *w, struct mw_watcher_stats *out);

#endif
