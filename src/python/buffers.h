/* Turns a Python object into the memory memwatch watches: its address range, element
 * format and layout, pinned for as long as it is watched. */
#ifndef MW_BUFFERS_H
#define MW_BUFFERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include "relocate.h"

struct mw_buffer {
    Py_buffer view;          /* the object's buffer description */
    int has_view;
    /* view is a held export (the memory cannot be resized or freed), but for memory an mmap
     * owns: its close() and resize() must work as under python3, and memwatch ends the
     * watch when they unmap it (watcher_object.c, before_unmap). */
    int pinned;
    PyObject *object;        /* the watched object itself (strong reference) */
    char *type_name;         /* "bytearray", "numpy.ndarray", "torch.Tensor", ... */
    unsigned char *start;    /* lowest byte of any element */
    size_t span;             /* bytes from start to the end of the highest element */
    size_t logical_size;     /* len(bytes) of the value: itemsize * number of elements */
    int contiguous;          /* the value's bytes are exactly [start, start + span) */
    int readonly;
    struct mw_relocation moved;   /* its storage moved to pages of its own (relocate.h) */
};

/* Fills *out from a buffer-protocol object or a CPU torch tensor, first moving its storage
 * to pages of its own when it can (relocate.h) and the pages' waste fits in budget bytes.
 * On failure sets a Python exception (TypeError naming the type) and returns -1. */
int mw_buffer_acquire(PyObject *obj, size_t budget, struct mw_buffer *out);
/* What mw_buffer_acquire would refuse, without pinning or moving anything: 0 with the
 * object's size in bytes, or -1 with its exception. */
int mw_buffer_check(PyObject *obj, size_t *size);
/* For watch_buffer(address, size): a raw range with no object behind it. */
int mw_buffer_raw(void *address, size_t size, struct mw_buffer *out);
/* Lets the object go: its buffer released, its storage moved back if it was moved. */
void mw_buffer_release(struct mw_buffer *b);
/* Copies the value's bytes, in C order, from a copy of [start, start + span) into out
 * (logical_size bytes). For contiguous buffers it is a plain copy. */
void mw_buffer_gather(const struct mw_buffer *b, const unsigned char *span_bytes,
                      unsigned char *out);

#endif
