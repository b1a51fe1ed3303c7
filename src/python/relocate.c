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
 * - Where: whole pages from the C library (posix_memalign, a multiple of the page size),
 *   never a pool of ours. The object's allocator frees storage it does not own by handing
 *   it to free() (pymalloc's address check), so whatever happens later — the object dies,
 *   grows after the watch, or is still lent out when unwatched and cannot move back — the
 *   storage is freed correctly. That rules out packing several objects on a page: each
 *   moved object costs whole pages, charged to the watcher's memory limit.
 * - Only under the default allocators ("pymalloc" or "malloc"): debug hooks (-X dev,
 *   PYTHONMALLOC=*_debug) expect their own header before every block, and a custom
 *   allocator may not hand foreign blocks to free().
 * - Undo: at unwatch, once our export is released, the storage moves back to the object's
 *   own allocator if nothing else is lent out; otherwise it stays where it is (see above). */
#include "relocate.h"

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

int mw_relocate(PyObject *obj, size_t budget, struct mw_relocation *out)
{
    memset(out, 0, sizeof *out);
    char **start;
    size_t bytes;
    Py_ssize_t exports;
    int kind = storage_of(obj, &start, &bytes, &exports);
    if (kind == KIND_NONE || exports != 0 || !*start || bytes == 0 || !default_allocators())
        return 0;
    size_t page_bytes = round_to_pages(bytes);
    if (page_bytes - bytes > budget)
        return 0;
    void *pages = NULL;
    if (posix_memalign(&pages, page_size(), page_bytes) != 0)
        return 0;
    memcpy(pages, *start, bytes);
    char *old = *start;
    swap_storage(obj, kind, pages);
    object_free(kind, old);
    *out = (struct mw_relocation){ kind, pages, bytes, page_bytes };
    stats.objects++;
    stats.pages += page_bytes / page_size();
    if (stats.objects > stats.objects_peak)
        stats.objects_peak = stats.objects;
    if (stats.pages > stats.pages_peak)
        stats.pages_peak = stats.pages;
    return 1;
}

void mw_relocate_undo(PyObject *obj, struct mw_relocation *r)
{
    if (r->kind == KIND_NONE)
        return;
    stats.objects--;
    stats.pages -= r->page_bytes / page_size();
    char **start;
    size_t bytes;
    Py_ssize_t exports;
    /* Still ours, and nothing lent out: back to the object's allocator. */
    if (storage_of(obj, &start, &bytes, &exports) == r->kind && *start == r->storage &&
        exports == 0) {
        void *back = object_malloc(r->kind, r->bytes);
        if (back) {
            memcpy(back, r->storage, r->bytes);
            swap_storage(obj, r->kind, back);
            free(r->storage);
        }
    }
    r->kind = KIND_NONE;
}

void mw_relocate_stats(struct mw_relocate_stats *out)
{
    *out = stats;
}
