/* The engine's public face and its lock: setup, the choice of detector, the writer hook,
 * cheap queries from any thread, and the end of watching (stop, fork). engine.h lists the
 * other rooms and states the design. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "fault_path.h"
#include "mw_error.h"
#include "signal_chain.h"

#define MAX_ACCTS 65536u
#define POOL_MAX ((size_t)256 << 30)      /* copies at most; mapped as needed (page_pool.h) */

struct engine engine = { .lock = PTHREAD_MUTEX_INITIALIZER };

void engine_lock(void)
{
    pthread_mutex_lock(&engine.lock);
    engine.lock_owner = pthread_self();
    engine.locked = 1;
}

void engine_unlock(void)
{
    engine_assert_locked();
    engine.locked = 0;
    pthread_mutex_unlock(&engine.lock);
}

int engine_live_locked(void)
{
    engine_assert_locked();
    return engine.initialized && !engine.detached;
}

size_t page_run_end(struct mw_page *const *pages, size_t i, size_t n,
                    int (*keep)(const struct mw_page *e))
{
    int prot = MW_PROT_OF(atomic_load(&pages[i]->acct_prot));
    size_t j = i + 1;
    while (j < n && pages[j]->addr == pages[j - 1]->addr + engine.page_size &&
           MW_PROT_OF(atomic_load(&pages[j]->acct_prot)) == prot && (!keep || keep(pages[j])))
        j++;
    return j;
}

/* ---- setup ----------------------------------------------------------------------- */

static const struct mw_detector_ops *detector_for(enum mw_backend b)
{
    if (b == MW_BACKEND_UFFD)
        return mw_detect_uffd.available() ? &mw_detect_uffd : NULL;
    if (b == MW_BACKEND_MPROTECT)
        return &mw_detect_mprotect;
    /* auto: uffd where the kernel has it. Its first write costs about what mprotect's does
     * (bench/bench_backends.c), and protecting a page adds no kernel memory mapping, so it
     * scales past vm.max_map_count (README "Backends"); it passes the concurrency soak
     * (tests/cli/soak.bats, tests/unit/test_uffd_concurrency.c) as mprotect does. */
    return mw_detect_uffd.available() ? &mw_detect_uffd : &mw_detect_mprotect;
}

/* Makes det the engine's mechanism (nothing protected). */
static int use_detector_locked(enum mw_backend b)
{
    engine_assert_locked();
    const struct mw_detector_ops *det = detector_for(b);
    if (!det)
        return MW_EBACKEND;
    if (det == engine.det)
        return 0;
    struct mw_detector_env env = {
        .index = engine.index, .pool = engine.pool, .accts = engine.accts,
        .page_size = engine.page_size,
    };
    int rc = det->init(&env);
    if (rc)
        return rc;
    engine.det = det;
    if (engine.hook)
        mw_fault_path_set_writer_hook(engine.hook, engine.hook_ctx);
    mw_fault_path_set_hot_hook(engine.hot_hook);
    return 0;
}

static int init_locked(void)
{
    if (engine.initialized)
        return 0;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || (size_t)ps > MW_SPAN_MAX_PAGE)
        return -EINVAL;
    engine.page_size = (size_t)ps;
    engine.page_cost = mw_region_index_page_cost();
    engine.accts_bytes = MAX_ACCTS * sizeof(struct mw_acct);
    engine.accts = mmap(NULL, engine.accts_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (engine.accts == MAP_FAILED)
        return -errno;
    int rc = mw_region_index_create(engine.page_size, &engine.index);
    if (rc)
        goto fail_accts;
    rc = mw_page_pool_create(engine.page_size, POOL_MAX / engine.page_size, engine.accts,
                             &engine.pool);
    if (rc)
        goto fail_index;
    engine.copy_cost = mw_page_pool_copy_cost(engine.pool);
    rc = use_detector_locked(engine.want);
    if (rc)
        goto fail_pool;
    engine.next_id = 1;
    engine.initialized = 1;
    return 0;

fail_pool:
    mw_page_pool_destroy(engine.pool);
    engine.pool = NULL;
fail_index:
    mw_region_index_destroy(engine.index);
    engine.index = NULL;
fail_accts:
    munmap(engine.accts, engine.accts_bytes);
    engine.accts = NULL;
    return rc;
}

int mw_engine_init(void)
{
    engine_lock();
    int rc = engine.detached ? MW_EBACKEND : init_locked();
    engine_unlock();
    if (rc == 0)
        mw_signal_altstack_ensure();
    return rc;
}

void mw_engine_set_coalesce_gap(size_t bytes)
{
    engine_lock();
    engine.coalesce_gap = bytes;
    engine_unlock();
}

void mw_engine_set_writer_hook(mw_writer_hook hook, void *hook_ctx)
{
    engine_lock();
    engine.hook = hook;
    engine.hook_ctx = hook_ctx;
    if (engine_live_locked())
        mw_fault_path_set_writer_hook(hook, hook_ctx);
    engine_unlock();
}

enum mw_backend mw_engine_default_backend(void)
{
    return detector_for(MW_BACKEND_AUTO)->backend;
}

int mw_engine_backend_available(enum mw_backend backend)
{
    return backend == MW_BACKEND_AUTO || detector_for(backend) != NULL;
}

int mw_engine_set_backend(enum mw_backend backend)
{
    if (!mw_engine_backend_available(backend))
        return MW_EBACKEND;
    engine_lock();
    int rc = 0;
    if (!engine.initialized) {
        engine.want = backend;
    } else if (engine.detached) {
        rc = MW_EBACKEND;
    } else if (backend != MW_BACKEND_AUTO && engine.det->backend != backend) {
        /* Switching is only safe while no page is protected or dirty. */
        if (engine.nregions == engine.nholes && mw_region_index_count(engine.index) == 0 &&
            !mw_fault_path_has_dirty())
            rc = use_detector_locked(backend);
        else
            rc = MW_EBACKEND;
        if (rc == 0)
            engine.want = backend;
    }
    engine_unlock();
    return rc;
}

enum mw_backend mw_engine_backend(void)
{
    engine_lock();
    const struct mw_detector_ops *det = engine.initialized ? engine.det : detector_for(engine.want);
    enum mw_backend b = det ? det->backend : MW_BACKEND_MPROTECT;
    engine_unlock();
    return b;
}

/* ---- cheap queries, from any thread --------------------------------------------------- */

/* Async-signal-safe. */
int mw_engine_owns_address(const void *addr)
{
    struct mw_region_index *idx = engine.index;
    if (!idx || engine.page_size == 0)
        return 0;
    uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(engine.page_size - 1);
    mw_region_index_enter(idx);
    struct mw_page *e = mw_region_index_lookup(idx, page);
    uint32_t s = e ? atomic_load_explicit(&e->state, memory_order_acquire) : MW_PAGE_UNTRACKED;
    mw_region_index_leave(idx);
    return MW_PAGE_STATE(s) <= MW_PAGE_CHECKING;
}

int mw_engine_unwritten(const void *addr, size_t len)
{
    struct mw_region_index *idx = engine.index;
    if (!idx || engine.page_size == 0)
        return 0;
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(engine.page_size - 1);
    uintptr_t hi = (uintptr_t)addr + len;
    int clean = 1;
    mw_region_index_enter(idx);
    for (uintptr_t page = lo; clean && page < hi; page += engine.page_size) {
        struct mw_page *e = mw_region_index_lookup(idx, page);
        uint32_t s = e ? atomic_load_explicit(&e->state, memory_order_acquire) : MW_PAGE_UNTRACKED;
        clean = MW_PAGE_STATE(s) == MW_PAGE_CLEAN;
    }
    mw_region_index_leave(idx);
    return clean;
}

/* Async-signal-safe. */
int mw_engine_has_dirty(void)
{
    return engine.det && mw_fault_path_has_dirty();
}

int mw_engine_check_line(mw_change_fn fn, void *ctx, const struct mw_writer *line_writer)
{
    engine_lock();
    int n = 0;
    if (engine_live_locked()) {
        mw_signal_chain_ensure_first();
        n = check_locked(fn, ctx, line_writer);
    }
    engine_unlock();
    return n;
}

void mw_engine_own_work(int on)
{
    mw_fault_path_own_work(on);
}

int mw_engine_check(mw_change_fn fn, void *ctx)
{
    return mw_engine_check_line(fn, ctx, NULL);
}

/* ---- stop, fork ------------------------------------------------------------------- */

static void collect_clean(struct mw_page *e, void *ctx)
{
    (void)ctx;
    uint32_t s;
    while ((s = atomic_load(&e->state)) == MW_PAGE_FAULTING || s == MW_PAGE_OPEN)
        sched_yield();
    if (s == MW_PAGE_CLEAN && atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_UNTRACKED))
        svec_push(&engine.scratch.s.pages, &e, sizeof(e));
    else if (s == MW_PAGE_DIRTY)
        atomic_store(&e->state, MW_PAGE_UNTRACKED);   /* its copy goes at the next check */
}

void mw_engine_unprotect_all(void)
{
    engine_lock();
    if (engine_live_locked()) {
        engine.stopped = 1;
        shadows_release_all_locked();
        struct svec *pv = &engine.scratch.s.pages;
        pv->len = 0;
        mw_region_index_foreach(engine.index, collect_clean, NULL);
        struct mw_page **pages = (struct mw_page **)pv->p;
        size_t np = pv->len / sizeof(*pages);
        if (np)
            qsort(pages, np, sizeof(*pages), cmp_page_addr);
        size_t ps = engine.page_size;
        for (size_t i = 0, j; i < np; i = j) {
            j = page_run_end(pages, i, np, NULL);
            int prot = MW_PROT_OF(atomic_load(&pages[i]->acct_prot));
            if (engine.det->unprotect(pages[i]->addr, (j - i) * ps, prot) != 0)
                for (size_t k = i; k < j; k++)
                    engine.det->unprotect(pages[k]->addr, ps, prot);
        }
        pv->len = 0;
    }
    engine_unlock();
}

static void unprotect_in_child(struct mw_page *e, void *ctx)
{
    (void)ctx;
    uint32_t s = MW_PAGE_STATE(atomic_load(&e->state));
    if (s == MW_PAGE_CLEAN || s == MW_PAGE_FAULTING || s == MW_PAGE_CHECKING || s == MW_PAGE_OPEN)
        mprotect((void *)e->addr, engine.page_size, MW_PROT_OF(atomic_load(&e->acct_prot)));
}

/* In a fork child: the lock re-made (another parent thread may have held it at the fork:
 * only the forking thread exists here), every page the parent protected opened, the
 * index forgotten and the fault path let go. 1 when there was an engine to let go of. */
static int let_go_in_child(void)
{
    pthread_mutex_init(&engine.lock, NULL);
    engine.locked = 0;
    if (!engine.initialized || engine.detached)
        return 0;
    mw_region_index_foreach(engine.index, unprotect_in_child, NULL);
    mw_region_index_forget_all(engine.index);
    mw_fault_path_detach();
    return 1;
}

void mw_engine_reset_after_fork(void)
{
    if (!let_go_in_child())
        return;
    if (engine.det && engine.det->after_fork)
        engine.det->after_fork();
    /* The index, pool and accounts are the parent's watchers' (left as they are); init
     * makes new ones. The hooks stay: the Python layer's, the same in the child. */
    engine.det = NULL;
    engine.index = NULL;
    engine.pool = NULL;
    engine.accts = NULL;
    engine.naccts = 0;
    engine.regions = NULL;
    engine.region_ids = NULL;
    engine.nregions = engine.regions_cap = engine.nholes = 0;
    engine.limits_sum = 0;
    engine.shadows.len = 0;
    engine.initialized = 0;
}

void mw_engine_detach_after_fork(void)
{
    if (let_go_in_child())
        engine.detached = 1;
}
