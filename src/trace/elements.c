/* Typed elements (see elements.h): laying an item out, and locating items.
 *
 * DESIGN
 * - The format is parsed into a small tree (scalars, pads, structures, with repeat counts
 *   and sub-array shapes: elements_parse.c), then laid out here into the flat list of an
 *   item's scalars, each with its offset and its path ("pos[1]", "n.q"). Their values are
 *   decoded and written as text by elements_value.c; changes are turned into elements by
 *   elements_diff.c.
 * - Producers disagree on alignment. numpy writes explicit 'x' padding and mixes '@' and
 *   '=' codes whose offsets are already right ('T{i:x:xxxxd:y:}'); ctypes writes '<' (in
 *   the struct module: standard sizes, no alignment) but lays fields out with C alignment
 *   and no 'x' ('T{<i:x:<d:y:}' is 16 bytes). So the layout is computed packed first and,
 *   when that does not add up to the item size the buffer reports, with C alignment; the
 *   item size decides. A single scalar whose standard size disagrees with the item size
 *   (ctypes' '<u' is 4 bytes on Linux) takes the item size when that is a size its kind
 *   can have.
 * - Byte order markers stay in force until the next one, across nested structures: that
 *   is how numpy writes them (it only writes a marker when the order changes).
 * - Items are found from byte offsets with the strides for contiguous objects (C order,
 *   Fortran order, or any other order of dimensions without gaps), and in C order for
 *   the values of non-contiguous views (see the header). */
#include "elements.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elements_layout.h"
#include "elements_parse.h"
#include "mw_error.h"
#include "mw_grow.h"

/* An item with more scalars than this is shown as bytes (a huge sub-array per item). */
#define MAX_SCALARS 65536

/* ---- laying an item out ----------------------------------------------------------- */

struct layout_out {
    struct mw_elem_scalar *s;
    size_t n, cap;
    char *names;              /* all paths, NUL-separated; s[i].path points in here */
    size_t names_len, names_cap;
    size_t *name_at;          /* offsets into names while building */
    size_t name_at_cap;
    int overflow;
};

static void layout_out_free(struct layout_out *o)
{
    free(o->s);
    free(o->names);
    free(o->name_at);
}

static int add_name(struct layout_out *o, const char *path, size_t *at)
{
    size_t len = strlen(path) + 1;
    if (MW_GROW(o->names, o->names_cap, o->names_len + len) != 0)
        return -ENOMEM;
    memcpy(o->names + o->names_len, path, len);
    *at = o->names_len;
    o->names_len += len;
    return 0;
}

static int add_scalar(struct layout_out *o, const struct mw_elem_node *nd, uint64_t offset,
                      const char *path)
{
    if (o->n == MAX_SCALARS || offset > UINT32_MAX) {
        o->overflow = 1;
        return 0;
    }
    if (MW_GROW(o->s, o->cap, o->n + 1) != 0 ||
        MW_GROW(o->name_at, o->name_at_cap, o->n + 1) != 0)
        return -ENOMEM;
    struct mw_elem_scalar *s = &o->s[o->n];
    memset(s, 0, sizeof *s);
    s->offset = (uint32_t)offset;
    s->size = nd->size;
    s->kind = nd->kind;
    s->swap = nd->swap;
    s->unit = nd->unit;
    s->code = nd->code;
    int rc = add_name(o, path, &o->name_at[o->n]);
    if (rc)
        return rc;
    o->n++;
    return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return a > 1 ? (v + a - 1) / a * a : v;
}

/* Name of repeat r of a node: "name", "name[2]", "name[1, 0]", "f3" when unnamed. */
static void repeat_path(char *buf, size_t size, const char *parent, const struct mw_elem_node *nd,
                        size_t position, int top_single, uint64_t r, uint64_t repeats)
{
    char own[256];
    size_t len = 0;
    own[0] = '\0';
    if (nd->name && *nd->name)
        len = (size_t)snprintf(own, sizeof own, "%s", nd->name);
    else if (!top_single)
        len = (size_t)snprintf(own, sizeof own, "f%zu", position);
    if (len >= sizeof own)
        len = sizeof own - 1;
    if (repeats > 1) {
        /* sub-array dims first (row-major), then the count as one more index */
        uint64_t idx[MW_ELEM_MAX_SUBDIMS + 1];
        int k;
        uint64_t rem = r;
        uint64_t count = nd->count;
        uint64_t cidx = rem % count;
        rem /= count;
        for (int d = nd->ndims - 1; d >= 0; d--) {
            idx[d] = rem % nd->dims[d];
            rem /= nd->dims[d];
        }
        k = nd->ndims;
        if (count > 1)
            idx[k++] = cidx;
        len += (size_t)snprintf(own + len, sizeof own > len ? sizeof own - len : 0, "[");
        for (int d = 0; d < k && len < sizeof own; d++)
            len += (size_t)snprintf(own + len, sizeof own - len, "%s%llu", d ? ", " : "",
                                    (unsigned long long)idx[d]);
        if (len < sizeof own)
            snprintf(own + len, sizeof own - len, "]");
    }
    if (parent && *parent)
        snprintf(buf, size, "%s%s%s", parent, own[0] == '[' || !own[0] ? "" : ".", own);
    else
        snprintf(buf, size, "%s", own);
}

/* Lays nodes out from offset base; returns the size through *size and the alignment
 * through *align. emit: add scalars (else only measure). */
static int lay_out(const struct mw_elem_node *nodes, size_t n, int aligned, uint64_t base,
                   const char *parent, int top, struct layout_out *o, int emit, uint64_t *size,
                   uint64_t *align)
{
    uint64_t at = 0, max_align = 1;
    for (size_t i = 0; i < n; i++) {
        const struct mw_elem_node *nd = &nodes[i];
        uint64_t repeats = nd->count;
        for (int d = 0; d < nd->ndims; d++)
            repeats *= nd->dims[d];
        if (nd->type == MW_NODE_PAD) {
            at += nd->size * repeats;
            continue;
        }
        uint64_t one, a;
        if (nd->type == MW_NODE_STRUCT) {
            int rc = lay_out(nd->children, nd->nchildren, aligned, 0, NULL, 0, o, 0, &one, &a);
            if (rc)
                return rc;
        } else {
            one = nd->size;
            a = nd->align ? nd->align : 1;
        }
        if (aligned) {
            at = align_up(at, a);
            if (a > max_align)
                max_align = a;
        }
        if (emit) {
            int top_single = top && n == 1;
            for (uint64_t r = 0; r < repeats && !o->overflow; r++) {
                char path[512];
                repeat_path(path, sizeof path, parent, nd, i, top_single, r, repeats);
                int rc;
                if (nd->type == MW_NODE_STRUCT) {
                    uint64_t s2, a2;
                    rc = lay_out(nd->children, nd->nchildren, aligned, base + at + r * one, path,
                                 0, o, 1, &s2, &a2);
                } else {
                    rc = add_scalar(o, nd, base + at + r * one, path);
                }
                if (rc)
                    return rc;
            }
        }
        at += one * repeats;
    }
    if (aligned)
        at = align_up(at, max_align);
    *size = at;
    *align = max_align;
    return 0;
}

/* A size a single scalar of this kind can have. */
static int size_fits(uint8_t kind, uint64_t size)
{
    switch (kind) {
    case MW_ELEM_INT: case MW_ELEM_UINT:
        return size == 1 || size == 2 || size == 4 || size == 8;
    case MW_ELEM_FLOAT:
        return size == 2 || size == 4 || size == 8 || size == sizeof(long double);
    case MW_ELEM_COMPLEX:
        return size == 8 || size == 16 || size == 2 * sizeof(long double);
    case MW_ELEM_POINTER:
        return size == 4 || size == 8;
    default:
        return 0;
    }
}

/* ---- layout lifecycle ------------------------------------------------------------- */

static int raw_type(const char *t)
{
    static const char *const raw[] = {"bytearray", "bytes", "mmap.mmap", "mmap", "memoryview",
                                       "raw"};
    if (!t)
        return 1;
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++)
        if (strcmp(t, raw[i]) == 0)
            return 1;
    return 0;
}

char mw_elem_contiguous_order(int ndim, const int64_t *shape, const int64_t *strides,
                              size_t itemsize)
{
    /* Dimensions of length 1 have any stride; they do not decide the order. Unsigned: a
     * hostile shape may overflow the product, which then matches no stride. */
    int c = 1, f = 1;
    uint64_t want = itemsize;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && (uint64_t)strides[d] != want)
            c = 0;
        want *= (uint64_t)shape[d];
    }
    want = itemsize;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] != 1 && (uint64_t)strides[d] != want)
            f = 0;
        want *= (uint64_t)shape[d];
    }
    return c ? 'C' : f ? 'F' : 0;
}

static int derive_contiguous(int ndim, const int64_t *shape, const int64_t *strides,
                             size_t itemsize)
{
    if (!strides || ndim <= 0)
        return 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0)
            return 1;
    return mw_elem_contiguous_order(ndim, shape, strides, itemsize) != 0;
}

void mw_elem_layout_destroy(mw_elem_layout *l)
{
    if (!l)
        return;
    free(l->scalars);
    free(l->names);
    free(l->shape);
    free(l->strides);
    free(l->order);
    free(l);
}

/* A lone scalar whose size the producer sees differently (see DESIGN) takes the item size
 * when its kind can have that size; -1 when it cannot. */
static int fix_lone_scalar(struct mw_elem_node *nodes, size_t n, int64_t itemsize)
{
    struct mw_elem_node *nd = &nodes[0];
    if (n != 1 || nd->type != MW_NODE_SCALAR || nd->count != 1 || nd->ndims != 0 ||
        itemsize <= 0 || (uint64_t)itemsize == nd->size || !strchr("lLnNgPOzZuw", nd->code))
        return 0;
    if (nd->kind == MW_ELEM_TEXT && nd->unit && nd->size / nd->unit == 1 &&
        (itemsize == 2 || itemsize == 4)) {
        nd->size = nd->unit = (uint8_t)itemsize;
    } else if (size_fits(nd->kind, (uint64_t)itemsize)) {
        nd->size = (uint32_t)itemsize;
        if (nd->kind == MW_ELEM_COMPLEX)
            nd->unit = (uint8_t)(itemsize / 2);
    } else {
        return -1;
    }
    return 0;
}

/* The item's scalars, laid out packed or with C alignment, whichever gives the item size
 * the producer reports (want; <= 0: unknown, packed). */
static int build_scalars(const struct mw_elem_node *nodes, size_t n, int64_t want,
                         struct layout_out *o, uint64_t *itemsize)
{
    uint64_t packed, aligned, a, size;
    int rc, use_aligned;
    if ((rc = lay_out(nodes, n, 0, 0, NULL, 1, o, 0, &packed, &a)) ||
        (rc = lay_out(nodes, n, 1, 0, NULL, 1, o, 0, &aligned, &a)))
        return rc;
    *itemsize = want > 0 ? (uint64_t)want : packed;
    if (packed == *itemsize)
        use_aligned = 0;
    else if (aligned == *itemsize)
        use_aligned = 1;
    else if (packed < *itemsize && (n > 1 || nodes[0].type == MW_NODE_STRUCT))
        use_aligned = 0;   /* a structure's trailing bytes are padding */
    else
        return MW_EFORMAT;
    if ((rc = lay_out(nodes, n, use_aligned, 0, NULL, 1, o, 1, &size, &a)))
        return rc;
    if (o->overflow || *itemsize == 0 || o->n == 0)
        return MW_EFORMAT;
    return 0;
}

/* Shape and strides as given; unknown means one dimension over the whole value. */
static int layout_shape(mw_elem_layout *l, const struct mw_elem_desc *d)
{
    int ndim = d->ndim;
    if (ndim < 0 || (ndim > 0 && !d->shape)) {
        ndim = 1;
        l->shape = malloc(sizeof(int64_t));
        l->strides = malloc(sizeof(int64_t));
        if (l->shape && l->strides) {
            l->shape[0] = (int64_t)(d->size / l->itemsize);
            l->strides[0] = (int64_t)l->itemsize;
        }
    } else {
        l->shape = malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
        l->strides = malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
        if (l->shape && l->strides) {
            /* Unsigned: a hostile shape (a corrupted trace) may overflow the product,
             * which only the default strides use; the item count below refuses it. */
            uint64_t want = (uint64_t)l->itemsize;
            for (int i = ndim - 1; i >= 0; i--) {
                l->shape[i] = d->shape[i];
                l->strides[i] = d->strides ? d->strides[i] : (int64_t)want;
                want *= (uint64_t)d->shape[i];
            }
        }
    }
    l->order = malloc(sizeof(int) * (size_t)(ndim ? ndim : 1));
    if (!l->shape || !l->strides || !l->order)
        return -ENOMEM;
    l->ndim = ndim;
    l->nitems = 1;
    for (int i = 0; i < ndim; i++)
        if (l->shape[i] < 0 ||
            __builtin_mul_overflow(l->nitems, (uint64_t)l->shape[i], &l->nitems))
            return MW_EINVAL;
    l->contiguous = d->contiguous >= 0
                        ? d->contiguous
                        : derive_contiguous(ndim, l->shape, d->strides ? l->strides : NULL,
                                            l->itemsize);
    return 0;
}

/* Dimensions by decreasing |stride| (stable: ties keep C order). */
static void layout_order(mw_elem_layout *l)
{
    for (int i = 0; i < l->ndim; i++)
        l->order[i] = i;
    for (int i = 1; i < l->ndim; i++) {
        int v = l->order[i], j = i;
        while (j > 0 && llabs(l->strides[l->order[j - 1]]) < llabs(l->strides[v])) {
            l->order[j] = l->order[j - 1];
            j--;
        }
        l->order[j] = v;
    }
}

/* Whether some scalar is a float, and whether the object is shown as elements. */
static void layout_kinds(mw_elem_layout *l, const char *type_name)
{
    for (size_t i = 0; i < l->nscalars; i++)
        if (l->scalars[i].kind == MW_ELEM_FLOAT || l->scalars[i].kind == MW_ELEM_COMPLEX)
            l->has_float = 1;
    int bytes_like = l->nscalars == 1 && l->itemsize == 1 &&
                     (l->scalars[0].kind == MW_ELEM_UINT || l->scalars[0].kind == MW_ELEM_INT ||
                      l->scalars[0].kind == MW_ELEM_CHAR);
    l->typed = !(bytes_like && raw_type(type_name));
}

int mw_elem_layout_create(const struct mw_elem_desc *d, mw_elem_layout **out)
{
    *out = NULL;
    if (!d || !d->format)
        return MW_EINVAL;
    struct mw_elem_node *nodes = NULL;
    size_t nnodes = 0;
    int rc = mw_elem_parse(d->format, &nodes, &nnodes);
    if (rc)
        return rc;
    struct layout_out o = {0};
    uint64_t itemsize = 0;
    if (nnodes == 0 || fix_lone_scalar(nodes, nnodes, d->itemsize) < 0)
        rc = MW_EFORMAT;
    else
        rc = build_scalars(nodes, nnodes, d->itemsize, &o, &itemsize);
    mw_elem_nodes_free(nodes, nnodes);
    mw_elem_layout *l = rc ? NULL : calloc(1, sizeof *l);
    if (!l) {
        layout_out_free(&o);
        return rc ? rc : -ENOMEM;
    }
    l->scalars = o.s;
    l->nscalars = o.n;
    l->names = o.names;
    for (size_t i = 0; i < o.n; i++)
        o.s[i].path = o.names + o.name_at[i];
    free(o.name_at);
    l->itemsize = (size_t)itemsize;
    if ((rc = layout_shape(l, d)) != 0) {
        mw_elem_layout_destroy(l);
        return rc;
    }
    layout_order(l);
    layout_kinds(l, d->type_name);
    *out = l;
    return 0;
}

int mw_elem_layout_typed(const mw_elem_layout *l)
{
    return l && l->typed;
}

int mw_elem_layout_has_float(const mw_elem_layout *l)
{
    return l && l->has_float;
}

size_t mw_elem_layout_itemsize(const mw_elem_layout *l)
{
    return l->itemsize;
}

const struct mw_elem_scalar *mw_elem_layout_scalars(const mw_elem_layout *l, size_t *n)
{
    *n = l->nscalars;
    return l->scalars;
}

/* ---- locating --------------------------------------------------------------------- */

void mw_elem_item_coords(const mw_elem_layout *l, uint64_t m, int64_t *index, uint64_t *item)
{
    if (l->ndim == 0) {
        *item = 0;
        return;
    }
    if (l->contiguous) {
        /* Peel dimensions off by decreasing stride: any gapless order (C, Fortran, a
         * transposed array) works. */
        uint64_t rem = m * l->itemsize;
        for (int k = 0; k < l->ndim; k++) {
            int d = l->order[k];
            uint64_t st = (uint64_t)llabs(l->strides[d]);
            if (l->shape[d] <= 1 || st == 0) {
                index[d] = 0;
                continue;
            }
            index[d] = (int64_t)(rem / st);
            rem %= st;
        }
        uint64_t c = 0;
        for (int d = 0; d < l->ndim; d++)
            c = c * (uint64_t)l->shape[d] + (uint64_t)index[d];
        *item = c;
    } else {
        uint64_t rem = m;
        for (int d = l->ndim - 1; d >= 0; d--) {
            uint64_t n = l->shape[d] > 0 ? (uint64_t)l->shape[d] : 1;
            index[d] = (int64_t)(rem % n);
            rem /= n;
        }
        *item = m;
    }
}

static const struct mw_elem_scalar *scalar_at(const mw_elem_layout *l, uint64_t in_item)
{
    size_t lo = 0, hi = l->nscalars;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct mw_elem_scalar *s = &l->scalars[mid];
        if (in_item < s->offset)
            hi = mid;
        else if (in_item >= (uint64_t)s->offset + s->size)
            lo = mid + 1;
        else
            return s;
    }
    return NULL;
}

int mw_elem_locate(const mw_elem_layout *l, uint64_t offset, uint64_t *item, int64_t *index,
                   const struct mw_elem_scalar **scalar)
{
    uint64_t m = offset / l->itemsize;
    if (m >= l->nitems)
        return MW_EINVAL;
    int64_t tmp[MW_REC_MAX_NDIM];
    uint64_t it;
    mw_elem_item_coords(l, m, index ? index : tmp, &it);
    if (item)
        *item = it;
    if (scalar)
        *scalar = scalar_at(l, offset % l->itemsize);
    return 0;
}
