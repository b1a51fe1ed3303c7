/* What the kernel's memory map says about an address: the mapping (VMA) that covers it
 * and its protection. Used when a range is watched (is it mapped, readable, writable?)
 * and by the userfaultfd detector (registration is per whole VMA).
 *
 * Not async-signal-safe (it may read /proc/self/maps with stdio). Callers serialize
 * (the engine lock). */
#ifndef MW_MEMORY_MAP_H
#define MW_MEMORY_MAP_H

#include <stdint.h>

/* The mapping covering addr: [*start, *end) and its PROT_* bits. 0, MW_EUNMAPPED when no
 * mapping covers addr, or -errno. */
int mw_vma_query(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot);

#endif
