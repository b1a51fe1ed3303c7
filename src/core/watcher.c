/* The engine: ties the region index, the detector, the page pool and the diff together.
 *
 * DESIGN
 * - One process-wide engine under one mutex (engine.lock): registration, unwatch, check
 *   and stats serialize on it. The fault handler never takes it.
 * - Regions: an engine-wide array sorted by id (ids only grow). Each page entry lists the
 *   regions that touch it (one inline pointer, or a vector when several share the page).
 * - A region joining a page that is already DIRTY gets a baseline: a copy of its bytes
 *   on that page taken at watch time, compared instead of the page's old copy (which
 *   predates the region), so nothing written before the watch is reported.
 * - Check (check_locked): take every dirty page from the detector, sort by address, and
 *   for each run of contiguous pages: mark CHECKING, re-arm (re-protect) the run FIRST,
 *   then compare each page against its old copy and mark it CLEAN. A writer faulting on
 *   a CHECKING page waits for CLEAN, so the bytes compared cannot change underneath and
 *   every write lands in this check or the next. While pages are CHECKING the checker
 *   writes only to memory of its own (mmap'd scratch, pool, slabs): a write of ours to a
 *   watched page in that window would wait for ourselves. Changed bytes (old and new) are
 *   copied into scratch, so the callback sees a consistent snapshot after the pages are
 *   writable again. Cost follows the dirty pages, not the number of watched regions.
 * - Removal: when the last region leaves a CLEAN page, it is marked REMOVED (faults on it
 *   retry), unprotected, then dropped from the index. A DIRTY page left without regions
 *   (an orphan) is already unprotected: the next check drops it after releasing its copy.
 * - Accounting: each page's index share is charged to one watcher (the page's account,
 *   moved to another watcher when that one leaves the page); region metadata and
 *   baselines to the region's watcher; each old copy to the page's account at fault time
 *   (the slot remembers which), released by the check. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "detector.h"
#include "diff.h"
#include "mw_error.h"
#include "page_pool.h"
#include "region_index.h"
#include "signal_chain.h"
#include "watcher.h"

#define DEFAULT_LIMIT ((size_t)1 << 30)
#define MAX_ACCTS 65536u
#define POOL_RESERVE ((size_t)64 << 30)   /* virtual only: PROT_NONE until committed */

struct mw_region {
    uint64_t id;
    uintptr_t addr;
    size_t size;
    void *user;
    struct mw_watcher *w;
    size_t charge;                 /* metadata bytes charged to w at watch time */
};

/* A region's presence on a page. baseline: see DESIGN. */
struct mw_ref {
    struct mw_region *r;
    unsigned char *baseline;
};

struct refvec {
    uint32_t cap;
    struct mw_ref refs[];
};

struct mw_watcher {
    uint32_t acct;
    size_t limit;
    size_t tracked_objects;
    size_t tracked_bytes;
    uint64_t checks_base;
    uint64_t pages_compared_base;
    uint64_t changes;
    uint64_t old_unavailable;
};

/* Growable scratch in anonymous memory of our own (see DESIGN: no malloc while pages
 * are CHECKING). */
struct svec {
    unsigned char *p;
    size_t len, cap;
};

/* One changed range found by a check, before merging. */
struct rec {
    struct mw_region *r;
    size_t off, len;               /* in the region */
    size_t old_off;                /* in scratch.old, SIZE_MAX: unavailable */
    size_t new_off;                /* in scratch.new_ */
    uint32_t wi;                   /* in scratch.writers, UINT32_MAX: unknown */
};

struct wrec {
    struct mw_writer w;
    uint64_t ns;
};

/* Memory a check releases once every page is CLEAN again. clear (when set) is the pointer
 * to reset then: a region's per-page list lives in malloc'd memory that may share a page
 * with watched data, and the checker must not write to a page it has CHECKING (it would
 * fault and wait for itself). */
struct deferred_free {
    void *p;
    size_t bytes;
    uint32_t acct;
    unsigned char **clear;
};

static struct engine {
    pthread_mutex_t lock;
    int initialized;
    int detached;                  /* in a forked child: inert */
    int stopped;                   /* mw_engine_unprotect_all ran */
    size_t page_size;
    size_t page_cost;
    size_t copy_cost;
    int maps_fd;
    int procmap_query_ok;          /* -1 unknown, 0 no, 1 yes */
    struct mw_region_index *index;
    struct mw_page_pool *pool;
    struct mw_acct *accts;
    size_t accts_bytes;
    uint32_t naccts;
    const struct mw_detector_ops *det;
    enum mw_backend want;          /* requested by mw_engine_set_backend; AUTO by default */
    mw_writer_hook hook;
    void *hook_ctx;
    uint64_t next_id;
    struct mw_region **regions;    /* sorted by id */
    size_t nregions, regions_cap;
    /* region_ids[i] is regions[i]'s id, kept when the region leaves (regions[i] = NULL, a
     * hole) so that lookups stay a binary search and a removal is O(1); holes are
     * compacted away when they are half the array (amortized O(1) per removal: unwatching
     * a million objects one by one was quadratic with a memmove per removal). */
    uint64_t *region_ids;
    size_t nholes;
    size_t limits_sum;
    uint64_t checks;
    uint64_t pages_compared;
    struct {
        struct svec pages, recs, old, new_, writers, merged, ranges, frees;
    } scratch;
} engine = { .lock = PTHREAD_MUTEX_INITIALIZER, .maps_fd = -1, .procmap_query_ok = -1 };

static const struct mw_writer unknown_writer;

/* ---- scratch vectors ---------------------------------------------------------------- */

static int svec_reserve(struct svec *v, size_t add)
{
    if (v->len + add <= v->cap)
        return 0;
    size_t need = v->len + add, cap = v->cap ? v->cap : 65536;
    while (cap < need)
        cap *= 2;
    void *p = v->p ? mremap(v->p, v->cap, cap, MREMAP_MAYMOVE)
                   : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    v->p = p;
    v->cap = cap;
    return 0;
}

static void *svec_push(struct svec *v, const void *item, size_t n)
{
    if (svec_reserve(v, n))
        return NULL;
    void *dst = v->p + v->len;
    if (item)
        memcpy(dst, item, n);
    v->len += n;
    return dst;
}

/* Shrinks scratch that a big check left behind. */
static void svec_trim(struct svec *v)
{
    v->len = 0;
    if (v->cap > ((size_t)16 << 20)) {
        munmap(v->p, v->cap);
        v->p = NULL;
        v->cap = 0;
    }
}

static int svec_overlaps(const struct svec *v, uintptr_t a, size_t len)
{
    uintptr_t p = (uintptr_t)v->p;
    return v->p && a < p + v->cap && a + len > p;
}

/* ---- page <-> region references --------------------------------------------------- */

static uint32_t nrefs(const struct mw_page *e)
{
    return e->nregions & ~MW_REGIONS_VEC;
}

/* The page's references; tmp holds the inline one. */
static struct mw_ref *refs_of(struct mw_page *e, struct mw_ref *tmp)
{
    if (e->nregions & MW_REGIONS_VEC)
        return ((struct refvec *)e->regions)->refs;
    tmp->r = e->regions;
    tmp->baseline = NULL;
    return tmp;
}

static int refs_add_raw(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    uint32_t n = nrefs(e);
    if (n == 0 && !baseline && !(e->nregions & MW_REGIONS_VEC)) {
        e->regions = r;
        e->nregions = 1;
        return 0;
    }
    if (!(e->nregions & MW_REGIONS_VEC)) {
        struct refvec *v = malloc(sizeof(*v) + 4 * sizeof(struct mw_ref));
        if (!v)
            return -ENOMEM;
        v->cap = 4;
        if (n == 1) {
            v->refs[0].r = e->regions;
            v->refs[0].baseline = NULL;
        }
        e->regions = v;
        e->nregions = n | MW_REGIONS_VEC;
    }
    struct refvec *v = e->regions;
    if (n == v->cap) {
        struct refvec *nv = realloc(v, sizeof(*v) + 2 * (size_t)v->cap * sizeof(struct mw_ref));
        if (!nv)
            return -ENOMEM;
        nv->cap *= 2;
        e->regions = v = nv;
    }
    v->refs[n].r = r;
    v->refs[n].baseline = baseline;
    e->nregions = (n + 1) | MW_REGIONS_VEC;
    return 0;
}

/* Removes r from the page; returns its baseline (caller frees). */
static unsigned char *refs_remove_raw(struct mw_page *e, struct mw_region *r)
{
    uint32_t n = nrefs(e);
    if (!(e->nregions & MW_REGIONS_VEC)) {
        if (n == 1 && e->regions == r) {
            e->regions = NULL;
            e->nregions = 0;
        }
        return NULL;
    }
    struct refvec *v = e->regions;
    for (uint32_t i = 0; i < n; i++) {
        if (v->refs[i].r != r)
            continue;
        unsigned char *b = v->refs[i].baseline;
        v->refs[i] = v->refs[n - 1];
        n--;
        if (n == 0) {
            free(v);
            e->regions = NULL;
            e->nregions = 0;
        } else {
            e->nregions = n | MW_REGIONS_VEC;
        }
        return b;
    }
    return NULL;
}

/* Keeps e->span, the bounding box of the page's watched bytes, for the fault handler. */
static void update_span(struct mw_page *e)
{
    struct mw_ref tmp, *refs = refs_of(e, &tmp);
    uint32_t n = nrefs(e);
    uintptr_t lo = engine.page_size, hi = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t a = refs[i].r->addr, b = refs[i].r->addr + refs[i].r->size;
        uintptr_t l = a > e->addr ? a - e->addr : 0;
        uintptr_t h = b < e->addr + engine.page_size ? b - e->addr : engine.page_size;
        if (l < lo)
            lo = l;
        if (h > hi)
            hi = h;
    }
    atomic_store_explicit(&e->span, n ? MW_SPAN(lo, hi) : 0, memory_order_release);
}

static int refs_add(struct mw_page *e, struct mw_region *r, unsigned char *baseline)
{
    int rc = refs_add_raw(e, r, baseline);
    update_span(e);
    return rc;
}

static unsigned char *refs_remove(struct mw_page *e, struct mw_region *r)
{
    unsigned char *b = refs_remove_raw(e, r);
    update_span(e);
    return b;
}

static size_t window_lo(const struct mw_region *r, uintptr_t page)
{
    return r->addr > page ? r->addr : page;
}

static size_t window_hi(const struct mw_region *r, uintptr_t page, size_t ps)
{
    uintptr_t re = r->addr + r->size, pe = page + ps;
    return re < pe ? re : pe;
}

/* ---- memory map queries ------------------------------------------------------------- */

/* PROCMAP_QUERY (Linux 6.11): the VMA covering an address, in one ioctl on
 * /proc/self/maps. Debian 12's headers predate it. */
struct mw_procmap_query {
    uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
        vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define MW_PROCMAP_QUERY _IOWR('f', 17, struct mw_procmap_query)
#define MW_PQ_READ 0x1
#define MW_PQ_WRITE 0x2
#define MW_PQ_EXEC 0x4

/* Fallback: scan /proc/self/maps for the line covering addr. */
static int maps_scan(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -errno;
    char line[512];
    int rc = MW_EUNMAPPED;
    while (fgets(line, sizeof(line), f)) {
        unsigned long s, e;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) != 3)
            continue;
        size_t l = strlen(line);
        while (l > 0 && line[l - 1] != '\n' && fgets(line, sizeof(line), f))
            l = strlen(line);   /* skip the rest of a long line */
        if (addr < s)
            break;
        if (addr >= e)
            continue;
        *start = s;
        *end = e;
        *prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
                (perms[2] == 'x' ? PROT_EXEC : 0);
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

/* The mapping covering addr: its bounds and protection. 0, MW_EUNMAPPED or -errno. */
static int vma_query(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot)
{
    if (engine.procmap_query_ok != 0 && engine.maps_fd >= 0) {
        struct mw_procmap_query q;
        memset(&q, 0, sizeof(q));
        q.size = sizeof(q);
        q.query_addr = addr;
        if (ioctl(engine.maps_fd, MW_PROCMAP_QUERY, &q) == 0) {
            engine.procmap_query_ok = 1;
            *start = q.vma_start;
            *end = q.vma_end;
            *prot = (q.vma_flags & MW_PQ_READ ? PROT_READ : 0) |
                    (q.vma_flags & MW_PQ_WRITE ? PROT_WRITE : 0) |
                    (q.vma_flags & MW_PQ_EXEC ? PROT_EXEC : 0);
            return 0;
        }
        if (errno == ENOENT)
            return MW_EUNMAPPED;
        engine.procmap_query_ok = 0;   /* ENOTTY/EINVAL: older kernel */
    }
    return maps_scan(addr, start, end, prot);
}

/* ---- engine setup ------------------------------------------------------------------- */

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

/* Makes det the engine's mechanism (engine lock; nothing protected). */
static int use_detector_locked(enum mw_backend b)
{
    const struct mw_detector_ops *det = detector_for(b);
    if (!det)
        return MW_EBACKEND;
    if (det == engine.det)
        return 0;
    struct mw_detector_env env = {
        .index = engine.index, .pool = engine.pool, .accts = engine.accts,
        .page_size = engine.page_size, .copy_cost = engine.copy_cost,
    };
    int rc = det->init(&env);
    if (rc)
        return rc;
    engine.det = det;
    if (engine.hook)
        det->set_writer_hook(engine.hook, engine.hook_ctx);
    return 0;
}

static int init_locked(void)
{
    if (engine.initialized)
        return 0;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0)
        return -EINVAL;
    engine.page_size = (size_t)ps;
    engine.page_cost = mw_region_index_page_cost();
    engine.copy_cost = engine.page_size + sizeof(struct mw_slot_meta);
    int rc = mw_region_index_create(engine.page_size, &engine.index);
    if (rc)
        return rc;
    rc = mw_page_pool_create(engine.page_size, POOL_RESERVE / engine.page_size, &engine.pool);
    if (rc)
        goto fail_index;
    engine.accts_bytes = MAX_ACCTS * sizeof(struct mw_acct);
    engine.accts = mmap(NULL, engine.accts_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (engine.accts == MAP_FAILED) {
        rc = -errno;
        goto fail_pool;
    }
    engine.maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    rc = use_detector_locked(engine.want);
    if (rc)
        goto fail_accts;
    engine.next_id = 1;
    engine.initialized = 1;
    return 0;

fail_accts:
    if (engine.maps_fd >= 0)
        close(engine.maps_fd);
    engine.maps_fd = -1;
    munmap(engine.accts, engine.accts_bytes);
fail_pool:
    mw_page_pool_destroy(engine.pool);
    engine.pool = NULL;
fail_index:
    mw_region_index_destroy(engine.index);
    engine.index = NULL;
    return rc;
}

int mw_engine_init(void)
{
    pthread_mutex_lock(&engine.lock);
    int rc = engine.detached ? MW_EBACKEND : init_locked();
    pthread_mutex_unlock(&engine.lock);
    if (rc == 0)
        mw_signal_altstack_ensure();
    return rc;
}

void mw_engine_set_writer_hook(mw_writer_hook hook, void *hook_ctx)
{
    pthread_mutex_lock(&engine.lock);
    engine.hook = hook;
    engine.hook_ctx = hook_ctx;
    if (engine.initialized && !engine.detached)
        engine.det->set_writer_hook(hook, hook_ctx);
    pthread_mutex_unlock(&engine.lock);
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
    pthread_mutex_lock(&engine.lock);
    int rc = 0;
    if (!engine.initialized) {
        engine.want = backend;
    } else if (engine.detached) {
        rc = MW_EBACKEND;
    } else if (backend != MW_BACKEND_AUTO && engine.det->backend != backend) {
        /* Switching is only safe while no page is protected or dirty. */
        if (engine.nregions == engine.nholes && mw_region_index_count(engine.index) == 0 &&
            !engine.det->has_dirty())
            rc = use_detector_locked(backend);
        else
            rc = MW_EBACKEND;
        if (rc == 0)
            engine.want = backend;
    }
    pthread_mutex_unlock(&engine.lock);
    return rc;
}

enum mw_backend mw_engine_backend(void)
{
    pthread_mutex_lock(&engine.lock);
    enum mw_backend b = engine.initialized ? engine.det->backend
                                           : detector_for(engine.want)
                                                 ? detector_for(engine.want)->backend
                                                 : MW_BACKEND_MPROTECT;
    pthread_mutex_unlock(&engine.lock);
    return b;
}

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

/* Async-signal-safe. */
int mw_engine_has_dirty(void)
{
    const struct mw_detector_ops *det = engine.det;
    return det && det->has_dirty();
}

/* The writable segments (.data, .bss) of the shared object the engine is part of: the
 * fault handler writes there, so protecting them would fault inside the handler. */
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

static int owns_memory(uintptr_t a, size_t len)
{
    struct own_segments own = {(uintptr_t)&engine, a, len, 0};
    dl_iterate_phdr(own_segments_cb, &own);
    if (own.hit)
        return 1;
    if (mw_page_pool_overlaps(engine.pool, a, len) ||
        mw_region_index_overlaps(engine.index, a, len) || engine.det->overlaps(a, len))
        return 1;
    uintptr_t ac = (uintptr_t)engine.accts;
    if (a < ac + engine.accts_bytes && a + len > ac)
        return 1;
    const struct svec *all[] = {
        &engine.scratch.pages, &engine.scratch.recs, &engine.scratch.old,
        &engine.scratch.new_, &engine.scratch.writers, &engine.scratch.merged,
        &engine.scratch.ranges, &engine.scratch.frees,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (svec_overlaps(all[i], a, len))
            return 1;
    return 0;
}

/* ---- watchers ----------------------------------------------------------------------- */

int mw_watcher_create(const struct mw_watcher_config *config, mw_watcher **out)
{
    if (!out)
        return MW_EINVAL;
    *out = NULL;
    if (config && !mw_engine_backend_available(config->backend))
        return MW_EBACKEND;
    int rc = mw_engine_init();
    if (rc)
        return rc;
    if (config && config->backend != MW_BACKEND_AUTO &&
        (rc = mw_engine_set_backend(config->backend)) != 0)
        return rc;
    struct mw_watcher *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    pthread_mutex_lock(&engine.lock);
    uint32_t a;
    for (a = 0; a < engine.naccts; a++)
        if (!engine.accts[a].live && atomic_load(&engine.accts[a].copies) == 0)
            break;
    if (a == engine.naccts) {
        if (engine.naccts == MAX_ACCTS) {
            pthread_mutex_unlock(&engine.lock);
            free(w);
            return MW_ELIMIT;
        }
        engine.naccts++;
    }
    size_t limit = config && config->max_memory_bytes ? config->max_memory_bytes
                                                       : DEFAULT_LIMIT;
    struct mw_acct *acct = &engine.accts[a];
    atomic_store(&acct->used, 0);
    atomic_store(&acct->limit, limit);
    atomic_store(&acct->faults, 0);
    acct->live = 1;
    w->acct = a;
    w->limit = limit;
    w->checks_base = engine.checks;
    w->pages_compared_base = engine.pages_compared;
    engine.limits_sum += limit;
    /* The pool can hold every live watcher's budget in copies. */
    mw_page_pool_commit(engine.pool, engine.limits_sum / engine.copy_cost);
    pthread_mutex_unlock(&engine.lock);
    *out = w;
    return 0;
}

static struct mw_region **find_region(uint64_t id)
{
    size_t lo = 0, hi = engine.nregions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (engine.region_ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < engine.nregions && engine.region_ids[lo] == id && engine.regions[lo]
               ? &engine.regions[lo] : NULL;
}

/* Squeezes the holes out of the region array (engine lock; not while iterating it). */
static void compact_regions_locked(void)
{
    if (engine.nholes < 1024 || engine.nholes * 2 < engine.nregions)
        return;
    size_t j = 0;
    for (size_t i = 0; i < engine.nregions; i++) {
        if (!engine.regions[i])
            continue;
        engine.regions[j] = engine.regions[i];
        engine.region_ids[j] = engine.region_ids[i];
        j++;
    }
    engine.nregions = j;
    engine.nholes = 0;
}

static void free_baseline(unsigned char *b, const struct mw_region *r, size_t bytes)
{
    if (!b)
        return;
    free(b);
    mw_acct_uncharge(&engine.accts[r->w->acct], bytes);
}

/* A run of contiguous pages with one protection: [start, end). */
struct run {
    uintptr_t start, end;
    int prot;
};

/* A page that lost its last region; tracked: we protected it. */
struct gone {
    struct mw_page *e;
    int tracked;
};

/* Drops a page from the engine after its last region left (engine lock). */
static void forget_page_locked(struct mw_page *e)
{
    mw_region_index_remove(engine.index, e);
}

/* Removes region r from every page it touches, then frees it (engine lock). */
static void remove_region_locked(struct mw_region *r)
{
    size_t ps = engine.page_size;
    uintptr_t first = r->addr & ~(uintptr_t)(ps - 1);
    uintptr_t last = (r->addr + r->size - 1) & ~(uintptr_t)(ps - 1);
    struct mw_acct *racct = &engine.accts[r->w->acct];
    struct svec *gone = &engine.scratch.frees;   /* entries to unprotect and forget */
    gone->len = 0;

    for (uintptr_t page = first;; page += ps) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            unsigned char *b = refs_remove(e, r);
            free_baseline(b, r, window_hi(r, page, ps) - window_lo(r, page));
            uint32_t ap = atomic_load(&e->acct_prot);
            if (nrefs(e) == 0) {
                mw_acct_uncharge(&engine.accts[MW_ACCT_OF(ap)], engine.page_cost);
                for (;;) {
                    uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
                    if (s == MW_PAGE_FAULTING || s == MW_PAGE_OPEN) {
                        sched_yield();
                        continue;
                    }
                    if (s == MW_PAGE_CLEAN || s == MW_PAGE_UNTRACKED) {
                        if (!atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_REMOVED))
                            continue;
                        struct gone g = { e, s == MW_PAGE_CLEAN };
                        svec_push(gone, &g, sizeof(g));
                    }
                    /* DIRTY: an orphan the next check drops. */
                    break;
                }
            } else if (MW_ACCT_OF(ap) == r->w->acct) {
                /* Hand the page's index share to a watcher still on the page. */
                struct mw_ref tmp, *refs = refs_of(e, &tmp);
                uint32_t to = refs[0].r->w->acct;
                for (uint32_t i = 0; i < nrefs(e); i++)
                    if (refs[i].r->w->acct == r->w->acct)
                        to = r->w->acct;
                if (to != r->w->acct) {
                    mw_acct_uncharge(racct, engine.page_cost);
                    atomic_fetch_add(&engine.accts[to].used, engine.page_cost);
                    atomic_store(&e->acct_prot, MW_ACCT_PROT(to, MW_PROT_OF(ap)));
                }
            }
        }
        if (page == last)
            break;
    }

    /* Unprotect the pages that lost their last region, in runs, then forget them. */
    struct gone *g = (struct gone *)gone->p;
    size_t ng = gone->len / sizeof(*g);
    for (size_t i = 0; i < ng;) {
        size_t j = i + 1;
        int prot = MW_PROT_OF(atomic_load(&g[i].e->acct_prot));
        if (g[i].tracked) {
            while (j < ng && g[j].tracked && g[j].e->addr == g[j - 1].e->addr + ps &&
                   MW_PROT_OF(atomic_load(&g[j].e->acct_prot)) == prot)
                j++;
            if (engine.det->unprotect(g[i].e->addr, (j - i) * ps, prot) != 0) {
                /* Could not unprotect (VMA limit): keep them as CLEAN orphans; a write
                 * makes them DIRTY orphans, which a check drops. */
                for (size_t k = i; k < j; k++)
                    atomic_store(&g[k].e->state, MW_PAGE_CLEAN);
                for (size_t k = i; k < j; k++)
                    g[k].e = NULL;
            }
        }
        for (size_t k = i; k < j; k++)
            if (g[k].e)
                forget_page_locked(g[k].e);
        i = j;
    }
    gone->len = 0;

    mw_acct_uncharge(racct, r->charge);
    r->w->tracked_objects--;
    r->w->tracked_bytes -= r->size;
    struct mw_region **slot = find_region(r->id);
    if (slot) {
        *slot = NULL;
        engine.nholes++;
    }
    free(r);
}

void mw_watcher_destroy(mw_watcher *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&engine.lock);
    if (!engine.detached) {
        for (size_t i = engine.nregions; i-- > 0;)
            if (engine.regions[i] && engine.regions[i]->w == w)
                remove_region_locked(engine.regions[i]);
        compact_regions_locked();
        engine.accts[w->acct].live = 0;
        engine.limits_sum -= w->limit;
        mw_region_index_reclaim(engine.index);
    }
    pthread_mutex_unlock(&engine.lock);
    free(w);
}

/* Extends or flushes a run of pages to protect. */
static int protect_flush(struct run *run)
{
    int rc = 0;
    if (run->end > run->start)
        rc = engine.det->protect(run->start, run->end - run->start, run->prot);
    run->start = run->end = 0;
    return rc;
}

static int watch_locked(mw_watcher *w, uintptr_t addr, size_t size, void *user,
                        uint64_t *id_out)
{
    size_t ps = engine.page_size;
    uintptr_t first = addr & ~(uintptr_t)(ps - 1);
    uintptr_t last = (addr + size - 1) & ~(uintptr_t)(ps - 1);
    struct mw_acct *acct = &engine.accts[w->acct];

    if (owns_memory(first, last + ps - first))
        return MW_EOWN;

    /* Pass 1: validate and size the charge; nothing changes yet. */
    size_t new_pages = 0, existing = 0, baseline_bytes = 0;
    uintptr_t vs = 0, ve = 0;
    int vprot = 0;
    struct mw_region probe = { .addr = addr, .size = size };
    for (uintptr_t page = first;; page += ps) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            uint32_t s = atomic_load(&e->state);
            if (nrefs(e) == 0)
                new_pages++;
            else
                existing++;
            if (s == MW_PAGE_DIRTY || s == MW_PAGE_FAULTING)
                baseline_bytes += window_hi(&probe, page, ps) - window_lo(&probe, page);
        } else {
            if (page < vs || page >= ve) {
                int rc = vma_query(page, &vs, &ve, &vprot);
                if (rc)
                    return rc;
            }
            if (!(vprot & PROT_READ))
                return MW_EUNMAPPED;    /* PROT_NONE: inaccessible, nothing to watch */
            new_pages++;
        }
        if (page == last)
            break;
    }
    size_t charge = sizeof(struct mw_region) + existing * sizeof(struct mw_ref);
    size_t fixed = charge + new_pages * engine.page_cost;
    /* Baselines are charged one by one as pass 2 takes them (a page may become dirty
     * meanwhile); here they only count towards the limit test. */
    if (!mw_acct_try_charge(acct, fixed + baseline_bytes))
        return MW_ELIMIT;
    mw_acct_uncharge(acct, baseline_bytes);

    struct mw_region *r = calloc(1, sizeof(*r));
    if (!r) {
        mw_acct_uncharge(acct, fixed);
        return -ENOMEM;
    }
    compact_regions_locked();
    if (engine.nregions == engine.regions_cap) {
        size_t ncap = engine.regions_cap ? engine.regions_cap * 2 : 64;
        uint64_t *ni = realloc(engine.region_ids, ncap * sizeof(*ni));
        if (ni)
            engine.region_ids = ni;
        struct mw_region **nr = ni ? realloc(engine.regions, ncap * sizeof(*nr)) : NULL;
        if (!nr) {
            free(r);
            mw_acct_uncharge(acct, fixed);
            return -ENOMEM;
        }
        engine.regions = nr;
        engine.regions_cap = ncap;
    }
    r->id = engine.next_id++;
    r->addr = addr;
    r->size = size;
    r->user = user;
    r->w = w;
    r->charge = charge;
    engine.region_ids[engine.nregions] = r->id;
    engine.regions[engine.nregions++] = r;    /* ids grow: stays sorted */
    w->tracked_objects++;
    w->tracked_bytes += size;

    /* Pass 2: attach to pages; protect new ones in runs. */
    int rc = 0;
    struct run run = { 0, 0, 0 };
    vs = ve = 0;
    for (uintptr_t page = first;; page += ps) {
        struct mw_page *e = mw_region_index_lookup(engine.index, page);
        if (e) {
            uint32_t s;
            while ((s = atomic_load_explicit(&e->state, memory_order_acquire)) ==
                       MW_PAGE_FAULTING || s == MW_PAGE_OPEN)
                sched_yield();
            unsigned char *baseline = NULL;
            if (s == MW_PAGE_DIRTY) {
                size_t lo = window_lo(r, page), hi = window_hi(r, page, ps);
                baseline = malloc(hi - lo);
                if (!baseline) {
                    rc = -ENOMEM;
                    break;
                }
                memcpy(baseline, (const void *)lo, hi - lo);
                atomic_fetch_add(&acct->used, hi - lo);
            }
            if (nrefs(e) == 0) {
                /* An orphan page: this watcher takes its index share. */
                uint32_t ap = atomic_load(&e->acct_prot);
                atomic_store(&e->acct_prot, MW_ACCT_PROT(w->acct, MW_PROT_OF(ap)));
            }
            if ((rc = refs_add(e, r, baseline)) != 0) {
                free_baseline(baseline, r, window_hi(r, page, ps) - window_lo(r, page));
                break;
            }
        } else {
            if (page < vs || page >= ve) {
                rc = vma_query(page, &vs, &ve, &vprot);
                if (rc)
                    break;
            }
            int tracked = (vprot & PROT_WRITE) && !engine.stopped;
            e = mw_region_index_page_new(engine.index, page);
            if (!e) {
                rc = -ENOMEM;
                break;
            }
            atomic_store(&e->acct_prot, MW_ACCT_PROT(w->acct, vprot));
            atomic_store(&e->state, tracked ? MW_PAGE_CLEAN : MW_PAGE_UNTRACKED);
            refs_add(e, r, NULL);
            if ((rc = mw_region_index_insert(engine.index, e)) != 0) {
                e->nregions = 0;
                e->regions = NULL;
                mw_region_index_remove(engine.index, e);
                break;
            }
            if (tracked) {
                if (run.end != page || run.prot != vprot) {
                    if ((rc = protect_flush(&run)) != 0)
                        break;
                    run.start = page;
                    run.prot = vprot;
                }
                run.end = page + ps;
            }
        }
        if (page == last)
            break;
    }
    if (rc == 0)
        rc = protect_flush(&run);
    if (rc != 0) {
        /* Roll back. remove_region_locked uncharges r->charge, the index share of each
         * page the region was alone on, and each baseline it frees: leave in r->charge
         * the part of pass 1's charge that no attached page carries. */
        size_t alone = 0;
        for (uintptr_t page = first;; page += ps) {
            struct mw_page *e = mw_region_index_lookup(engine.index, page);
            if (e && nrefs(e) == 1) {
                struct mw_ref tmp, *refs = refs_of(e, &tmp);
                if (refs[0].r == r)
                    alone++;
            }
            if (page == last)
                break;
        }
        r->charge = fixed - alone * engine.page_cost;
        remove_region_locked(r);
        return rc;
    }
    /* The index share now belongs to the pages; the rest is the region's own. */
    r->charge = charge;
    if (id_out)
        *id_out = r->id;
    return 0;
}

int mw_watcher_watch(mw_watcher *w, const void *addr, size_t size, void *user,
                     uint64_t *region_id_out)
{
    if (!w || !addr || size == 0 || (uintptr_t)addr + size < (uintptr_t)addr)
        return MW_EINVAL;
    mw_signal_altstack_ensure();
    pthread_mutex_lock(&engine.lock);
    int rc = engine.detached ? MW_EBACKEND
             : !engine.initialized ? MW_EINVAL
             : watch_locked(w, (uintptr_t)addr, size, user, region_id_out);
    pthread_mutex_unlock(&engine.lock);
    return rc;
}

/* ---- check -------------------------------------------------------------------------- */

struct page_ctx {
    struct mw_region *r;
    size_t region_off;             /* offset in the region of the window's start */
    const unsigned char *old, *cur;
    uint32_t *wi;                  /* the page's writer record, created on first change */
    uint32_t slot;
    int failed;
};

static uint32_t writer_record(uint32_t slot)
{
    if (slot == MW_SLOT_NONE)
        return UINT32_MAX;
    struct mw_slot_meta *m = mw_page_pool_meta(engine.pool, slot);
    struct wrec wr;
    memcpy(&wr.w, &m->writer, sizeof(wr.w));
    wr.ns = m->fault_ns;
    if (!svec_push(&engine.scratch.writers, &wr, sizeof(wr)))
        return UINT32_MAX;
    return (uint32_t)(engine.scratch.writers.len / sizeof(wr) - 1);
}

static int add_rec(struct page_ctx *c, size_t off, size_t len, int with_old)
{
    struct rec rc = { .r = c->r, .off = c->region_off + off, .len = len,
                      .old_off = SIZE_MAX, .new_off = engine.scratch.new_.len };
    if (*c->wi == UINT32_MAX - 1)
        *c->wi = writer_record(c->slot);
    rc.wi = *c->wi;
    if (with_old) {
        rc.old_off = engine.scratch.old.len;
        if (!svec_push(&engine.scratch.old, c->old + off, len))
            return -ENOMEM;
    }
    if (!svec_push(&engine.scratch.new_, c->cur + off, len) ||
        !svec_push(&engine.scratch.recs, &rc, sizeof(rc)))
        return -ENOMEM;
    return 0;
}

static int emit_range(size_t off, size_t len, void *ctx)
{
    return add_rec(ctx, off, len, 1);
}

/* Ends CHECKING and wakes the writers sleeping on the page (see fault_path.c). */
static void leave_checking(struct mw_page *e, uint32_t to)
{
    uint32_t was = atomic_exchange_explicit(&e->state, to, memory_order_acq_rel);
    if (was & MW_PAGE_WAITERS)
        syscall(SYS_futex, &e->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* True when the page is no longer mapped (the program unmapped watched memory). */
static int page_unmapped(uintptr_t page)
{
    unsigned char vec;
    return mincore((void *)page, engine.page_size, &vec) != 0 && errno == ENOMEM;
}

/* Returns the page's old copy (if any) to the pool and its cost to the watcher's account. */
static void release_copy(struct mw_page *e)
{
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_acquire);
    if (slot == MW_SLOT_NONE)
        return;
    struct mw_slot_meta *m = mw_page_pool_meta(engine.pool, slot);
    struct mw_acct *a = &engine.accts[m->acct];
    atomic_store_explicit(&e->slot, MW_SLOT_NONE, memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->copies, 1, memory_order_relaxed);
    mw_page_pool_free(engine.pool, slot);
    mw_acct_uncharge(a, engine.copy_cost);
}

/* Frees region ref i's baseline of page e, and resets the pointer, once the check has made
 * every page CLEAN (see struct deferred_free). */
static void defer_baseline_free(struct mw_page *e, struct mw_ref *ref)
{
    struct mw_region *r = ref->r;
    struct deferred_free f = { ref->baseline,
                               window_hi(r, e->addr, engine.page_size) - window_lo(r, e->addr),
                               r->w->acct, &ref->baseline };
    svec_push(&engine.scratch.frees, &f, sizeof(f));
}

/* A CHECKING page whose memory was unmapped: nothing is left to compare, and reading it
 * would fault. Its pending changes are gone with it; it stays in the index, unprotected,
 * until its regions are unwatched. */
static void forget_unmapped_page(struct mw_page *e)
{
    struct mw_ref tmp, *refs = refs_of(e, &tmp);
    for (uint32_t i = 0; i < nrefs(e); i++)
        if (refs[i].baseline)
            defer_baseline_free(e, &refs[i]);
    release_copy(e);
    leave_checking(e, MW_PAGE_UNTRACKED);
}

/* Compares one CHECKING page (already re-armed unless rearmed == 0) and makes it CLEAN.
 * Writes only to scratch, the pool and the entry (see DESIGN). */
static void check_page(struct mw_page *e, int rearmed)
{
    size_t ps = engine.page_size;
    if (!rearmed && page_unmapped(e->addr)) {
        forget_unmapped_page(e);
        return;
    }
    uint32_t slot = atomic_load_explicit(&e->slot, memory_order_acquire);
    const unsigned char *page = (const unsigned char *)e->addr;
    const unsigned char *old = slot != MW_SLOT_NONE ? mw_page_pool_data(engine.pool, slot)
                                                    : NULL;
    int same = old && memcmp(old, page, ps) == 0;
    /* A new budget of neighbour traps for the next window (MW_NEIGHBOUR_BUDGET). */
    atomic_store_explicit(&e->traps, 0, memory_order_relaxed);
    uint32_t wi = UINT32_MAX - 1;        /* not created yet */
    struct mw_ref tmp, *refs = refs_of(e, &tmp);
    uint32_t n = nrefs(e);

    for (uint32_t i = 0; i < n; i++) {
        struct mw_region *r = refs[i].r;
        size_t lo = window_lo(r, e->addr), hi = window_hi(r, e->addr, ps);
        struct page_ctx c = { .r = r, .region_off = lo - r->addr, .cur = (const void *)lo,
                              .wi = &wi, .slot = slot };
        if (refs[i].baseline) {
            c.old = refs[i].baseline;
            mw_diff_ranges(c.old, c.cur, hi - lo, emit_range, &c);
            defer_baseline_free(e, &refs[i]);
        } else if (old) {
            if (same)
                continue;
            c.old = old + (lo - e->addr);
            mw_diff_ranges(c.old, c.cur, hi - lo, emit_range, &c);
        } else {
            add_rec(&c, 0, hi - lo, 0);     /* old value unavailable */
        }
    }

    if (rearmed) {
        release_copy(e);
        leave_checking(e, MW_PAGE_CLEAN);
        return;
    }
    /* The page could not be re-protected: it stays writable and dirty, with its current
     * contents as the new old copy, and is compared again at the next check. */
    if (slot == MW_SLOT_NONE) {
        uint32_t ap = atomic_load(&e->acct_prot);
        struct mw_acct *a = &engine.accts[MW_ACCT_OF(ap)];
        if (mw_acct_try_charge(a, engine.copy_cost)) {
            slot = mw_page_pool_alloc(engine.pool);
            if (slot == MW_SLOT_NONE) {
                mw_acct_uncharge(a, engine.copy_cost);
            } else {
                struct mw_slot_meta *m = mw_page_pool_meta(engine.pool, slot);
                memset(m, 0, offsetof(struct mw_slot_meta, next));
                m->acct = MW_ACCT_OF(ap);
                atomic_fetch_add(&a->copies, 1);
                atomic_store(&e->slot, slot);
            }
        }
    }
    if (slot != MW_SLOT_NONE)
        memcpy(mw_page_pool_data(engine.pool, slot), page, ps);
    leave_checking(e, MW_PAGE_DIRTY);
    engine.det->requeue(e);
}

static int cmp_page(const void *a, const void *b)
{
    uintptr_t x = (*(struct mw_page *const *)a)->addr, y = (*(struct mw_page *const *)b)->addr;
    return x < y ? -1 : x > y;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->r->id != y->r->id)
        return x->r->id < y->r->id ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Drops an orphan page (DIRTY, no regions) after releasing its copy. */
static void drop_orphan(struct mw_page *e)
{
    release_copy(e);
    if (atomic_load(&e->state) != MW_PAGE_UNTRACKED || nrefs(e) == 0)
        forget_page_locked(e);
}

/* Merges the sorted records of one region into scratch.merged, coalescing ranges that
 * touch (across page boundaries too). Returns the number of merged ranges. */
static size_t merge_region(struct rec *recs, size_t n)
{
    struct svec *m = &engine.scratch.merged;
    size_t start = m->len / sizeof(struct rec);
    for (size_t i = 0; i < n; i++) {
        struct rec *cur = &recs[i];
        size_t cnt = m->len / sizeof(struct rec) - start;
        struct rec *prev = cnt ? &((struct rec *)m->p)[start + cnt - 1] : NULL;
        int prev_old = prev && prev->old_off != SIZE_MAX, cur_old = cur->old_off != SIZE_MAX;
        if (prev && prev->off + prev->len == cur->off && prev_old == cur_old) {
            if (prev->new_off + prev->len == cur->new_off &&
                (!cur_old || prev->old_off + prev->len == cur->old_off)) {
                prev->len += cur->len;          /* already adjacent in scratch */
            } else {
                /* Copy both pieces next to each other at the end of scratch. */
                size_t nn = engine.scratch.new_.len;
                if (svec_reserve(&engine.scratch.new_, prev->len + cur->len) == 0) {
                    unsigned char *d = engine.scratch.new_.p;
                    memmove(d + nn, d + prev->new_off, prev->len);
                    memmove(d + nn + prev->len, d + cur->new_off, cur->len);
                    engine.scratch.new_.len += prev->len + cur->len;
                    prev->new_off = nn;
                }
                if (cur_old) {
                    size_t no = engine.scratch.old.len;
                    if (svec_reserve(&engine.scratch.old, prev->len + cur->len) == 0) {
                        unsigned char *d = engine.scratch.old.p;
                        memmove(d + no, d + prev->old_off, prev->len);
                        memmove(d + no + prev->len, d + cur->old_off, cur->len);
                        engine.scratch.old.len += prev->len + cur->len;
                        prev->old_off = no;
                    }
                }
                prev->len += cur->len;
            }
            /* The earliest write of the region wins. */
            if (cur->wi != UINT32_MAX) {
                const struct wrec *wr = (const struct wrec *)engine.scratch.writers.p;
                if (prev->wi == UINT32_MAX || wr[cur->wi].ns < wr[prev->wi].ns)
                    prev->wi = cur->wi;
            }
            continue;
        }
        svec_push(m, cur, sizeof(*cur));
    }
    return m->len / sizeof(struct rec) - start;
}

static int deliver(mw_change_fn fn, void *ctx)
{
    struct rec *recs = (struct rec *)engine.scratch.recs.p;
    size_t n = engine.scratch.recs.len / sizeof(struct rec);
    if (n == 0)
        return 0;
    qsort(recs, n, sizeof(*recs), cmp_rec);

    /* Pass 1: merge per region (scratch may move; keep offsets). */
    struct svec *groups = &engine.scratch.pages;   /* reused: (first, count) pairs */
    groups->len = 0;
    engine.scratch.merged.len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && recs[j].r == recs[i].r)
            j++;
        size_t first = engine.scratch.merged.len / sizeof(struct rec);
        size_t cnt = merge_region(&recs[i], j - i);
        size_t pair[2] = { first, cnt };
        svec_push(groups, pair, sizeof(pair));
        i = j;
    }

    /* Pass 2: one change per region, in region order. */
    int nchanges = 0;
    size_t ng = groups->len / (2 * sizeof(size_t));
    for (size_t g = 0; g < ng; g++) {
        size_t first = ((size_t *)groups->p)[2 * g], cnt = ((size_t *)groups->p)[2 * g + 1];
        struct rec *mr = (struct rec *)engine.scratch.merged.p + first;
        struct svec *rv = &engine.scratch.ranges;
        rv->len = 0;
        if (svec_reserve(rv, cnt * sizeof(struct mw_range)) != 0)
            return -ENOMEM;
        struct mw_range *ranges = (struct mw_range *)rv->p;
        const struct wrec *wr = NULL;
        int unavailable = 0;
        for (size_t k = 0; k < cnt; k++) {
            ranges[k].offset = mr[k].off;
            ranges[k].length = mr[k].len;
            ranges[k].old = mr[k].old_off == SIZE_MAX ? NULL
                            : engine.scratch.old.p + mr[k].old_off;
            ranges[k].new_ = engine.scratch.new_.p + mr[k].new_off;
            if (!ranges[k].old)
                unavailable = 1;
            if (mr[k].wi != UINT32_MAX) {
                const struct wrec *c = (const struct wrec *)engine.scratch.writers.p + mr[k].wi;
                if (!wr || c->ns < wr->ns)
                    wr = c;
            }
        }
        struct mw_region *r = mr[0].r;
        struct mw_change ch = {
            .region_id = r->id, .region_user = r->user, .region_addr = (const void *)r->addr,
            .region_size = r->size, .nranges = cnt, .ranges = ranges,
            .writer = wr ? &wr->w : &unknown_writer, .first_fault_ns = wr ? wr->ns : 0,
        };
        r->w->changes++;
        if (unavailable)
            r->w->old_unavailable++;
        nchanges++;
        if (fn)
            fn(&ch, ctx);
    }
    return nchanges;
}

/* ---- kernel writes ------------------------------------------------------------------
 * A system call that writes into a protected page (read() into a watched buffer) fails
 * with EFAULT: the kernel does not take the fault on the program's behalf. The
 * interposed read-family calls (kwrite_interpose.c) open the buffer's watched pages
 * first, from the calling thread, by an atomic no-op write to a watched byte of each (the
 * ordinary fault path: old copy, writer, DIRTY), and pin the buffer so that a check on
 * another thread compares those pages but leaves them writable (the "could not re-arm"
 * path of check_page) until the call returns. Pins are a small lock-free table; when it
 * is full the call goes unpinned and the interposer retries once on EFAULT. */
#define KWRITE_PINS 64
static struct {
    _Atomic uintptr_t lo, hi;
} kwrite_pins[KWRITE_PINS];

static int kwrite_pinned(uintptr_t start, size_t len)
{
    for (size_t i = 0; i < KWRITE_PINS; i++) {
        uintptr_t lo = atomic_load_explicit(&kwrite_pins[i].lo, memory_order_seq_cst);
        if (!lo)
            continue;
        uintptr_t hi = atomic_load_explicit(&kwrite_pins[i].hi, memory_order_seq_cst);
        if (start < hi && start + len > lo)
            return 1;
    }
    return 0;
}

static int engine_watches_anything(void)
{
    struct mw_region_index *idx = engine.index;
    return idx && !engine.detached && !engine.stopped && mw_region_index_count(idx) > 0;
}

int mw_engine_owns_range(const void *addr, size_t len)
{
    if (!engine_watches_anything() || len == 0)
        return 0;
    size_t ps = engine.page_size;
    uintptr_t first = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    uintptr_t last = ((uintptr_t)addr + len - 1) & ~(uintptr_t)(ps - 1);
    for (uintptr_t p = first;; p += ps) {
        if (mw_engine_owns_address((const void *)p))
            return 1;
        if (p == last)
            break;
    }
    return 0;
}

int mw_engine_kwrite_begin(const void *addr, size_t len)
{
    if (!engine_watches_anything() || len == 0 || (uintptr_t)addr + len < (uintptr_t)addr)
        return 0;
    size_t ps = engine.page_size;
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    uintptr_t hi = (((uintptr_t)addr + len - 1) & ~(uintptr_t)(ps - 1)) + ps;
    int token = 0;
    for (size_t i = 0; i < KWRITE_PINS && !token; i++) {
        uintptr_t zero = 0;
        if (atomic_compare_exchange_strong(&kwrite_pins[i].lo, &zero, (uintptr_t)1)) {
            atomic_store(&kwrite_pins[i].hi, hi);
            atomic_store(&kwrite_pins[i].lo, lo);
            token = (int)i + 1;
        }
    }
    atomic_thread_fence(memory_order_seq_cst);
    struct mw_region_index *idx = engine.index;
    for (uintptr_t p = lo; p < hi; p += ps) {
        mw_region_index_enter(idx);
        struct mw_page *e = mw_region_index_lookup(idx, p);
        uint32_t s = e ? atomic_load_explicit(&e->state, memory_order_seq_cst)
                       : MW_PAGE_UNTRACKED;
        uint32_t span = e ? atomic_load_explicit(&e->span, memory_order_acquire) : 0;
        mw_region_index_leave(idx);
        s = MW_PAGE_STATE(s);
        if (s != MW_PAGE_CLEAN && s != MW_PAGE_CHECKING)
            continue;
        /* A watched byte of the page, so that the fault path takes the page for good
         * rather than treating it as a neighbour's write; the atomic no-op cannot lose
         * a concurrent store. The fault (if the page is still protected) runs here. */
        volatile unsigned char *b = (volatile unsigned char *)(p + MW_SPAN_LO(span));
        __atomic_fetch_or((unsigned char *)b, 0, __ATOMIC_SEQ_CST);
    }
    return token;
}

void mw_engine_kwrite_end(int token)
{
    if (token <= 0 || token > KWRITE_PINS)
        return;
    /* hi first: a pin claimed again in between must not lose its new hi. */
    atomic_store(&kwrite_pins[token - 1].hi, 0);
    atomic_store(&kwrite_pins[token - 1].lo, 0);
}

static int check_locked(mw_change_fn fn, void *ctx)
{
    size_t ps = engine.page_size;
    engine.checks++;
    struct mw_page *list = engine.det->collect();
    if (!list) {
        mw_region_index_reclaim(engine.index);
        return 0;
    }

    struct svec *pv = &engine.scratch.pages;
    pv->len = 0;
    engine.scratch.recs.len = engine.scratch.old.len = engine.scratch.new_.len = 0;
    engine.scratch.writers.len = engine.scratch.frees.len = 0;
    int oom = 0;
    while (list) {
        struct mw_page *next = atomic_load_explicit(&list->next, memory_order_relaxed);
        if (!svec_push(pv, &list, sizeof(list))) {
            /* Out of scratch: put the rest back for the next check. */
            while (list) {
                next = atomic_load_explicit(&list->next, memory_order_relaxed);
                engine.det->requeue(list);
                list = next;
            }
            oom = 1;
            break;
        }
        list = next;
    }
    struct mw_page **pages = (struct mw_page **)pv->p;
    size_t np = pv->len / sizeof(*pages);
    qsort(pages, np, sizeof(*pages), cmp_page);

    for (size_t i = 0; i < np;) {
        struct mw_page *e = pages[i];
        uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (s != MW_PAGE_DIRTY || nrefs(e) == 0) {
            /* Orphan, or the engine was stopped while it was dirty. */
            drop_orphan(e);
            i++;
            continue;
        }
        int prot = MW_PROT_OF(atomic_load(&e->acct_prot));
        size_t j = i + 1;
        while (j < np && pages[j]->addr == pages[j - 1]->addr + ps &&
               atomic_load(&pages[j]->state) == MW_PAGE_DIRTY && nrefs(pages[j]) > 0 &&
               MW_PROT_OF(atomic_load(&pages[j]->acct_prot)) == prot)
            j++;
        for (size_t k = i; k < j; k++)
            atomic_store_explicit(&pages[k]->state, MW_PAGE_CHECKING, memory_order_release);
        /* Pairs with the fence in mw_engine_kwrite_begin: either it sees CHECKING and its
         * pre-touch waits for this check, or we see its pin (see kwrite below). */
        atomic_thread_fence(memory_order_seq_cst);
        int pinned = kwrite_pinned(e->addr, (j - i) * ps);
        /* Re-protect FIRST, then compare. */
        int rearmed = !pinned && engine.det->rearm(e->addr, (j - i) * ps, prot) == 0;
        for (size_t k = i; k < j; k++) {
            int ok = rearmed;
            if (!rearmed)   /* try page by page before giving up on a page */
                ok = !kwrite_pinned(pages[k]->addr, ps) &&
                     engine.det->rearm(pages[k]->addr, ps, prot) == 0;
            check_page(pages[k], ok);
        }
        engine.pages_compared += j - i;
        i = j;
    }

    /* Every page is CLEAN (or requeued) again: the heap is safe to touch. */
    int n = deliver(fn, ctx);
    struct deferred_free *f = (struct deferred_free *)engine.scratch.frees.p;
    size_t nf = engine.scratch.frees.len / sizeof(*f);
    for (size_t i = 0; i < nf; i++) {
        if (f[i].clear)
            *f[i].clear = NULL;
        free(f[i].p);
        mw_acct_uncharge(&engine.accts[f[i].acct], f[i].bytes);
    }
    engine.scratch.frees.len = 0;
    mw_region_index_reclaim(engine.index);
    struct svec *all[] = {
        &engine.scratch.pages, &engine.scratch.recs, &engine.scratch.old,
        &engine.scratch.new_, &engine.scratch.writers, &engine.scratch.merged,
        &engine.scratch.ranges,
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        svec_trim(all[i]);
    if (n >= 0 && oom)
        return -ENOMEM;
    return n;
}

int mw_engine_check(mw_change_fn fn, void *ctx)
{
    pthread_mutex_lock(&engine.lock);
    int n = 0;
    if (engine.initialized && !engine.detached) {
        mw_signal_chain_ensure_first();
        n = check_locked(fn, ctx);
    }
    pthread_mutex_unlock(&engine.lock);
    return n;
}

int mw_watcher_unwatch(mw_watcher *w, uint64_t region_id, mw_change_fn fn, void *ctx)
{
    if (!w)
        return MW_EINVAL;
    pthread_mutex_lock(&engine.lock);
    int rc = 0;
    struct mw_region **slot = engine.initialized && !engine.detached ? find_region(region_id)
                                                                      : NULL;
    if (!slot || (*slot)->w != w) {
        rc = MW_ENOENT;
    } else {
        /* Without fn a check would re-protect every dirty page and drop what it found,
         * other regions' changes included: those stay pending instead. */
        int n = fn ? check_locked(fn, ctx) : 0;
        slot = find_region(region_id);
        remove_region_locked(*slot);
        compact_regions_locked();
        mw_region_index_reclaim(engine.index);
        if (n < 0)
            rc = n;
    }
    pthread_mutex_unlock(&engine.lock);
    return rc;
}

void mw_watcher_stats(const mw_watcher *w, struct mw_watcher_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!w)
        return;
    pthread_mutex_lock(&engine.lock);
    const struct mw_acct *a = &engine.accts[w->acct];
    out->tracked_objects = w->tracked_objects;
    out->tracked_bytes = w->tracked_bytes;
    out->memory_used_bytes = atomic_load(&a->used);
    out->memory_limit_bytes = w->limit;
    out->faults = atomic_load(&a->faults);
    out->checks = engine.checks - w->checks_base;
    out->pages_compared = engine.pages_compared - w->pages_compared_base;
    out->changes = w->changes;
    out->old_unavailable = w->old_unavailable;
    pthread_mutex_unlock(&engine.lock);
}

/* ---- stop, fork --------------------------------------------------------------------- */

static void collect_clean(struct mw_page *e, void *ctx)
{
    (void)ctx;
    uint32_t s;
    while ((s = atomic_load(&e->state)) == MW_PAGE_FAULTING || s == MW_PAGE_OPEN)
        sched_yield();
    if (s == MW_PAGE_CLEAN && atomic_compare_exchange_strong(&e->state, &s, MW_PAGE_UNTRACKED))
        svec_push(&engine.scratch.pages, &e, sizeof(e));
    else if (s == MW_PAGE_DIRTY)
        atomic_store(&e->state, MW_PAGE_UNTRACKED);   /* its copy goes at the next check */
}

void mw_engine_unprotect_all(void)
{
    pthread_mutex_lock(&engine.lock);
    if (engine.initialized && !engine.detached) {
        engine.stopped = 1;
        engine.scratch.pages.len = 0;
        mw_region_index_foreach(engine.index, collect_clean, NULL);
        struct mw_page **pages = (struct mw_page **)engine.scratch.pages.p;
        size_t np = engine.scratch.pages.len / sizeof(*pages);
        if (np)
            qsort(pages, np, sizeof(*pages), cmp_page);
        size_t ps = engine.page_size;
        for (size_t i = 0; i < np;) {
            int prot = MW_PROT_OF(atomic_load(&pages[i]->acct_prot));
            size_t j = i + 1;
            while (j < np && pages[j]->addr == pages[j - 1]->addr + ps &&
                   MW_PROT_OF(atomic_load(&pages[j]->acct_prot)) == prot)
                j++;
            if (engine.det->unprotect(pages[i]->addr, (j - i) * ps, prot) != 0)
                for (size_t k = i; k < j; k++)
                    engine.det->unprotect(pages[k]->addr, ps, prot);
            i = j;
        }
        engine.scratch.pages.len = 0;
    }
    pthread_mutex_unlock(&engine.lock);
}

static void unprotect_in_child(struct mw_page *e, void *ctx)
{
    (void)ctx;
    uint32_t s = MW_PAGE_STATE(atomic_load(&e->state));
    if (s == MW_PAGE_CLEAN || s == MW_PAGE_FAULTING || s == MW_PAGE_CHECKING || s == MW_PAGE_OPEN)
        mprotect((void *)e->addr, engine.page_size, MW_PROT_OF(atomic_load(&e->acct_prot)));
}

void mw_engine_detach_after_fork(void)
{
    /* Only the forking thread exists here; the lock may have been held by another
     * parent thread at fork time, so it is re-made rather than taken. */
    pthread_mutex_init(&engine.lock, NULL);
    if (!engine.initialized || engine.detached)
        return;
    mw_region_index_foreach(engine.index, unprotect_in_child, NULL);
    mw_region_index_forget_all(engine.index);
    engine.det->detach();
    engine.detached = 1;
}
