/* What the kernel's memory map says about an address: the mapping (VMA) that covers it
 * and its protection. Used when a range is watched (is it mapped, readable, writable?)
 * and by the userfaultfd detector (registration is per whole VMA).
 *
 * Not async-signal-safe (it may read /proc/self/maps with stdio). Thread-safe: the engine
 * asks with its lock held, the Python layer with the GIL. */
#ifndef MW_MEMORY_MAP_H
#define MW_MEMORY_MAP_H

#include <stdint.h>
#include <stdio.h>

/* The mapping covering addr: [*start, *end) and its PROT_* bits. 0, MW_EUNMAPPED when no
 * mapping covers addr, or -errno. */
int mw_vma_query(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot);

/* What a mapping is a view of: for a mapping shared with other processes (MAP_SHARED: a
 * file, a SharedMemory block under /dev/shm, anonymous shared memory inherited through
 * fork), the backing object (device and inode) and the offset in it of the mapping's first
 * byte. Two processes that map the same (dev, inode, offset) see the same bytes, whatever
 * their addresses. */
struct mw_vma_identity {
    uintptr_t start, end;
    int prot;                    /* PROT_* bits */
    int shared;                  /* MAP_SHARED */
    uint32_t dev_major, dev_minor;
    uint64_t inode;              /* 0: no backing object (private anonymous memory) */
    uint64_t offset;             /* in the backing object, of start */
};
/* The mapping covering addr, with its identity. 0, MW_EUNMAPPED, or -errno. */
int mw_vma_identify(uintptr_t addr, struct mw_vma_identity *out);
/* The next mapping of an open /proc/self/maps stream, parsed: 1, or 0 at its end. */
int mw_maps_next(FILE *maps, struct mw_vma_identity *out);

#endif
