/* Moving a watched object's storage to pages of its own.
 *
 * DESIGN
 * - Why: page protection is per page. A small bytearray lives in a pymalloc pool beside
 *   objects whose reference counts and free lists change all the time; each of their
 *   writes traps, so watching it made a pure-Python loop hundreds of times slower, and a
 *   system call whose buffer landed there failed. On pages of its own, nothing else ever
 *   writes there: no trap but the object's own writes, no foreign buffer to fail.
 * - When: only where moving provably changes nothing but the address. A bytearray's or an
 *   array.array's storage can only be reached through the object, and the object counts
 *   every pointer lent out (ob_exports, the buffer protocol): with none outstanding, the
 *   object itself is the only holder, and we swap its storage pointer under the GIL.
 *   While watched, our own export keeps the object from resizing (as before).
 * - Where: a small object (up to MW_ARENA_MAX_BLOCK bytes) goes to memwatch's arena
 *   (src/core/arena.c), packed with other watched objects of its size class: the page
 *   holds nothing the program writes but watched bytes, at a fraction of a page each. The
 *   block is written there through the engine (mw_engine_write), because the page is
 *   usually protected already for its other objects. If the object later frees or resizes
 *   storage it still has (unwatched while lent out, see Undo), the interposed free() and
 *   realloc() give the block back to the arena (src/core/free_interpose.c); where they are
 *   not what the program reaches (a sanitizer, another preloaded allocator), and for
 *   larger objects, the storage takes whole pages from the C library (posix_memalign),
 *   which the object's allocator frees correctly by handing them to free() (pymalloc's
 *   address check). Either way the pages are charged to the watcher's memory limit.
 * - Only under the default allocators ("pymalloc" or "malloc"): debug hooks (-X dev,
 *   PYTHONMALLOC=*_debug) expect their own header before every block, and a custom
 *   allocator may not hand foreign blocks to free().
 * - Undo: at unwatch, once our export is released, the storage moves back to the object's
 *   own allocator if nothing else is lent out; otherwise it stays where it is (see above). */
#include "relocate.h"

#include "arena.h"
#include "watcher.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KIND_NONE, KIND_BYTEARRAY, KIND_ARRAY };

/* CPython's own (internal, exported): "pymalloc", "malloc", their "_debug" forms, or NULL
 * for a custom allocator. */
PyAPI_FUNC(const char *) _PyMem_GetCurrentAllocatorName(void);

/* array.array's object, as Modules/arraymodule.c defines it (3.11-3.13); checked against a
 * live array before it is trusted (is_known_array). */
struct array_object {
    PyObject_VAR_HEAD
    char *ob_item;
    Py_ssize_t allocated;
    const void *ob_descr;
    PyObject *weakreflist;
    Py_ssize_t ob_exports;
};

static struct mw_relocate_stats stats;   /* the GIL protects it */
static size_t whole_pages;               /* pages of unpacked storage, now */
static PyTypeObject *array_type;         /* array.array, once seen */
static int array_layout = -1;            /* -1 unknown, 0 not as expected, 1 verified */

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static size_t round_to_pages(size_t n)
{
    size_t ps = page_size();
    return (n + ps - 1) / ps * ps;
}

/* Blocks that the object's allocator passes to free() unchanged. */
static int default_allocators(void)
{
    const char *name = _PyMem_GetCurrentAllocatorName();
    return name && (strcmp(name, "pymalloc") == 0 || strcmp(name, "malloc") == 0);
}

/* Is obj an array.array whose layout we know? Verified once on obj itself: the buffer it
 * exports is ob_item, and ob_exports counts that export. */
static int is_known_array(PyObject *obj)
{
    if (!array_type) {
        PyObject *name = PyUnicode_FromString("array");
        PyObject *m = name ? PyImport_GetModule(name) : NULL;
        Py_XDECREF(name);
        PyObject *t = m ? PyObject_GetAttrString(m, "array") : NULL;
        Py_XDECREF(m);
        PyErr_Clear();
        if (!t || !PyType_Check(t)) {
            Py_XDECREF(t);
            return 0;
        }
        array_type = (PyTypeObject *)t;   /* kept for the run */
    }
    if (!PyObject_TypeCheck(obj, array_type))
        return 0;
    if (array_layout < 0) {
        struct array_object *a = (struct array_object *)obj;
        Py_buffer v;
        if (PyObject_GetBuffer(obj, &v, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            return 0;
        }
        Py_ssize_t before = a->ob_exports - 1;
        int ok = v.buf == a->ob_item && before >= 0;
        PyBuffer_Release(&v);
        array_layout = ok && a->ob_exports == before;
    }
    return array_layout == 1;
}

/* array.array's storage in bytes: allocated counts items. */
static size_t array_bytes(PyObject *obj)
{
    PyObject *itemsize = PyObject_GetAttrString(obj, "itemsize");
    Py_ssize_t n = itemsize ? PyLong_AsSsize_t(itemsize) : -1;
    Py_XDECREF(itemsize);
    if (n <= 0) {
        PyErr_Clear();
        return 0;
    }
    return (size_t)n * (size_t)((struct array_object *)obj)->allocated;
}

/* The object's storage: the pointer to it, its size as allocated, and how many buffers of
 * it are lent out. */
static int storage_of(PyObject *obj, char ***start, size_t *bytes, Py_ssize_t *exports)
{
    if (PyByteArray_Check(obj)) {
        PyByteArrayObject *b = (PyByteArrayObject *)obj;
        *start = &b->ob_bytes;
        *bytes = (size_t)b->ob_alloc;
        *exports = b->ob_exports;
        return KIND_BYTEARRAY;
    }
    if (is_known_array(obj)) {
        struct array_object *a = (struct array_object *)obj;
        *start = &a->ob_item;
        *bytes = array_bytes(obj);
        *exports = a->ob_exports;
        return KIND_ARRAY;
    }
    return KIND_NONE;
}

/* Points the object at new storage (same contents); bytearray's ob_start moves with it. */
static void swap_storage(PyObject *obj, int kind, char *now)
{
    if (kind == KIND_BYTEARRAY) {
        PyByteArrayObject *b = (PyByteArrayObject *)obj;
        b->ob_start = now + (b->ob_start - b->ob_bytes);
        b->ob_bytes = now;
    } else {
        ((struct array_object *)obj)->ob_item = now;
    }
}

static void object_free(int kind, void *p)
{
    if (kind == KIND_BYTEARRAY)
        PyObject_Free(p);
    else
        PyMem_Free(p);
}

static void *object_malloc(int kind, size_t n)
{
    return kind == KIND_BYTEARRAY ? PyObject_Malloc(n) : PyMem_Malloc(n);
}

/* Storage for bytes, on pages of watched objects only: an arena block, else whole pages.
 * *held is what it occupies, *packed whether it is an arena block. NULL: none to be had. */
static void *isolated_storage(size_t bytes, size_t *held, int *packed)
{
    void *p = NULL;
    *packed = 0;
    if (bytes <= MW_ARENA_MAX_BLOCK && mw_arena_usable_here() &&
        (p = mw_arena_alloc(bytes, held)) != NULL) {
        *packed = 1;
        return p;
    }
    *held = round_to_pages(bytes);
    return posix_memalign(&p, page_size(), *held) == 0 ? p : NULL;
}

static void storage_free(void *p, int packed)
{
    if (packed)
        mw_arena_free(p);
    else
        free(p);
}

/* Pages now in use for moved objects: the arena's and whole ones. */
static void count_pages(void)
{
    struct mw_arena_stats a;
    mw_arena_stats(&a);
    stats.pages = a.pages + whole_pages;
    if (stats.objects > stats.objects_peak)
        stats.objects_peak = stats.objects;
    if (stats.pages > stats.pages_peak)
        stats.pages_peak = stats.pages;
}

int mw_relocate(PyObject *obj, size_t budget, struct mw_relocation *out)
{
    memset(out, 0, sizeof *out);
    char **start;
    size_t bytes, held;
    Py_ssize_t exports;
    int kind = storage_of(obj, &start, &bytes, &exports), packed;
    if (kind == KIND_NONE || exports != 0 || !*start || bytes == 0 || !default_allocators())
        return 0;
    void *storage = isolated_storage(bytes, &held, &packed);
    if (!storage)
        return 0;
    /* Written through the engine: an arena page is usually protected for its other objects.
     * A block that holds the bytes already (zeros, on a page never used) needs no write. */
    int failed = 0;
    if (!packed)
        memcpy(storage, *start, bytes);
    else if (held - bytes <= budget && memcmp(storage, *start, bytes) != 0)
        failed = mw_engine_write(storage, *start, bytes) != 0;
    if (held - bytes > budget || failed) {
        storage_free(storage, packed);
        return 0;
    }
    char *old = *start;
    swap_storage(obj, kind, storage);
    object_free(kind, old);
    *out = (struct mw_relocation){ kind, storage, bytes, held, packed };
    stats.objects++;
    if (!packed)
        whole_pages += held / page_size();
    count_pages();
    return 1;
}

void mw_relocate_undo(PyObject *obj, struct mw_relocation *r)
{
    if (r->kind == KIND_NONE)
        return;
    char **start;
    size_t bytes;
    Py_ssize_t exports;
    /* Still ours, and nothing lent out: back to the object's allocator. Otherwise the
     * storage stays, and goes back when the object frees it (see DESIGN). */
    if (storage_of(obj, &start, &bytes, &exports) == r->kind && *start == r->storage &&
        exports == 0) {
        void *back = object_malloc(r->kind, r->bytes);
        if (back) {
            memcpy(back, r->storage, r->bytes);
            swap_storage(obj, r->kind, back);
            storage_free(r->storage, r->packed);
        }
    }
    stats.objects--;
    if (!r->packed)
        whole_pages -= r->page_bytes / page_size();
    count_pages();
    r->kind = KIND_NONE;
}

void mw_relocate_stats(struct mw_relocate_stats *out)
{
    *out = stats;
}
