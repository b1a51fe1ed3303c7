/* The fault path shared by the page-protection detectors (detect_mprotect.c,
 * detect_uffd.c): claiming a first write to a CLEAN page, neighbour writes run
 * single-stepped, the dirty list and the writer hook. fault_path.c states the ordering
 * rules; a detector keeps only its mechanism (how pages are protected, lifted and found).
 *
 * A page is protected by one of two mechanisms and its fault tells which: mprotect raises
 * SIGSEGV (SEGV_ACCERR), which the fault path lifts and re-protects with mprotect itself;
 * userfaultfd write-protection in SIGBUS mode raises SIGBUS (BUS_ADRERR), which it lifts
 * and re-protects with the detector's mw_fault_wp_fn. */
#ifndef MW_FAULT_PATH_H
#define MW_FAULT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "detector.h"

/* Write-protects [start, start+len) (on = 1) or lifts the protection (on = 0) by the
 * mechanism whose faults arrive as SIGBUS. 0 or -errno. Async-signal-safe. */
typedef int (*mw_fault_wp_fn)(uintptr_t start, size_t len, int on);

/* Makes the calling detector the one whose faults are claimed: installs memwatch's
 * SIGSEGV/SIGBUS handler (signal_chain.c) and the SIGTRAP handler for neighbour writes.
 * sigbus_wp is the detector's SIGBUS mechanism, or NULL when it protects with mprotect
 * only (then no SIGBUS is memwatch's). One fault path serves whichever detector the
 * engine uses: it switches only while no page is indexed or dirty. 0 or -errno. */
int mw_fault_path_start(const struct mw_detector_env *env, mw_fault_wp_fn sigbus_wp);

/* Called (async-signal-safe, in the faulting thread) when a page's neighbours turn out to
 * be busy: the page waits for mw_fault_path_take_hot. */
typedef void (*mw_hot_hook)(void);
void mw_fault_path_set_hot_hook(mw_hot_hook hook);
/* Takes up to max pages offered as busy since the last call. Engine lock. */
size_t mw_fault_path_take_hot(struct mw_page **out, size_t max);

/* Runs fn(ctx), which reads memory the program may have unmapped meanwhile (a page left
 * open, whose protection no longer tells): 0, or -EFAULT when fn read unmapped memory and
 * was abandoned there. Not async-signal-safe; fn must not hold locks or allocate. */
int mw_fault_path_probe(void (*fn)(void *ctx), void *ctx);

/* memwatch's own write of len bytes into one page that may be protected, outside its
 * watched bytes: done as a neighbour's write is, without the fault (copy, lift, write,
 * protect again, compare the watched bytes: a write another thread made meanwhile is
 * kept, writer unknown). Engine lock held, so that no check runs meanwhile. 0, or -1 when
 * the protection could not be lifted (nothing written). */
int mw_fault_path_write(void *dst, const void *src, size_t len);

/* The calling thread's own work (memwatch's check, and what it calls) starts (on = 1) or
 * ends (0); nests. Its neighbour writes are always single-stepped; they can make a page
 * busy but never use up its budget (see fault_path.c: neighbours). Async-signal-safe. */
void mw_fault_path_own_work(int on);

/* The detector operations that do not depend on the mechanism (see detector.h). */
struct mw_page *mw_fault_path_collect(void);
void mw_fault_path_requeue(struct mw_page *e);
int mw_fault_path_has_dirty(void);            /* async-signal-safe */
void mw_fault_path_set_writer_hook(mw_writer_hook hook, void *ctx);
int mw_fault_path_overlaps(uintptr_t addr, size_t len);
void mw_fault_path_detach(void);

#endif
