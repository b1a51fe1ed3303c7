/* Write detection with mprotect(PROT_READ) and a SIGSEGV handler.
 *
 * protect = mprotect without PROT_WRITE; the first write faults with SIGSEGV and the
 * shared fault path (fault_path.c, whose DESIGN comment states the ordering rules) copies
 * the page's old contents lazily, lifts the protection with mprotect and pushes the page
 * on the dirty list; the check takes the list and rearm protects again. Each protected island
 * is a VMA, so scattered pages run into vm.max_map_count (see detect_uffd.c), and kernel
 * writes into a protected page fail with EFAULT unless kwrite_interpose.c prepares them.
 *
 * This detector has no SIGBUS mechanism: only SIGSEGV (SEGV_ACCERR) faults are claimed. */
#include <errno.h>
#include <sys/mman.h>

#include "detector.h"
#include "fault_path.h"

static int mprotect_available(void)
{
    return 1;
}

static int mprotect_init(const struct mw_detector_env *e)
{
    return mw_fault_path_start(e, NULL);
}

static int mprotect_protect(uintptr_t start, size_t len, int prot)
{
    return mprotect((void *)start, len, prot & ~PROT_WRITE) == 0 ? 0 : -errno;
}

static int mprotect_unprotect(uintptr_t start, size_t len, int prot)
{
    return mprotect((void *)start, len, prot) == 0 ? 0 : -errno;
}

const struct mw_detector_ops mw_detect_mprotect = {
    .backend = MW_BACKEND_MPROTECT,
    .available = mprotect_available,
    .init = mprotect_init,
    .protect = mprotect_protect,
    .unprotect = mprotect_unprotect,
    .rearm = mprotect_protect,
};
