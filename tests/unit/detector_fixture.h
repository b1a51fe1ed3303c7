/* What the detector tests share: a page index, a pool and accounts of their own (the
 * engine's, without the engine), pages indexed by hand, and what a check does to a page
 * minus the diff. */
#ifndef MW_DETECTOR_FIXTURE_H
#define MW_DETECTOR_FIXTURE_H

#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "detector.h"
#include "fault_path.h"

static size_t ps;
static struct mw_region_index *idx;
static struct mw_page_pool *pool;
static struct mw_acct *accts;

/* Sets up the index, a pool of 1024 copies and 4 accounts (the first with 1 GiB), and
 * makes det the detector whose faults are claimed. 0 or a negative status. */
static int fixture_start(const struct mw_detector_ops *det)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    accts = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (accts == MAP_FAILED)
        return -1;
    atomic_store(&accts[0].limit, (size_t)1 << 30);
    int rc = mw_region_index_create(ps, &idx);
    if (rc == 0)
        rc = mw_page_pool_create(ps, 1024, accts, &pool);
    if (rc == 0)
        rc = mw_page_pool_commit(pool, 1024);
    struct mw_detector_env env = { .index = idx, .pool = pool, .accts = accts, .page_size = ps };
    return rc == 0 ? det->init(&env) : rc;
}

/* Indexes page as entirely watched, charged to account acct, CLEAN (not yet protected). */
static struct mw_page *watch_page(uintptr_t page, uint32_t acct)
{
    struct mw_page *e = mw_region_index_page_new(idx, page);
    atomic_store(&e->acct_prot, MW_ACCT_PROT(acct, PROT_READ | PROT_WRITE));
    atomic_store(&e->watched, MW_WATCHED_ONE(MW_SPAN(0, ps)));
    e->regions = (uintptr_t)e;   /* "a region": the detector never looks inside */
    mw_region_index_insert(idx, e);
    return e;
}

/* What a check does to one page, minus the diff: re-arm, release the copy, CLEAN.
 * Returns rearm's status. */
static int settle(const struct mw_detector_ops *det, struct mw_page *e)
{
    atomic_store(&e->state, MW_PAGE_CHECKING);
    int rc = det->rearm(e->addr, ps, PROT_READ | PROT_WRITE);
    uint32_t slot = atomic_load(&e->slot);
    if (slot != MW_SLOT_NONE) {
        mw_page_pool_release_copy(pool, slot);
        atomic_store(&e->slot, MW_SLOT_NONE);
    }
    atomic_store(&e->state, MW_PAGE_CLEAN);
    return rc;
}

static size_t list_len(struct mw_page *l)
{
    size_t n = 0;
    for (; l; l = atomic_load(&l->next))
        n++;
    return n;
}

#endif
