/* The format tree of elements.c (see its DESIGN): a struct-module / PEP 3118 format string
 * parsed into scalars, pads and structures, with repeat counts and sub-array shapes, before
 * it is laid out. For the files of the elements module only. */
#ifndef MW_TRACE_ELEMENTS_PARSE_H
#define MW_TRACE_ELEMENTS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define MW_ELEM_MAX_SUBDIMS 8

enum mw_elem_node_type { MW_NODE_SCALAR, MW_NODE_PAD, MW_NODE_STRUCT };

struct mw_elem_node {
    enum mw_elem_node_type type;
    char code;
    uint8_t kind, swap, unit;  /* as in struct mw_elem_scalar */
    uint32_t size;            /* one repeat, for scalars and pads */
    uint32_t align;           /* natural alignment of one repeat (C rules) */
    uint64_t count;           /* repeats (a pad: bytes; a string: 1) */
    int ndims;                /* sub-array shape: '(2,3)f' */
    uint32_t dims[MW_ELEM_MAX_SUBDIMS];
    char *name;               /* NULL: unnamed */
    struct mw_elem_node *children;   /* MW_NODE_STRUCT */
    size_t nchildren;
};

/* Parses a whole format: 0 and its top-level nodes (possibly none), MW_EFORMAT for a format
 * this cannot read, or -ENOMEM. */
int mw_elem_parse(const char *format, struct mw_elem_node **out, size_t *n);
void mw_elem_nodes_free(struct mw_elem_node *n, size_t count);

#endif
