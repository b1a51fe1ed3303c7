#include <stdint.h>
#include <string.h>

#include "buffers.h"

static char *type_name_of(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyObject *module = PyObject_GetAttrString((PyObject *)type, "__module__");
    PyObject *qualname = PyObject_GetAttrString((PyObject *)type, "__qualname__");
    char *name = NULL;
    PyErr_Clear();
    const char *q = qualname && PyUnicode_Check(qualname) ? PyUnicode_AsUTF8(qualname) : type->tp_name;
    const char *m = module && PyUnicode_Check(module) ? PyUnicode_AsUTF8(module) : NULL;
    PyErr_Clear();
    if (!q)
        q = type->tp_name;
    if (m && strcmp(m, "builtins") != 0) {
        size_t n = strlen(m) + strlen(q) + 2;
        name = PyMem_RawMalloc(n);
        if (name)
            snprintf(name, n, "%s.%s", m, q);
    } else {
        name = PyMem_RawMalloc(strlen(q) + 1);
        if (name)
            strcpy(name, q);
    }
    Py_XDECREF(module);
    Py_XDECREF(qualname);
    return name;
}

/* torch's TypeError when numpy has no type for the tensor's (bfloat16, float8 types), in
 * words that say what to do: the same memory watched as integers of the same width. */
static void say_no_numpy_type(PyObject *tensor)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *dtype = PyObject_GetAttrString(tensor, "dtype");
    PyObject *size = PyObject_CallMethod(tensor, "element_size", NULL);
    long bits = size && PyLong_Check(size) ? PyLong_AsLong(size) * 8 : 0;
    PyErr_Clear();
    if (!dtype || (bits != 8 && bits != 16 && bits != 32 && bits != 64)) {
        Py_XDECREF(dtype);
        Py_XDECREF(size);
        PyErr_Restore(type, value, traceback);   /* torch's own error stays */
        return;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    PyErr_Format(PyExc_TypeError,
                 "cannot watch a tensor of %R: numpy, through which memwatch reads a tensor's "
                 "memory and layout, has no such type (watch tensor.view(torch.int%ld): the same "
                 "memory, its elements read as %ld-bit integers)", dtype, bits, bits);
    Py_DECREF(dtype);
    Py_DECREF(size);
}

/* A torch tensor has no buffer protocol; tensor.detach().numpy() is an ndarray sharing its
 * memory (CPU tensors only), which carries the layout as well. */
static PyObject *torch_as_numpy(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyObject *module = PyObject_GetAttrString((PyObject *)type, "__module__");
    int is_torch = module && PyUnicode_Check(module) &&
                   strncmp(PyUnicode_AsUTF8(module), "torch", 5) == 0;
    Py_XDECREF(module);
    PyErr_Clear();
    if (!is_torch || !PyObject_HasAttrString(obj, "data_ptr"))
        return NULL;
    PyObject *device = PyObject_GetAttrString(obj, "device");
    PyObject *device_type = device ? PyObject_GetAttrString(device, "type") : NULL;
    Py_XDECREF(device);
    if (!device_type)
        return NULL;
    int cpu = PyUnicode_Check(device_type) && strcmp(PyUnicode_AsUTF8(device_type), "cpu") == 0;
    if (!cpu) {
        PyErr_Format(PyExc_TypeError,
                     "cannot watch a torch tensor on device '%U': only CPU tensors can be watched "
                     "(move it with .cpu() first)", device_type);
        Py_DECREF(device_type);
        return NULL;
    }
    Py_DECREF(device_type);
    PyObject *detached = PyObject_CallMethod(obj, "detach", NULL);
    PyObject *array = detached ? PyObject_CallMethod(detached, "numpy", NULL) : NULL;
    if (!array && detached && PyErr_ExceptionMatches(PyExc_TypeError))
        say_no_numpy_type(detached);
    Py_XDECREF(detached);
    return array;
}

/* Is the memory exporter's an mmap's (the mmap itself, or a memoryview of one, as
 * SharedMemory.buf is)? */
static int owned_by_mmap(PyObject *exporter)
{
    PyObject *base = PyMemoryView_Check(exporter) ? PyMemoryView_GET_BASE(exporter) : exporter;
    return base && strcmp(Py_TYPE(base)->tp_name, "mmap.mmap") == 0;
}

static void compute_extent(struct mw_buffer *b)
{
    Py_buffer *v = &b->view;
    b->logical_size = (size_t)v->len;
    if (v->len == 0 || PyBuffer_IsContiguous(v, 'A') || !v->strides) {
        b->start = v->buf;
        b->span = (size_t)v->len;
        b->contiguous = 1;
        return;
    }
    /* Strided: the lowest and highest byte any element touches. */
    Py_ssize_t lo = 0, hi = 0;
    for (int d = 0; d < v->ndim; d++) {
        Py_ssize_t reach = (v->shape[d] - 1) * v->strides[d];
        if (reach < 0)
            lo += reach;
        else
            hi += reach;
    }
    b->start = (unsigned char *)v->buf + lo;
    b->span = (size_t)(hi - lo + v->itemsize);
    b->contiguous = 0;
}

static int not_a_buffer(PyObject *obj)
{
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError,
                     "cannot watch an object of type '%s': it does not expose its memory "
                     "(watch a bytearray, array.array, memoryview, mmap, numpy array, ctypes "
                     "object or CPU torch tensor, or use watch_buffer(address, size, name))",
                     Py_TYPE(obj)->tp_name);
    return -1;
}

int mw_buffer_check(PyObject *obj, size_t *size)
{
    PyObject *exporter = PyObject_CheckBuffer(obj) ? Py_NewRef(obj) : torch_as_numpy(obj);
    if (!exporter)
        return not_a_buffer(obj);
    Py_buffer view;
    int status = PyObject_GetBuffer(exporter, &view, PyBUF_FULL_RO);
    Py_DECREF(exporter);
    if (status < 0)
        return -1;
    *size = (size_t)view.len;
    PyBuffer_Release(&view);
    return 0;
}

int mw_buffer_acquire(PyObject *obj, size_t budget, struct mw_buffer *out)
{
    memset(out, 0, sizeof *out);
    PyObject *exporter = obj;
    PyObject *converted = NULL;
    if (PyObject_CheckBuffer(obj)) {
        mw_relocate(obj, budget, &out->moved);
    } else {
        converted = torch_as_numpy(obj);
        if (!converted)
            return not_a_buffer(obj);
        exporter = converted;
    }
    int status = PyObject_GetBuffer(exporter, &out->view, PyBUF_FULL_RO);
    Py_XDECREF(converted);   /* the view holds its own reference to the exporter */
    if (status < 0) {
        mw_relocate_undo(obj, &out->moved);
        return -1;
    }
    out->has_view = 1;
    out->readonly = out->view.readonly;
    out->type_name = type_name_of(obj);
    Py_INCREF(obj);
    out->object = obj;
    compute_extent(out);
    out->pinned = 1;
    if (owned_by_mmap(obj)) {
        /* The description stays valid: its shape and strides point into the view itself
         * (an mmap's) or into the memoryview, which out->object keeps alive. */
        PyBuffer_Release(&out->view);
        out->pinned = 0;
    }
    return 0;
}

int mw_buffer_raw(void *address, size_t size, struct mw_buffer *out)
{
    memset(out, 0, sizeof *out);
    out->start = address;
    out->span = out->logical_size = size;
    out->contiguous = 1;
    out->type_name = PyMem_RawMalloc(sizeof "raw");
    if (out->type_name)
        strcpy(out->type_name, "raw");
    return 0;
}

void mw_buffer_release(struct mw_buffer *b)
{
    if (b->has_view && b->pinned)
        PyBuffer_Release(&b->view);
    b->has_view = 0;
    if (b->object)
        mw_relocate_undo(b->object, &b->moved);
    Py_CLEAR(b->object);
    PyMem_RawFree(b->type_name);
    b->type_name = NULL;
}

static void gather_dim(const Py_buffer *v, int dim, const unsigned char *src,
                       unsigned char **dst)
{
    for (Py_ssize_t i = 0; i < v->shape[dim]; i++) {
        const unsigned char *p = src + i * v->strides[dim];
        if (dim == v->ndim - 1) {
            memcpy(*dst, p, (size_t)v->itemsize);
            *dst += v->itemsize;
        } else {
            gather_dim(v, dim + 1, p, dst);
        }
    }
}

void mw_buffer_gather(const struct mw_buffer *b, const unsigned char *span_bytes,
                      unsigned char *out)
{
    if (b->contiguous) {
        memcpy(out, span_bytes, b->logical_size);
        return;
    }
    const Py_buffer *v = &b->view;
    const unsigned char *origin = span_bytes + ((unsigned char *)v->buf - b->start);
    unsigned char *dst = out;
    gather_dim(v, 0, origin, &dst);
}
