/* Typed elements (see elements.h).
 *
 * DESIGN
 * - The format is parsed into a small tree (scalars, pads, structures, with repeat counts
 *   and sub-array shapes), then laid out into the flat list of an item's scalars, each
 *   with its offset and its path ("pos[1]", "n.q").
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
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"

/* An item with more scalars than this is shown as bytes (a huge sub-array per item). */
#define MAX_SCALARS 65536
#define MAX_DEPTH 32
#define MAX_SUBDIMS 8

/* ---- the format tree -------------------------------------------------------------- */

enum node_type { N_SCALAR, N_PAD, N_STRUCT };

struct node {
    enum node_type type;
    char code;
    uint8_t kind, swap, unit;
    uint32_t size;            /* one repeat, for scalars and pads */
    uint32_t align;           /* natural alignment of one repeat (C rules) */
    uint64_t count;           /* repeats (a pad: bytes; a string: 1) */
    int ndims;                /* sub-array shape: '(2,3)f' */
    uint32_t dims[MAX_SUBDIMS];
    char *name;               /* NULL: unnamed */
    struct node *children;    /* N_STRUCT */
    size_t nchildren;
};

static void nodes_free(struct node *n, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(n[i].name);
        nodes_free(n[i].children, n[i].nchildren);
    }
    free(n);
}

static int host_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

struct parser {
    const char *p;
    int native;               /* '@' or '^': native sizes */
    int little;               /* the byte order now in force */
    int depth;
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_uint(struct parser *ps, uint64_t *out)
{
    uint64_t v = 0;
    if (!is_digit(*ps->p))
        return -1;
    while (is_digit(*ps->p)) {
        if (v > UINT32_MAX)
            return -1;
        v = v * 10 + (uint64_t)(*ps->p++ - '0');
    }
    *out = v;
    return 0;
}

/* Size and kind of a scalar code in the current mode; 0 when unknown. */
static int scalar_info(const struct parser *ps, char code, struct node *n)
{
    int nat = ps->native;
    n->type = N_SCALAR;
    n->code = code;
    n->unit = 0;
    switch (code) {
    case 'x': n->type = N_PAD; n->kind = MW_ELEM_PAD; n->size = 1; break;
    case '?': n->kind = MW_ELEM_BOOL; n->size = 1; break;
    case 'c': n->kind = MW_ELEM_CHAR; n->size = 1; break;
    case 'b': n->kind = MW_ELEM_INT; n->size = 1; break;
    case 'B': n->kind = MW_ELEM_UINT; n->size = 1; break;
    case 'h': n->kind = MW_ELEM_INT; n->size = 2; break;
    case 'H': n->kind = MW_ELEM_UINT; n->size = 2; break;
    case 'i': n->kind = MW_ELEM_INT; n->size = 4; break;
    case 'I': n->kind = MW_ELEM_UINT; n->size = 4; break;
    case 'l': n->kind = MW_ELEM_INT; n->size = nat ? (uint32_t)sizeof(long) : 4; break;
    case 'L': n->kind = MW_ELEM_UINT; n->size = nat ? (uint32_t)sizeof(long) : 4; break;
    case 'q': n->kind = MW_ELEM_INT; n->size = 8; break;
    case 'Q': n->kind = MW_ELEM_UINT; n->size = 8; break;
    case 'n': n->kind = MW_ELEM_INT; n->size = (uint32_t)sizeof(size_t); break;
    case 'N': n->kind = MW_ELEM_UINT; n->size = (uint32_t)sizeof(size_t); break;
    case 'e': n->kind = MW_ELEM_FLOAT; n->size = 2; break;
    case 'f': n->kind = MW_ELEM_FLOAT; n->size = 4; break;
    case 'd': n->kind = MW_ELEM_FLOAT; n->size = 8; break;
    case 'g': n->kind = MW_ELEM_FLOAT; n->size = (uint32_t)sizeof(long double); break;
    case 's': case 'p': n->kind = MW_ELEM_BYTES; n->size = 1; n->unit = 1; break;
    case 'w': n->kind = MW_ELEM_TEXT; n->size = 4; n->unit = 4; break;
    case 'u': n->kind = MW_ELEM_TEXT; n->size = 2; n->unit = 2; break;
    case 'P': case 'O': case 'z': case 'Z':
        n->kind = MW_ELEM_POINTER; n->size = (uint32_t)sizeof(void *); break;
    default:
        return -1;
    }
    n->align = n->kind == MW_ELEM_BYTES || n->kind == MW_ELEM_TEXT ? (n->unit ? n->unit : 1)
                                                                   : n->size;
    if (code == 'g')
        n->align = (uint32_t)_Alignof(long double);
    n->swap = n->size > 1 && ps->little != host_little();
    return 0;
}

static int parse_seq(struct parser *ps, char end, struct node **out, size_t *nout);

/* One item: [order] [(dims)] [count] code [:name:] */
static int parse_item(struct parser *ps, struct node *n)
{
    memset(n, 0, sizeof *n);
    n->count = 1;
    if (*ps->p == '(') {
        ps->p++;
        for (;;) {
            uint64_t d;
            while (*ps->p == ' ')
                ps->p++;
            if (n->ndims == MAX_SUBDIMS || parse_uint(ps, &d))
                return MW_EFORMAT;
            n->dims[n->ndims++] = (uint32_t)d;
            while (*ps->p == ' ')
                ps->p++;
            if (*ps->p == ',') {
                ps->p++;
                continue;
            }
            if (*ps->p++ != ')')
                return MW_EFORMAT;
            break;
        }
    }
    /* ctypes and numpy put the byte order after the shape: '(3)<h', '(2)=f' */
    for (;; ps->p++) {
        char c = *ps->p;
        if (c == '@' || c == '^')
            ps->native = 1, ps->little = host_little();
        else if (c == '=')
            ps->native = 0, ps->little = host_little();
        else if (c == '<')
            ps->native = 0, ps->little = 1;
        else if (c == '>' || c == '!')
            ps->native = 0, ps->little = 0;
        else
            break;
    }
    uint64_t count = 1;
    int has_count = is_digit(*ps->p);
    if (has_count && parse_uint(ps, &count))
        return MW_EFORMAT;
    char code = *ps->p;
    if (!code)
        return MW_EFORMAT;
    ps->p++;
    if (code == 'T' && *ps->p == '{') {
        ps->p++;
        if (++ps->depth > MAX_DEPTH)
            return MW_EFORMAT;
        int rc = parse_seq(ps, '}', &n->children, &n->nchildren);
        ps->depth--;
        if (rc)
            return rc;
        n->type = N_STRUCT;
        n->code = 'T';
        n->count = count;
    } else if (code == 'Z' && (*ps->p == 'f' || *ps->p == 'd' || *ps->p == 'g')) {
        char c = *ps->p++;
        if (scalar_info(ps, c, n))
            return MW_EFORMAT;
        n->kind = MW_ELEM_COMPLEX;
        n->unit = (uint8_t)n->size;
        n->align = c == 'g' ? (uint32_t)_Alignof(long double) : n->size;
        n->size *= 2;
        n->code = c;
        n->count = count;
    } else if (code == '&') {
        /* A pointer to something: its target's format is of no interest here. */
        struct node target;
        int rc = parse_item(ps, &target);
        free(target.name);
        nodes_free(target.children, target.nchildren);
        if (rc)
            return rc;
        scalar_info(ps, 'P', n);
        n->count = count;
        return 0;   /* the target's name (if any) was consumed with it */
    } else {
        if (scalar_info(ps, code, n))
            return MW_EFORMAT;
        if (n->kind == MW_ELEM_BYTES || n->kind == MW_ELEM_TEXT) {
            /* A count is the string's length: one value. */
            n->size *= (uint32_t)count;
            n->count = 1;
            if (n->size == 0)
                n->type = N_PAD;
        } else {
            n->count = count;
        }
    }
    if (*ps->p == ':') {
        const char *start = ++ps->p;
        while (*ps->p && *ps->p != ':')
            ps->p++;
        if (*ps->p != ':')
            return MW_EFORMAT;
        n->name = strndup(start, (size_t)(ps->p - start));
        if (!n->name)
            return -ENOMEM;
        ps->p++;
    }
    return 0;
}

static int parse_seq(struct parser *ps, char end, struct node **out, size_t *nout)
{
    struct node *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\n') {
            ps->p++;
            continue;
        }
        if (c == end) {
            if (end)
                ps->p++;
            break;
        }
        if (!c) {
            rc = MW_EFORMAT;
            break;
        }
        if (c == '@' || c == '^') {
            ps->native = 1, ps->little = host_little(), ps->p++;
            continue;
        }
        if (c == '=') {
            ps->native = 0, ps->little = host_little(), ps->p++;
            continue;
        }
        if (c == '<') {
            ps->native = 0, ps->little = 1, ps->p++;
            continue;
        }
        if (c == '>' || c == '!') {
            ps->native = 0, ps->little = 0, ps->p++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            struct node *g = realloc(v, cap * sizeof *v);
            if (!g) {
                rc = -ENOMEM;
                break;
            }
            v = g;
        }
        if ((rc = parse_item(ps, &v[n]))) {
            free(v[n].name);
            nodes_free(v[n].children, v[n].nchildren);
            break;
        }
        n++;
    }
    if (rc) {
        nodes_free(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* ---- laying an item out ----------------------------------------------------------- */

struct layout_out {
    struct mw_elem_scalar *s;
    size_t n, cap;
    char *names;              /* all paths, NUL-separated; s[i].path points in here */
    size_t names_len, names_cap;
    size_t *name_at;          /* offsets into names while building */
    int overflow;
};

struct mw_elem_layout {
    struct mw_elem_scalar *scalars;
    size_t nscalars;
    char *names;
    size_t itemsize;
    int ndim;                 /* >= 0 */
    int64_t *shape, *strides; /* ndim entries each */
    int contiguous;
    int *order;               /* contiguous: dimensions by decreasing stride */
    uint64_t nitems;
    int typed, has_float;
};

static int add_name(struct layout_out *o, const char *path, size_t *at)
{
    size_t len = strlen(path) + 1;
    if (o->names_len + len > o->names_cap) {
        size_t cap = o->names_cap ? o->names_cap * 2 : 256;
        while (cap < o->names_len + len)
            cap *= 2;
        char *g = realloc(o->names, cap);
        if (!g)
            return -ENOMEM;
        o->names = g;
        o->names_cap = cap;
    }
    memcpy(o->names + o->names_len, path, len);
    *at = o->names_len;
    o->names_len += len;
    return 0;
}

static int add_scalar(struct layout_out *o, const struct node *nd, uint64_t offset,
                      const char *path)
{
    if (o->n == MAX_SCALARS || offset > UINT32_MAX) {
        o->overflow = 1;
        return 0;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        struct mw_elem_scalar *g = realloc(o->s, cap * sizeof *g);
        size_t *a = realloc(o->name_at, cap * sizeof *a);
        if (g)
            o->s = g;
        if (a)
            o->name_at = a;
        if (!g || !a)
            return -ENOMEM;
        o->cap = cap;
    }
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
static void repeat_path(char *buf, size_t size, const char *parent, const struct node *nd,
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
        uint64_t idx[MAX_SUBDIMS + 1];
        int k = 0;
        uint64_t rem = r;
        uint64_t count = nd->count;
        uint64_t in_dims = repeats / (count ? count : 1);
        uint64_t cidx = rem % count;
        rem /= count;
        (void)in_dims;
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
static int lay_out(const struct node *nodes, size_t n, int aligned, uint64_t base,
                   const char *parent, int top, struct layout_out *o, int emit, uint64_t *size,
                   uint64_t *align)
{
    uint64_t at = 0, max_align = 1;
    for (size_t i = 0; i < n; i++) {
        const struct node *nd = &nodes[i];
        uint64_t repeats = nd->count;
        for (int d = 0; d < nd->ndims; d++)
            repeats *= nd->dims[d];
        if (nd->type == N_PAD) {
            at += nd->size * repeats;
            continue;
        }
        uint64_t one, a;
        if (nd->type == N_STRUCT) {
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
                if (nd->type == N_STRUCT) {
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

int mw_elem_layout_create(const struct mw_elem_desc *d, mw_elem_layout **out)
{
    *out = NULL;
    if (!d || !d->format)
        return MW_EINVAL;
    struct parser ps = {.p = d->format, .native = 1, .little = host_little()};
    struct node *nodes = NULL;
    size_t nnodes = 0;
    int rc = parse_seq(&ps, '\0', &nodes, &nnodes);
    if (rc)
        return rc;
    if (nnodes == 0) {
        nodes_free(nodes, nnodes);
        return MW_EFORMAT;
    }
    /* A lone scalar whose size the producer sees differently (see DESIGN). */
    if (nnodes == 1 && nodes[0].type == N_SCALAR && nodes[0].count == 1 &&
        nodes[0].ndims == 0 && d->itemsize > 0 && (uint64_t)d->itemsize != nodes[0].size &&
        strchr("lLnNgPOzZuw", nodes[0].code)) {
        struct node *nd = &nodes[0];
        if (nd->kind == MW_ELEM_TEXT && nd->unit && nd->size / nd->unit == 1 &&
            (d->itemsize == 2 || d->itemsize == 4)) {
            nd->size = nd->unit = (uint8_t)d->itemsize;
        } else if (size_fits(nd->kind, (uint64_t)d->itemsize)) {
            nd->size = (uint32_t)d->itemsize;
            if (nd->kind == MW_ELEM_COMPLEX)
                nd->unit = (uint8_t)(d->itemsize / 2);
        } else {
            nodes_free(nodes, nnodes);
            return MW_EFORMAT;
        }
    }
    uint64_t packed, aligned, a;
    struct layout_out o = {0};
    int use_aligned = 0;
    if ((rc = lay_out(nodes, nnodes, 0, 0, NULL, 1, &o, 0, &packed, &a)) ||
        (rc = lay_out(nodes, nnodes, 1, 0, NULL, 1, &o, 0, &aligned, &a)))
        goto fail;
    uint64_t itemsize = d->itemsize > 0 ? (uint64_t)d->itemsize : packed;
    if (packed == itemsize)
        use_aligned = 0;
    else if (aligned == itemsize)
        use_aligned = 1;
    else if (packed < itemsize && (nnodes > 1 || nodes[0].type == N_STRUCT))
        use_aligned = 0;   /* a structure's trailing bytes are padding */
    else {
        rc = MW_EFORMAT;
        goto fail;
    }
    uint64_t sz;
    if ((rc = lay_out(nodes, nnodes, use_aligned, 0, NULL, 1, &o, 1, &sz, &a)))
        goto fail;
    if (o.overflow || itemsize == 0 || o.n == 0) {
        rc = MW_EFORMAT;
        goto fail;
    }
    mw_elem_layout *l = calloc(1, sizeof *l);
    if (!l) {
        rc = -ENOMEM;
        goto fail;
    }
    l->scalars = o.s;
    l->nscalars = o.n;
    l->names = o.names;
    for (size_t i = 0; i < o.n; i++)
        o.s[i].path = o.names + o.name_at[i];
    free(o.name_at);
    nodes_free(nodes, nnodes);
    o = (struct layout_out){0};
    l->itemsize = (size_t)itemsize;
    /* Shape: as given; unknown means one dimension over the whole value. */
    int ndim = d->ndim;
    if (ndim < 0 || (ndim > 0 && !d->shape)) {
        ndim = 1;
        l->shape = malloc(sizeof(int64_t));
        l->strides = malloc(sizeof(int64_t));
        if (l->shape && l->strides) {
            l->shape[0] = (int64_t)(d->size / itemsize);
            l->strides[0] = (int64_t)itemsize;
        }
    } else {
        l->shape = malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
        l->strides = malloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
        if (l->shape && l->strides) {
            /* Unsigned: a hostile shape (a corrupted trace) may overflow the product,
             * which only the default strides use; the item count below refuses it. */
            uint64_t want = (uint64_t)itemsize;
            for (int i = ndim - 1; i >= 0; i--) {
                l->shape[i] = d->shape[i];
                l->strides[i] = d->strides ? d->strides[i] : (int64_t)want;
                want *= (uint64_t)d->shape[i];
            }
        }
    }
    l->order = malloc(sizeof(int) * (size_t)(ndim ? ndim : 1));
    if (!l->shape || !l->strides || !l->order) {
        mw_elem_layout_destroy(l);
        return -ENOMEM;
    }
    l->ndim = ndim;
    l->nitems = 1;
    for (int i = 0; i < ndim; i++) {
        if (l->shape[i] < 0 ||
            __builtin_mul_overflow(l->nitems, (uint64_t)l->shape[i], &l->nitems)) {
            mw_elem_layout_destroy(l);
            return MW_EINVAL;
        }
    }
    l->contiguous = d->contiguous >= 0
                        ? d->contiguous
                        : derive_contiguous(ndim, l->shape, d->strides ? l->strides : NULL,
                                            l->itemsize);
    /* Dimensions by decreasing |stride| (stable: ties keep C order). */
    for (int i = 0; i < ndim; i++)
        l->order[i] = i;
    for (int i = 1; i < ndim; i++) {
        int v = l->order[i], j = i;
        while (j > 0 && llabs(l->strides[l->order[j - 1]]) < llabs(l->strides[v])) {
            l->order[j] = l->order[j - 1];
            j--;
        }
        l->order[j] = v;
    }
    for (size_t i = 0; i < l->nscalars; i++)
        if (l->scalars[i].kind == MW_ELEM_FLOAT || l->scalars[i].kind == MW_ELEM_COMPLEX)
            l->has_float = 1;
    int bytes_like = l->nscalars == 1 && l->itemsize == 1 &&
                     (l->scalars[0].kind == MW_ELEM_UINT || l->scalars[0].kind == MW_ELEM_INT ||
                      l->scalars[0].kind == MW_ELEM_CHAR);
    l->typed = !(bytes_like && raw_type(d->type_name));
    *out = l;
    return 0;

fail:
    free(o.s);
    free(o.names);
    free(o.name_at);
    nodes_free(nodes, nnodes);
    return rc;
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

int mw_elem_layout_ndim(const mw_elem_layout *l)
{
    return l->ndim;
}

const struct mw_elem_scalar *mw_elem_layout_scalars(const mw_elem_layout *l, size_t *n)
{
    *n = l->nscalars;
    return l->scalars;
}

/* ---- locating --------------------------------------------------------------------- */

/* Item number m (memory order for contiguous objects, C order otherwise) -> coordinates
 * and the C-order number. */
static void item_coords(const mw_elem_layout *l, uint64_t m, int64_t *index, uint64_t *item)
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
    item_coords(l, m, index ? index : tmp, &it);
    if (item)
        *item = it;
    if (scalar)
        *scalar = scalar_at(l, offset % l->itemsize);
    return 0;
}

/* ---- decoding --------------------------------------------------------------------- */

static void load(const struct mw_elem_scalar *s, const unsigned char *p, unsigned char *dst,
                 size_t n)
{
    if (s->swap)
        for (size_t i = 0; i < n; i++)
            dst[i] = p[n - 1 - i];
    else
        memcpy(dst, p, n);
}

static double half_to_double(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant | 0x400, exp - 25);
    return sign ? -v : v;
}

/* Round to the nearest half (ties to even), for the shortest-text search. */
static uint16_t double_to_half(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    v = fabs(v);
    if (isnan(v))
        return sign | 0x7e00;
    if (v >= 65520.0)
        return sign | 0x7c00;
    if (v < ldexp(1, -25))
        return sign;   /* rounds to zero (the tie at 2^-25 goes to even: 0) */
    int e;
    frexp(v, &e);                       /* v = f * 2^e, f in [0.5, 1) */
    int exp = e - 1;                    /* v = 1.x * 2^exp */
    int q = exp < -14 ? -24 : exp - 10; /* quantum */
    double m = nearbyint(ldexp(v, -q)); /* default rounding: to even */
    double r = ldexp(m, q);
    if (r >= 65520.0)
        return sign | 0x7c00;
    /* re-encode r exactly */
    frexp(r, &e);
    exp = e - 1;
    if (exp < -14)
        return sign | (uint16_t)ldexp(r, 24);
    uint16_t mant = (uint16_t)(ldexp(r, -exp + 10) - 1024.0);
    return sign | (uint16_t)((exp + 15) << 10) | mant;
}

static int decode_float(unsigned size, const unsigned char *b, long double *out)
{
    switch (size) {
    case 2: {
        uint16_t h;
        memcpy(&h, b, 2);
        *out = half_to_double(h);
        return 0;
    }
    case 4: {
        float f;
        memcpy(&f, b, 4);
        *out = f;
        return 0;
    }
    case 8: {
        double v;
        memcpy(&v, b, 8);
        *out = v;
        return 0;
    }
    default:
        if (size == sizeof(long double)) {
            long double v;
            memcpy(&v, b, sizeof v);
            *out = v;
            return 0;
        }
        return -1;
    }
}

int mw_elem_decode_number(const struct mw_elem_scalar *s, const unsigned char *p, double *re,
                          double *im)
{
    unsigned char b[64] = {0};
    *re = NAN;
    if (im)
        *im = 0;
    if (!p || s->size > sizeof b)
        return -1;
    switch (s->kind) {
    case MW_ELEM_BOOL:
        *re = p[0] != 0;
        return 0;
    case MW_ELEM_INT:
    case MW_ELEM_UINT: {
        load(s, p, b, s->size);
        uint64_t u = 0;
        /* host order to a number */
        if (host_little())
            for (int i = (int)s->size - 1; i >= 0; i--)
                u = (u << 8) | b[i];
        else
            for (unsigned i = 0; i < s->size; i++)
                u = (u << 8) | b[i];
        if (s->kind == MW_ELEM_INT && s->size < 8 && (u >> (s->size * 8 - 1)) & 1)
            u |= ~(uint64_t)0 << (s->size * 8);
        *re = s->kind == MW_ELEM_INT ? (double)(int64_t)u : (double)u;
        return 0;
    }
    case MW_ELEM_FLOAT: {
        long double v;
        load(s, p, b, s->size);
        if (decode_float(s->size, b, &v))
            return -1;
        *re = (double)v;
        return 0;
    }
    case MW_ELEM_COMPLEX: {
        long double r, i;
        unsigned u = s->unit;
        load(s, p, b, u);
        load(s, p + u, b + u, u);
        if (decode_float(u, b, &r) || decode_float(u, b + u, &i))
            return -1;
        *re = (double)r;
        if (im)
            *im = (double)i;
        return 0;
    }
    default:
        return -1;
    }
}

/* Python's repr of a float from its shortest round-tripping digits: positional for
 * exponents -4..15, else d.ddde+XX; "100.0" keeps its ".0" unless bare (complex parts). */
static size_t repr_float(long double v, unsigned size, int bare, char *buf, size_t bufsize)
{
    if (isnan(v))
        return (size_t)snprintf(buf, bufsize, "nan");
    if (isinf(v))
        return (size_t)snprintf(buf, bufsize, "%sinf", v < 0 ? "-" : "");
    int maxp = size == 2 ? 5 : size == 4 ? 9 : size == 8 ? 17 : 21;
    char sci[64];
    for (int p = 1; p <= maxp; p++) {
        snprintf(sci, sizeof sci, "%.*Le", p - 1, v);
        int same;
        if (size == 2)
            same = double_to_half(strtod(sci, NULL)) == double_to_half((double)v);
        else if (size == 4)
            same = strtof(sci, NULL) == (float)v;
        else if (size == 8)
            same = strtod(sci, NULL) == (double)v;
        else
            same = strtold(sci, NULL) == v;
        if (same)
            break;
    }
    /* sci: [-]d[.ddd]e[+-]XX */
    const char *s = sci;
    int neg = *s == '-';
    if (neg)
        s++;
    char digits[64];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp = atoi(s + 1);
    char out[128];
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = -1; i > exp; i--)
                out[n++] = '0';
            memcpy(out + n, digits, nd);
            n += nd;
        } else {
            for (int i = 0; i <= exp; i++)
                out[n++] = (size_t)i < nd ? digits[i] : '0';
            if ((size_t)exp + 1 < nd) {
                out[n++] = '.';
                for (size_t i = (size_t)exp + 1; i < nd; i++)
                    out[n++] = digits[i];
            } else if (!bare) {
                out[n++] = '.';
                out[n++] = '0';
            }
        }
        out[n] = '\0';
    } else {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        snprintf(out + n, sizeof out - n, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    }
    return (size_t)snprintf(buf, bufsize, "%s", out);
}

/* Appends to buf at *len (bounded), keeping *len the needed length. */
static void put(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
    if (*len < size) {
        size_t room = size - *len - 1;
        memcpy(buf + *len, s, n < room ? n : room);
        buf[*len + (n < room ? n : room)] = '\0';
    }
    *len += n;
}

static void put_byte_repr(char *buf, size_t size, size_t *len, unsigned c)
{
    char e[8];
    if (c == '\\' || c == '\'')
        snprintf(e, sizeof e, "\\%c", c);
    else if (c == '\n')
        snprintf(e, sizeof e, "\\n");
    else if (c == '\t')
        snprintf(e, sizeof e, "\\t");
    else if (c == '\r')
        snprintf(e, sizeof e, "\\r");
    else if (c < 0x20 || c >= 0x7f)
        snprintf(e, sizeof e, "\\x%02x", c);
    else
        e[0] = (char)c, e[1] = '\0';
    put(buf, size, len, e, strlen(e));
}

size_t mw_elem_format_value(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                            size_t size)
{
    unsigned char b[64] = {0};
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    if (!p) {
        put(buf, size, &len, "?", 1);
        return len;
    }
    switch (s->kind) {
    case MW_ELEM_BOOL:
        return (size_t)snprintf(buf, size, "%s", p[0] ? "True" : "False");
    case MW_ELEM_INT:
    case MW_ELEM_UINT: {
        double v;
        load(s, p, b, s->size);
        uint64_t u = 0;
        if (host_little())
            for (int i = (int)s->size - 1; i >= 0; i--)
                u = (u << 8) | b[i];
        else
            for (unsigned i = 0; i < s->size; i++)
                u = (u << 8) | b[i];
        (void)v;
        if (s->kind == MW_ELEM_INT) {
            if (s->size < 8 && (u >> (s->size * 8 - 1)) & 1)
                u |= ~(uint64_t)0 << (s->size * 8);
            return (size_t)snprintf(buf, size, "%lld", (long long)(int64_t)u);
        }
        return (size_t)snprintf(buf, size, "%llu", (unsigned long long)u);
    }
    case MW_ELEM_FLOAT: {
        long double v;
        if (s->size > sizeof b)
            break;
        load(s, p, b, s->size);
        if (decode_float(s->size, b, &v))
            break;
        return repr_float(v, s->size, 0, buf, size);
    }
    case MW_ELEM_COMPLEX: {
        long double r, i;
        unsigned u = s->unit;
        if (s->size > sizeof b)
            break;
        load(s, p, b, u);
        load(s, p + u, b + u, u);
        if (decode_float(u, b, &r) || decode_float(u, b + u, &i))
            break;
        char rs[64], is[64];
        repr_float(r, u, 1, rs, sizeof rs);
        repr_float(i, u, 1, is, sizeof is);
        int plus = is[0] != '-';
        return (size_t)snprintf(buf, size, "(%s%s%sj)", rs, plus ? "+" : "", is);
    }
    case MW_ELEM_CHAR:
    case MW_ELEM_BYTES: {
        size_t n = s->size;
        if (s->kind == MW_ELEM_BYTES)
            while (n > 0 && p[n - 1] == 0)
                n--;   /* numpy's bytes_ drops trailing NULs */
        put(buf, size, &len, "b'", 2);
        for (size_t i = 0; i < n; i++)
            put_byte_repr(buf, size, &len, p[i]);
        put(buf, size, &len, "'", 1);
        return len;
    }
    case MW_ELEM_TEXT: {
        unsigned u = s->unit ? s->unit : 4;
        size_t n = s->size / u;
        uint32_t cps[1024];
        if (n > 1024)
            n = 1024;
        for (size_t i = 0; i < n; i++) {
            load(s, p + i * u, b, u);
            uint32_t cp = 0;
            if (u == 2) {
                uint16_t v;
                memcpy(&v, b, 2);
                cp = v;
            } else {
                memcpy(&cp, b, 4);
            }
            cps[i] = cp;
        }
        while (n > 0 && cps[n - 1] == 0)
            n--;
        put(buf, size, &len, "'", 1);
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = cps[i];
            char e[8];
            size_t k = 0;
            if (cp < 0x20 || cp == 0x7f || cp == '\'' || cp == '\\' ||
                (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
                if (cp < 0x100) {
                    put_byte_repr(buf, size, &len, cp);
                    continue;
                }
                k = (size_t)snprintf(e, sizeof e, "\\u%04x", cp & 0xffff);
            } else if (cp < 0x80) {
                e[k++] = (char)cp;
            } else if (cp < 0x800) {
                e[k++] = (char)(0xc0 | (cp >> 6));
                e[k++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                e[k++] = (char)(0xe0 | (cp >> 12));
                e[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                e[k++] = (char)(0x80 | (cp & 0x3f));
            } else {
                e[k++] = (char)(0xf0 | (cp >> 18));
                e[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                e[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                e[k++] = (char)(0x80 | (cp & 0x3f));
            }
            put(buf, size, &len, e, k);
        }
        put(buf, size, &len, "'", 1);
        return len;
    }
    case MW_ELEM_POINTER: {
        uint64_t u = 0;
        if (s->size > 8)
            break;
        load(s, p, b, s->size);
        if (host_little())
            for (int i = (int)s->size - 1; i >= 0; i--)
                u = (u << 8) | b[i];
        else
            for (unsigned i = 0; i < s->size; i++)
                u = (u << 8) | b[i];
        return (size_t)snprintf(buf, size, "0x%llx", (unsigned long long)u);
    }
    default:
        break;
    }
    /* Anything else: its bytes in hex. */
    for (size_t i = 0; i < s->size; i++) {
        char h[3];
        snprintf(h, sizeof h, "%02x", p[i]);
        put(buf, size, &len, h, 2);
    }
    return len;
}

size_t mw_elem_format_index(int ndim, const int64_t *index, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    put(buf, size, &len, "[", 1);
    for (int d = 0; d < ndim; d++) {
        char n[32];
        int k = snprintf(n, sizeof n, "%s%lld", d ? ", " : "", (long long)index[d]);
        put(buf, size, &len, n, (size_t)k);
    }
    put(buf, size, &len, "]", 1);
    return len;
}

size_t mw_elem_format_name(const char *tag, int ndim, const int64_t *index,
                           const struct mw_elem_scalar *s, char *buf, size_t size)
{
    size_t len = 0;
    if (size)
        buf[0] = '\0';
    put(buf, size, &len, tag, strlen(tag));
    if (ndim > 0) {
        char idx[MW_REC_MAX_NDIM * 24];
        size_t k = mw_elem_format_index(ndim, index, idx, sizeof idx);
        put(buf, size, &len, idx, k < sizeof idx ? k : sizeof idx - 1);
    }
    if (s && s->path && s->path[0]) {
        if (s->path[0] != '[')
            put(buf, size, &len, ".", 1);
        put(buf, size, &len, s->path, strlen(s->path));
    }
    return len;
}

/* ---- diffing ---------------------------------------------------------------------- */

static int is_nan_val(const struct mw_elem_scalar *s, double re, double im)
{
    (void)s;
    return isnan(re) || isnan(im);
}

static int is_inf_val(double re, double im)
{
    return isinf(re) || isinf(im);
}

static int report(const mw_elem_layout *l, uint64_t item, const int64_t *index,
                  const struct mw_elem_scalar *s, uint64_t item_offset, const unsigned char *old,
                  const unsigned char *new_, mw_elem_fn fn, void *ctx)
{
    if (old && new_ && memcmp(old, new_, s->size) == 0)
        return 0;   /* rewritten with the same value, or a widened range's bystander */
    struct mw_elem_change c = {
        .item = item,
        .ndim = l->ndim,
        .index = index,
        .scalar = s,
        .offset = item_offset + s->offset,
        .old = old,
        .new_ = new_,
        .old_num = NAN,
        .new_num = NAN,
        .old_imag = 0,
        .new_imag = 0,
    };
    int oldn = old && mw_elem_decode_number(s, old, &c.old_num, &c.old_imag) == 0;
    int newn = new_ && mw_elem_decode_number(s, new_, &c.new_num, &c.new_imag) == 0;
    if (s->kind == MW_ELEM_FLOAT || s->kind == MW_ELEM_COMPLEX) {
        int old_nan = oldn && is_nan_val(s, c.old_num, c.old_imag);
        int old_inf = oldn && is_inf_val(c.old_num, c.old_imag);
        if (newn) {
            int new_nan = is_nan_val(s, c.new_num, c.new_imag);
            int new_inf = is_inf_val(c.new_num, c.new_imag);
            if (new_nan && !old_nan)
                c.flags |= MW_ELEM_F_NAN_APPEARED;
            if (new_inf && !old_inf)
                c.flags |= MW_ELEM_F_INF_APPEARED;
            if (old_nan && !new_nan)
                c.flags |= MW_ELEM_F_NAN_GONE;
            if (old_inf && !new_inf)
                c.flags |= MW_ELEM_F_INF_GONE;
        }
    }
    return fn(&c, ctx);
}

int mw_elem_diff(const mw_elem_layout *l, const struct mw_rec_range *ranges, size_t n,
                 const unsigned char *old_value, const unsigned char *new_value,
                 size_t value_len, mw_elem_fn fn, void *ctx)
{
    size_t is = l->itemsize;
    uint64_t limit = l->nitems * is;
    unsigned char *ob = NULL, *nb = NULL, *ok = NULL, *nk = NULL, *touched = NULL;
    int64_t index[MW_REC_MAX_NDIM];
    uint64_t next_item = 0;
    int rc = 0;
    if (l->ndim > MW_REC_MAX_NDIM)
        return MW_EINVAL;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct mw_rec_range *r = &ranges[i];
        if (r->length == 0)
            continue;
        if (r->offset + r->length > limit || r->offset + r->length < r->offset) {
            rc = MW_EINVAL;
            break;
        }
        uint64_t first = r->offset / is, last = (r->offset + r->length - 1) / is;
        for (uint64_t m = first > next_item ? first : next_item; m <= last && !rc; m++) {
            uint64_t base = m * is, item;
            item_coords(l, m, index, &item);
            if (r->offset <= base && r->offset + r->length >= base + is) {
                /* The whole item is inside this range: its bytes are right there. */
                const unsigned char *o = r->old ? r->old + (base - r->offset) : NULL;
                const unsigned char *w = r->new_ + (base - r->offset);
                for (size_t k = 0; k < l->nscalars && !rc; k++) {
                    const struct mw_elem_scalar *s = &l->scalars[k];
                    rc = report(l, item, index, s, base, o ? o + s->offset : NULL,
                                w + s->offset, fn, ctx);
                }
                continue;
            }
            /* Pieced together from the ranges that touch it and the whole values. */
            if (!ob) {
                ob = malloc(is), nb = malloc(is), ok = malloc(is), nk = malloc(is);
                touched = malloc(is);
                if (!ob || !nb || !ok || !nk || !touched) {
                    rc = -ENOMEM;
                    break;
                }
            }
            int have_values = old_value && new_value && base + is <= value_len;
            if (have_values) {
                memcpy(ob, old_value + base, is);
                memcpy(nb, new_value + base, is);
            }
            memset(ok, have_values, is);
            memset(nk, have_values, is);
            memset(touched, 0, is);
            for (size_t j = i; j < n && ranges[j].offset < base + is; j++) {
                const struct mw_rec_range *g = &ranges[j];
                uint64_t a = g->offset > base ? g->offset : base;
                uint64_t b = g->offset + g->length < base + is ? g->offset + g->length : base + is;
                for (uint64_t x = a; x < b; x++) {
                    nb[x - base] = g->new_[x - g->offset];
                    nk[x - base] = 1;
                    touched[x - base] = 1;
                    if (g->old) {
                        ob[x - base] = g->old[x - g->offset];
                        ok[x - base] = 1;
                    } else {
                        ok[x - base] = 0;
                    }
                }
            }
            for (size_t k = 0; k < l->nscalars && !rc; k++) {
                const struct mw_elem_scalar *s = &l->scalars[k];
                int hit = 0, old_known = 1, new_known = 1;
                for (uint32_t x = s->offset; x < s->offset + s->size; x++) {
                    hit |= touched[x];
                    old_known &= ok[x];
                    new_known &= nk[x];
                }
                if (!hit)
                    continue;
                rc = report(l, item, index, s, base, old_known ? ob + s->offset : NULL,
                            new_known ? nb + s->offset : NULL, fn, ctx);
            }
        }
        if (last + 1 > next_item)
            next_item = last + 1;
    }
    free(ob);
    free(nb);
    free(ok);
    free(nk);
    free(touched);
    return rc;
}

int mw_elem_align_ranges(size_t itemsize, const struct mw_rec_range *in, size_t n,
                         const unsigned char *old_value, const unsigned char *new_value,
                         size_t value_len, struct mw_rec_range *out, size_t *nout)
{
    size_t k = 0;
    if (itemsize <= 1) {
        memcpy(out, in, n * sizeof *in);
        *nout = n;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].length == 0)
            continue;
        uint64_t a = in[i].offset / itemsize * itemsize;
        uint64_t b = (in[i].offset + in[i].length + itemsize - 1) / itemsize * itemsize;
        if (b > value_len)
            b = value_len;
        if (a >= b || !new_value)
            return MW_EINVAL;
        int old_known = in[i].old != NULL && old_value != NULL;
        if (k > 0 && out[k - 1].offset + out[k - 1].length >= a) {
            struct mw_rec_range *p = &out[k - 1];
            if (b > p->offset + p->length)
                p->length = b - p->offset;
            if (!old_known)
                p->old = NULL;
            continue;
        }
        out[k++] = (struct mw_rec_range){a, b - a, old_known ? old_value + a : NULL,
                                         new_value + a};
    }
    *nout = k;
    return 0;
}

/* ---- statistics ------------------------------------------------------------------- */

void mw_elem_stats_init(struct mw_elem_stats *s)
{
    memset(s, 0, sizeof *s);
    s->delta_min = INFINITY;
    s->delta_max = -INFINITY;
}

void mw_elem_stats_add(struct mw_elem_stats *s, const struct mw_elem_change *c)
{
    s->elements++;
    if (!c->old || !c->new_)
        s->unknown++;
    if (c->flags & MW_ELEM_F_NAN_APPEARED)
        s->nan_appeared++;
    if (c->flags & MW_ELEM_F_INF_APPEARED)
        s->inf_appeared++;
    if (c->flags & MW_ELEM_F_NAN_GONE)
        s->nan_gone++;
    if (c->flags & MW_ELEM_F_INF_GONE)
        s->inf_gone++;
    if (!c->old || !c->new_ || c->scalar->kind == MW_ELEM_COMPLEX)
        return;
    double d = c->new_num - c->old_num;
    if (!isfinite(d))
        return;
    s->deltas++;
    s->delta_sum += d;
    if (d < s->delta_min)
        s->delta_min = d;
    if (d > s->delta_max)
        s->delta_max = d;
}
