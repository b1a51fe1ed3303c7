/* See shared_watch.h.
 *
 * DESIGN
 * - The table: MW_SHARED_SLOTS fixed entries in the run's shared memory (run_shared.h:
 *   every traced process of the run maps it, exec'd children too), each (identity of the
 *   watched bytes, length, object id, publishing pid, name), and a generation that every
 *   publish and retract moves on. A process compares the generation with the one it last
 *   saw (one load) before doing any work.
 * - Slots are claimed and given up with a 64-bit stamp, (version << 2 | state), changed by
 *   compare-and-swap only: FREE or GONE -> FILLING (the claimer writes the fields) -> LIVE
 *   (with a new version) -> GONE. A reader copies a LIVE slot and keeps the copy only if
 *   the stamp did not change meanwhile, so it never sees a half-written entry, and an
 *   adopter that remembers the stamp it adopted notices a slot retracted and reused.
 * - Identity: the kernel's (device, inode, offset) of the mapping (mw_vma_identify), so a
 *   block mapped at another address, or by a process that opened it by name, is found.
 *   Only a contiguous object whose bytes lie in one backing object is published; a strided
 *   view is watched only where it is mapped the same way (fork children).
 * - Adopting: a process watches the bytes it maps of a published entry under the same
 *   object of the trace (mw_registry_adopt), in a watcher of its own that the script never
 *   sees. It does so when it maps shared memory (the mmap hook: before the program can
 *   write through the new mapping), before each check, and from the check thread when the
 *   generation moved (a block it mapped before another process watched it). A process that
 *   maps only part of an entry's bytes does not adopt it (README, Processes: limits).
 * - Adopted watches are borrowed: letting them go (a retract, an unmap, the end of the
 *   process) never ends the object in the trace; the publisher's unwatch does. */
#include "shared_watch.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "autocheck.h"
#include "channel.h"
#include "config.h"
#include "memory_map.h"
#include "pycompat.h"
#include "watcher.h"
#include "registry.h"
#include "run_shared.h"
#include "watcher_object.h"
#include "xproc_page.h"

#define MW_SHARED_SLOTS 1024
#define NAME_BYTES 192

enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE, SLOT_GONE };
#define STAMP(version, state) (((version) << 2) | (uint64_t)(state))
#define STAMP_STATE(s) ((int)((s) & 3))
#define STAMP_VERSION(s) ((s) >> 2)

struct slot_fields {
    uint32_t dev_major, dev_minor;
    uint64_t inode, offset, length;
    uint64_t object_id;
    int64_t pid;
    uint32_t name_len;
    char name[NAME_BYTES];
};

struct slot {
    _Atomic uint64_t stamp;
    struct slot_fields f;
};

/* A page of shared memory, by identity, and which process has it open (xproc_page.h).
 * Entries are added, never removed: MW_SHARED_PAGES pages of watched shared memory per
 * run (1 GiB of 4 KiB pages); pages beyond go without (README, Processes: limits). */
#define MW_SHARED_PAGES 262144
struct page_owner {
    _Atomic uint64_t key;      /* 0: free */
    struct mw_xproc_word word;
};

struct table {
    _Atomic uint64_t generation;
    struct slot slots[MW_SHARED_SLOTS];
    struct page_owner pages[MW_SHARED_PAGES];
};

static struct table *table;
/* Written by the mmap hook without the GIL, too. */
static _Atomic uint64_t seen_generation;
static PyObject *adopter;   /* the watcher that holds adopted watches (created when needed) */

static void after_shared_map(void *addr, size_t len);

_Static_assert(sizeof(struct table) <= MW_RUN_SHARED_SIZE - MW_RUN_SHARED_REGISTRY_OFFSET,
               "the shared-watch table must fit in the run's shared memory");

int mw_shared_watch_init(void)
{
    if (table)
        return 0;
    unsigned char *run = mw_run_shared();
    if (!run || mw_run_shared_size() < MW_RUN_SHARED_REGISTRY_OFFSET + sizeof *table)
        return -1;
    table = (struct table *)(run + MW_RUN_SHARED_REGISTRY_OFFSET);
    mw_engine_set_map_hook(after_shared_map);
    /* A write waits for another process's page about as long as that one takes to check. */
    mw_xproc_set_wait(mw_run.check_mode == MW_CHECK_LINE       ? MW_XPROC_WAIT_MS
                      : mw_run.check_mode == MW_CHECK_INTERVAL ? mw_run.interval_ms + 20
                                                               : 0);
    return 0;
}

int mw_shared_watch_changed(void)
{
    return table && atomic_load_explicit(&table->generation, memory_order_acquire) != atomic_load(&seen_generation);
}

/* w, bound by this process: a second process makes the page shared (xproc_page.h). */
static struct mw_xproc_word *bound_by_me(struct mw_xproc_word *w)
{
    uint32_t me = (uint32_t)getpid();
    if (atomic_exchange(&w->last_binder, me) != me)
        atomic_fetch_add(&w->sharers, 1);
    return w;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The word of the page at offset page_offset of the backing object of f, found or added;
 * NULL when the table is full. Keys are 64-bit digests of (device, inode, page): two pages
 * sharing one is a 2^-64 chance per pair. */
static struct mw_xproc_word *page_word(const struct slot_fields *f, uint64_t page_offset)
{
    uint64_t key = mix64(mix64(f->inode) ^ mix64(((uint64_t)f->dev_major << 32 | f->dev_minor) + 1) ^
                         (page_offset / (uint64_t)sysconf(_SC_PAGESIZE)) * 0x9e3779b97f4a7c15ull);
    if (!key)
        key = 1;
    for (uint64_t i = 0; i < MW_SHARED_PAGES; i++) {
        struct page_owner *p = &table->pages[(key + i) % MW_SHARED_PAGES];
        uint64_t k = atomic_load(&p->key);
        if ((k == 0 && atomic_compare_exchange_strong(&p->key, &k, key)) || k == key)
            return bound_by_me(&p->word);
    }
    return NULL;
}

struct bind_ctx {
    const struct slot_fields *f;
    uintptr_t start;           /* the address here of the byte at f->offset */
};

static struct mw_xproc_word *word_of_page(uintptr_t page, void *vctx)
{
    const struct bind_ctx *c = vctx;
    return page_word(c->f, c->f->offset - (c->start - page));
}

/* The engine's pages of [start, start + f->length) learn their words. */
static void bind_pages(uintptr_t start, const struct slot_fields *f)
{
    struct bind_ctx c = {f, start};
    mw_engine_share_pages((const void *)start, (size_t)f->length, word_of_page, &c);
}

/* The backing object and offset of [start, start + len), when all of it is mapped shared
 * from one object, through one mapping or several that follow each other in it. */
static int identify_range(uintptr_t start, size_t len, struct slot_fields *f)
{
    struct mw_vma_identity v;
    if (mw_vma_identify(start, &v) != 0 || !v.shared || v.inode == 0)
        return -1;
    f->dev_major = v.dev_major;
    f->dev_minor = v.dev_minor;
    f->inode = v.inode;
    f->offset = v.offset + (start - v.start);
    f->length = len;
    uintptr_t end = start + len;
    while (v.end < end) {
        struct mw_vma_identity next;
        if (mw_vma_identify(v.end, &next) != 0 || next.start != v.end || !next.shared ||
            next.inode != f->inode || next.dev_major != f->dev_major ||
            next.dev_minor != f->dev_minor || next.offset != v.offset + (v.end - v.start))
            return -1;
        v = next;
    }
    return 0;
}

void mw_shared_watch_publish(struct mw_watched *w)
{
    /* An object memwatch moved lives in its private pages: no other process maps them. */
    if (!table || !w->buf.contiguous || w->buf.moved.kind != 0)
        return;
    struct slot_fields f;
    if (identify_range((uintptr_t)w->buf.start, w->buf.span, &f) != 0)
        return;
    bind_pages((uintptr_t)w->buf.start, &f);
    f.object_id = w->object_id;
    f.pid = getpid();
    Py_ssize_t n = 0;
    const char *name = PyUnicode_AsUTF8AndSize(w->tag, &n);
    if (!name) {
        PyErr_Clear();
        name = "", n = 0;
    }
    f.name_len = (uint32_t)((size_t)n < NAME_BYTES ? (size_t)n : NAME_BYTES);
    memcpy(f.name, name, f.name_len);
    for (int i = 0; i < MW_SHARED_SLOTS; i++) {
        struct slot *s = &table->slots[i];
        uint64_t st = atomic_load(&s->stamp);
        if (STAMP_STATE(st) != SLOT_FREE && STAMP_STATE(st) != SLOT_GONE)
            continue;
        uint64_t v = STAMP_VERSION(st) + 1;
        if (!atomic_compare_exchange_strong(&s->stamp, &st, STAMP(v, SLOT_FILLING)))
            continue;
        s->f = f;
        w->shared_slot = i;
        w->shared_stamp = STAMP(v + 1, SLOT_LIVE);
        atomic_store_explicit(&s->stamp, w->shared_stamp, memory_order_release);
        atomic_fetch_add_explicit(&table->generation, 1, memory_order_release);
        /* Another process's changes of it wait in the trace for its record (serve.c):
         * send it now rather than with this process's next check. */
        mw_channel_flush();
        return;
    }
    /* A full table: the block is watched here and by fork children, not by others
     * (README, Processes: limits). */
}

void mw_shared_watch_retract(struct mw_watched *w)
{
    if (!table || w->shared_slot < 0)
        return;
    struct slot *s = &table->slots[w->shared_slot];
    uint64_t st = w->shared_stamp;
    if (atomic_compare_exchange_strong(&s->stamp, &st,
                                       STAMP(STAMP_VERSION(st) + 1, SLOT_GONE)))
        atomic_fetch_add_explicit(&table->generation, 1, memory_order_release);
    w->shared_slot = -1;
}

/* A stable copy of slot i when it is LIVE: its stamp, or 0. */
static uint64_t read_slot(int i, struct slot_fields *out)
{
    struct slot *s = &table->slots[i];
    uint64_t st = atomic_load_explicit(&s->stamp, memory_order_acquire);
    if (STAMP_STATE(st) != SLOT_LIVE)
        return 0;
    *out = s->f;
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&s->stamp, memory_order_relaxed) == st ? st : 0;
}

/* Whether w watches memory of another process's watch that was retracted since (or its
 * slot reused): adopted here, or inherited through fork. */
static int retracted(const struct mw_watched *w)
{
    return w->borrowed && w->shared_slot >= 0 &&
           atomic_load_explicit(&table->slots[w->shared_slot].stamp, memory_order_acquire) !=
               w->shared_stamp;
}

/* Where this process maps all of f's bytes that is not watched yet (published here,
 * inherited through fork, adopted): up to max addresses into at; how many. */
static size_t unwatched_views(const struct slot_fields *f, uintptr_t *at, size_t max)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return 0;
    struct mw_vma_identity run = {0}, m;
    size_t n = 0;
    while (n < max && mw_maps_next(maps, &m)) {
        if (!m.shared || m.inode != f->inode || m.dev_major != f->dev_major ||
            m.dev_minor != f->dev_minor) {
            run.end = 0;
            continue;
        }
        /* Consecutive lines of one backing object: one mapping split by protection. */
        if (run.end == m.start && run.offset + (run.end - run.start) == m.offset)
            run.end = m.end;
        else
            run = m;
        if (run.offset <= f->offset &&
            f->offset + f->length <= run.offset + (run.end - run.start)) {
            uintptr_t a = run.start + (uintptr_t)(f->offset - run.offset);
            if ((n == 0 || at[n - 1] != a) && !mw_watcher_objects_find(f->object_id, (void *)a))
                at[n++] = a;
        }
    }
    fclose(maps);
    return n;
}

/* The watcher of adopted watches. A process that never imported memwatch (a subprocess
 * that maps a file its parent watches) has no checks running yet: importing the module
 * starts them, as `import memwatch` would. */
static struct mw_owner *adopting_owner(void)
{
    if (!adopter) {
        PyObject *module = PyImport_ImportModule("memwatch");
        if (!module)
            return NULL;
        Py_DECREF(module);
        if (!(adopter = mw_watcher_object_new_default()))
            return NULL;
    }
    return mw_watcher_object_owner(adopter);
}

static void adopt_at(struct mw_owner *o, int slot, uint64_t stamp,
                     const struct slot_fields *f, uintptr_t at)
{
    PyObject *tag = PyUnicode_DecodeUTF8(f->name, f->name_len, "replace");
    if (tag && mw_registry_find(o, tag))
        Py_SETREF(tag, PyUnicode_FromFormat("%U (object %" PRIu64 " at %p)", tag, f->object_id,
                                            (void *)at));
    struct mw_buffer buf;
    if (!tag || mw_buffer_raw((void *)at, (size_t)f->length, &buf) < 0 ||
        mw_registry_adopt(o, tag, &buf, f->object_id) < 0) {
        /* Not watched here: its writes from this process go unseen, as from a process
         * outside the run (README, Processes: limits). */
        PyErr_Clear();
        Py_XDECREF(tag);
        return;
    }
    Py_DECREF(tag);
    bind_pages(at, f);
    struct mw_watched *w = o->watched;   /* the entry just made */
    w->shared_slot = slot;
    w->shared_stamp = stamp;
    mw_autocheck_after_watch();
}

void mw_shared_watch_adopt(void)
{
    if (!table || !mw_run.traced)
        return;
    uint64_t gen = atomic_load_explicit(&table->generation, memory_order_acquire);
    struct mw_owner *o = NULL;
    if (gen == atomic_load_explicit(&seen_generation, memory_order_relaxed))
        return;
    atomic_store_explicit(&seen_generation, gen, memory_order_relaxed);
    mw_watcher_objects_drop_if(retracted);
    int64_t self = getpid();
    for (int i = 0; i < MW_SHARED_SLOTS; i++) {
        struct slot_fields f;
        uint64_t st = read_slot(i, &f);
        if (!st || f.pid == self)
            continue;
        uintptr_t at[8];
        size_t n = unwatched_views(&f, at, 8);
        if (n && !o && !(o = adopting_owner())) {
            PyErr_Clear();
            return;
        }
        for (size_t k = 0; k < n; k++)
            adopt_at(o, i, st, &f, at[k]);
    }
}

/* The mmap hook (see watcher.h): the program mapped memory shared from a file descriptor.
 * When other processes published watches, this mapping may be one of them: adopt now,
 * before the program writes through it, from a thread that may take the GIL (it holds the
 * GIL, or released it around the call as the mmap module does); else the main thread
 * does it at its next chance, and the check thread within its period. */
static int adopt_pending(void *arg)
{
    (void)arg;
    mw_shared_watch_adopt();
    return 0;
}

static void after_shared_map(void *addr, size_t len)
{
    (void)addr, (void)len;
    if (!table || atomic_load_explicit(&table->generation, memory_order_acquire) == 0 ||
        !Py_IsInitialized() || mw_py_is_finalizing())
        return;
    atomic_store(&seen_generation, UINT64_MAX);   /* look again: nothing new was published */
    if (!PyGILState_Check() && !PyGILState_GetThisThreadState()) {
        Py_AddPendingCall(adopt_pending, NULL);
        return;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    mw_shared_watch_adopt();
    PyErr_Restore(type, value, tb);
    PyGILState_Release(gil);
}

void mw_shared_watch_rebind(struct mw_watched *w)
{
    struct slot_fields f;
    if (table && identify_range((uintptr_t)w->buf.start, w->buf.span, &f) == 0)
        bind_pages((uintptr_t)w->buf.start, &f);
}
