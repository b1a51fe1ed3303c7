/* Parsing element formats (see elements_parse.h). Byte order markers stay in force until
 * the next one, across nested structures (elements.c, DESIGN). */
#include "elements_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "elements.h"
#include "mw_error.h"
#include "mw_grow.h"

#define MAX_DEPTH 32
#define HOST_LITTLE (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

void mw_elem_nodes_free(struct mw_elem_node *n, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(n[i].name);
        mw_elem_nodes_free(n[i].children, n[i].nchildren);
    }
    free(n);
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

/* A byte order marker at the cursor: 1 when there was one (it is now in force). */
static int parse_order(struct parser *ps)
{
    switch (*ps->p) {
    case '@': case '^':
        ps->native = 1, ps->little = HOST_LITTLE;
        break;
    case '=':
        ps->native = 0, ps->little = HOST_LITTLE;
        break;
    case '<':
        ps->native = 0, ps->little = 1;
        break;
    case '>': case '!':
        ps->native = 0, ps->little = 0;
        break;
    default:
        return 0;
    }
    ps->p++;
    return 1;
}

/* Size and kind of a scalar code in the current mode; 0 when unknown. */
static int scalar_info(const struct parser *ps, char code, struct mw_elem_node *n)
{
    int nat = ps->native;
    n->type = MW_NODE_SCALAR;
    n->code = code;
    n->unit = 0;
    switch (code) {
    case 'x': n->type = MW_NODE_PAD; n->kind = MW_ELEM_PAD; n->size = 1; break;
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
    n->swap = n->size > 1 && ps->little != HOST_LITTLE;
    return 0;
}

static int parse_seq(struct parser *ps, char end, struct mw_elem_node **out, size_t *nout);
static int parse_item(struct parser *ps, struct mw_elem_node *n);

/* A sub-array shape after its '(': "2,3)". */
static int parse_subdims(struct parser *ps, struct mw_elem_node *n)
{
    for (;;) {
        uint64_t d;
        while (*ps->p == ' ')
            ps->p++;
        if (n->ndims == MW_ELEM_MAX_SUBDIMS || parse_uint(ps, &d))
            return MW_EFORMAT;
        n->dims[n->ndims++] = (uint32_t)d;
        while (*ps->p == ' ')
            ps->p++;
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        return *ps->p++ == ')' ? 0 : MW_EFORMAT;
    }
}

/* "T{...}" after its '{': a structure. */
static int parse_struct(struct parser *ps, struct mw_elem_node *n, uint64_t count)
{
    if (++ps->depth > MAX_DEPTH)
        return MW_EFORMAT;
    int rc = parse_seq(ps, '}', &n->children, &n->nchildren);
    ps->depth--;
    if (rc)
        return rc;
    n->type = MW_NODE_STRUCT;
    n->code = 'T';
    n->count = count;
    return 0;
}

/* "Zf", "Zd", "Zg" after the 'Z': a complex number of two floats of code c. */
static int parse_complex(struct parser *ps, struct mw_elem_node *n, char c, uint64_t count)
{
    if (scalar_info(ps, c, n))
        return MW_EFORMAT;
    n->kind = MW_ELEM_COMPLEX;
    n->unit = (uint8_t)n->size;
    n->align = c == 'g' ? (uint32_t)_Alignof(long double) : n->size;
    n->size *= 2;
    n->code = c;
    n->count = count;
    return 0;
}

/* "&..." after the '&': a pointer to something, whose format is of no interest here. */
static int parse_pointer(struct parser *ps, struct mw_elem_node *n, uint64_t count)
{
    struct mw_elem_node target;
    int rc = parse_item(ps, &target);
    free(target.name);
    mw_elem_nodes_free(target.children, target.nchildren);
    if (rc)
        return rc;
    scalar_info(ps, 'P', n);
    n->count = count;
    return 0;
}

/* A scalar or pad code; for strings, count is the length of one value. */
static int parse_scalar(struct parser *ps, struct mw_elem_node *n, char code, uint64_t count)
{
    if (scalar_info(ps, code, n))
        return MW_EFORMAT;
    if (n->kind == MW_ELEM_BYTES || n->kind == MW_ELEM_TEXT) {
        n->size *= (uint32_t)count;
        n->count = 1;
        if (n->size == 0)
            n->type = MW_NODE_PAD;
    } else {
        n->count = count;
    }
    return 0;
}

/* ":name:" after an item, when there is one. */
static int parse_name(struct parser *ps, struct mw_elem_node *n)
{
    if (*ps->p != ':')
        return 0;
    const char *start = ++ps->p;
    while (*ps->p && *ps->p != ':')
        ps->p++;
    if (*ps->p != ':')
        return MW_EFORMAT;
    n->name = strndup(start, (size_t)(ps->p - start));
    if (!n->name)
        return -ENOMEM;
    ps->p++;
    return 0;
}

/* One item: [(dims)] [order] [count] code [:name:] */
static int parse_item(struct parser *ps, struct mw_elem_node *n)
{
    memset(n, 0, sizeof *n);
    n->count = 1;
    int rc;
    if (*ps->p == '(') {
        ps->p++;
        if ((rc = parse_subdims(ps, n)))
            return rc;
    }
    /* ctypes and numpy put the byte order after the shape: '(3)<h', '(2)=f' */
    while (parse_order(ps))
        ;
    uint64_t count = 1;
    if (is_digit(*ps->p) && parse_uint(ps, &count))
        return MW_EFORMAT;
    char code = *ps->p;
    if (!code)
        return MW_EFORMAT;
    ps->p++;
    if (code == 'T' && *ps->p == '{') {
        ps->p++;
        rc = parse_struct(ps, n, count);
    } else if (code == 'Z' && (*ps->p == 'f' || *ps->p == 'd' || *ps->p == 'g')) {
        rc = parse_complex(ps, n, *ps->p++, count);
    } else if (code == '&') {
        return parse_pointer(ps, n, count);   /* the target's name (if any) went with it */
    } else {
        rc = parse_scalar(ps, n, code, count);
    }
    return rc ? rc : parse_name(ps, n);
}

static int parse_seq(struct parser *ps, char end, struct mw_elem_node **out, size_t *nout)
{
    struct mw_elem_node *v = NULL;
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
        if (parse_order(ps))
            continue;
        if (MW_GROW(v, cap, n + 1) != 0) {
            rc = -ENOMEM;
            break;
        }
        if ((rc = parse_item(ps, &v[n]))) {
            free(v[n].name);
            mw_elem_nodes_free(v[n].children, v[n].nchildren);
            break;
        }
        n++;
    }
    if (rc) {
        mw_elem_nodes_free(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

int mw_elem_parse(const char *format, struct mw_elem_node **out, size_t *n)
{
    struct parser ps = {.p = format, .native = 1, .little = HOST_LITTLE};
    return parse_seq(&ps, '\0', out, n);
}
