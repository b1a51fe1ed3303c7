/* Memory memwatch itself uses can never be watched: the fault handler writes to it (its
 * data segment, the pool, the index, the accounts), and the checker writes to its scratch
 * while pages are CHECKING. Protecting any of it would make a fault inside the handler
 * or make the checker wait for itself. */
#include <link.h>
#include <stddef.h>

#include "engine.h"
#include "fault_path.h"

/* The writable segments (.data, .bss) of the shared object the engine is part of. */
struct own_segments {
    uintptr_t self, a;
    size_t len;
    int hit;
};

static int own_segments_cb(struct dl_phdr_info *info, size_t size, void *vctx)
{
    (void)size;
    struct own_segments *c = vctx;
    int mine = 0;
    for (int i = 0; i < info->dlpi_phnum && !mine; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        mine = ph->p_type == PT_LOAD && c->self >= lo && c->self < lo + ph->p_memsz;
    }
    if (!mine)
        return 0;
    uintptr_t ps = (uintptr_t)engine.page_size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr) & ~(ps - 1);
        uintptr_t hi = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + ps - 1) & ~(ps - 1);
        if (c->a < hi && c->a + c->len > lo)
            c->hit = 1;
    }
    return 1;
}

int owns_memory_locked(uintptr_t a, size_t len)
{
    engine_assert_locked();
    struct own_segments own = {(uintptr_t)&engine, a, len, 0};
    dl_iterate_phdr(own_segments_cb, &own);
    if (own.hit)
        return 1;
    if (mw_page_pool_overlaps(engine.pool, a, len) ||
        mw_region_index_overlaps(engine.index, a, len) || mw_fault_path_overlaps(a, len))
        return 1;
    uintptr_t ac = (uintptr_t)engine.accts;
    if (a < ac + engine.accts_bytes && a + len > ac)
        return 1;
    for (size_t i = 0; i < ENGINE_SCRATCH; i++)
        if (svec_overlaps(&engine.scratch.all[i], a, len))
            return 1;
    if (svec_overlaps(&engine.shadows, a, len))
        return 1;
    return 0;
}
