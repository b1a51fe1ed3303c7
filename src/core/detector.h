/* One interface for the mechanisms that detect writes to watched pages.
 *
 * The engine (engine.h) owns the page entries (region_index.h), their state machine, the
 * pool of old copies (page_pool.h) and the accounts; a detector only makes writes to
 * CLEAN pages observable. What happens on a write is the same for every mechanism and
 * lives in fault_path.c: claiming the page, its old copy, the writer, the dirty list that
 * the check collects (mw_fault_path_collect and friends).
 *
 * The mprotect mechanism (detect_mprotect.c): protect = mprotect without PROT_WRITE; the
 * first write faults with SIGSEGV.
 *
 * The userfaultfd mechanism (detect_uffd.c): protect = UFFDIO_REGISTER of the whole VMAs
 * (lazily, once) + UFFDIO_WRITEPROTECT; in UFFD_FEATURE_SIGBUS mode the first write
 * raises SIGBUS in the writing thread, so old copies stay lazy and writers known. (A
 * WP_ASYNC variant would have to copy old contents at protect time and collect with
 * PAGEMAP_SCAN + PM_SCAN_WP_MATCHING; README "Backends" says why it is not used.) */
#ifndef MW_DETECTOR_H
#define MW_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "acct.h"
#include "page_pool.h"
#include "region_index.h"
#include "watcher.h"

struct mw_detector_env {
    struct mw_region_index *index;
    struct mw_page_pool *pool;
    struct mw_acct *accts;
    size_t page_size;
};

struct mw_detector_ops {
    enum mw_backend backend;
    int (*available)(void);
    /* Makes this mechanism the one whose faults the fault path claims. 0 or -errno. */
    int (*init)(const struct mw_detector_env *env);
    /* Start detecting writes to [start, start+len): pages are indexed and CLEAN. prot is
     * the pages' original protection. 0 or -errno. */
    int (*protect)(uintptr_t start, size_t len, int prot);
    /* Stop detecting; restore prot. 0 or -errno. */
    int (*unprotect)(uintptr_t start, size_t len, int prot);
    /* Re-arm collected pages (now CHECKING) before they are compared. 0 or -errno; an error
     * when part of the range is no longer mapped, so that nothing reads it (check.c). */
    int (*rearm)(uintptr_t start, size_t len, int prot);
    /* In a fork child (async-signal-safe): let go of what belongs to the parent, so that
     * init starts afresh. NULL: nothing to let go of. */
    void (*after_fork)(void);
};

extern const struct mw_detector_ops mw_detect_mprotect;
extern const struct mw_detector_ops mw_detect_uffd;   /* detect_uffd.c: SIGBUS mode */

/* Traps of a page per epoch (2^MW_TRAPS_EPOCH_SHIFT ns, about 16 ms) that make it busy:
 * it is then offered for comparison instead (fault_path.c, mw_engine_shadow_hot).
 * MW_NEIGHBOUR_LIMIT bounds single-stepped neighbour writes when nobody takes it: past it,
 * a neighbour's write leaves the page open until the next check (writer unknown). */
#define MW_BUSY_TRAPS 32
#define MW_NEIGHBOUR_LIMIT 512
#define MW_TRAPS_EPOCH_SHIFT 24

#endif
