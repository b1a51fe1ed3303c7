/* Typed elements: turning changed byte ranges of an object with an element format (numpy,
 * torch, array.array, ctypes, memoryview) into changed elements with their index and
 * their old and new values.
 *
 * Python-free and SQLite-free: the trace writer (memwatch trace, off the traced thread),
 * the readers (query, diff, report) and the traced process (memwatch.Change.elements,
 * --on-nan) all use it. Layouts and locating are elements.c's (with the format parser,
 * elements_parse.c), values as numbers and text elements_value.c's, and changes as
 * elements elements_diff.c's.
 *
 * Vocabulary. An object is an array of `shape` ITEMS of `itemsize` bytes each; an item is
 * described by a struct-module / PEP 3118 format string ('<f', 'Zd', 'T{<i:x:<d:y:}', ...)
 * and made of one or more SCALARS (one for plain dtypes, one per field for structures,
 * one per entry of a sub-array). A changed ELEMENT is one scalar of one item: its index
 * is the item's coordinates in the object's shape plus, for structured items, the path of
 * the scalar inside the item ("y", "pos[1]", "n.q").
 *
 * Coordinates of byte offsets (the trace's ranges): for a contiguous object (C or Fortran
 * order) an offset counts bytes from the object's lowest byte in memory, so an item's
 * coordinates follow from the strides; for a non-contiguous view an offset counts bytes
 * of the view's value in C order (what tobytes() gives), so item k is at k * itemsize. */
#ifndef MW_TRACE_ELEMENTS_H
#define MW_TRACE_ELEMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"   /* struct mw_rec_range */

enum mw_elem_kind {
    MW_ELEM_PAD = 0,      /* 'x': not a value; never reported */
    MW_ELEM_BOOL,         /* '?' */
    MW_ELEM_INT,          /* b h i l q n */
    MW_ELEM_UINT,         /* B H I L Q N */
    MW_ELEM_FLOAT,        /* e f d g */
    MW_ELEM_COMPLEX,      /* Zf Zd Zg */
    MW_ELEM_CHAR,         /* 'c': one byte */
    MW_ELEM_BYTES,        /* 's', 'p': a byte string of `size` bytes */
    MW_ELEM_TEXT,         /* 'w' (UCS-4), 'u' (UCS-2 or UCS-4 by item size): text */
    MW_ELEM_POINTER,      /* P O z Z & */
};

/* One scalar of an item. */
struct mw_elem_scalar {
    uint32_t offset;      /* from the item's first byte */
    uint32_t size;        /* bytes */
    uint8_t kind;         /* enum mw_elem_kind */
    uint8_t swap;         /* stored in the other byte order than this machine's */
    uint8_t unit;         /* bytes per character (TEXT) or per component (COMPLEX) */
    char code;            /* the format letter: 'f', 'd', 'e', 'g', 'i', ... */
    const char *path;     /* inside the item: "" for a plain item, else "y", "pos[1]", ... */
};

typedef struct mw_elem_layout mw_elem_layout;

/* What the trace (objects table, OBJECT record) or the buffer protocol knows of an object. */
struct mw_elem_desc {
    const char *format;       /* NULL: unknown (no layout) */
    const char *type_name;    /* Python type, used to tell raw bytes from typed arrays */
    int64_t itemsize;         /* <= 0: from the format */
    int ndim;                 /* < 0: unknown (one dimension of size/itemsize) */
    const int64_t *shape;     /* ndim entries, or NULL */
    const int64_t *strides;   /* ndim entries in bytes, or NULL (C order) */
    uint64_t size;            /* bytes of the value (len(tobytes())) */
    int contiguous;           /* 1, 0, or -1: derive from shape and strides */
};

/* Parses the format and lays out the object. MW_EFORMAT for a format this cannot read (the
 * object is then shown as bytes), MW_EINVAL for an inconsistent description, -ENOMEM. */
int mw_elem_layout_create(const struct mw_elem_desc *d, mw_elem_layout **out);
void mw_elem_layout_destroy(mw_elem_layout *l);   /* accepts NULL */

/* 1 when the object should be shown as elements by default: it has a known element type
 * and is not plain bytes (bytearray, bytes, mmap, a 'B' memoryview, watch_buffer). */
int mw_elem_layout_typed(const mw_elem_layout *l);
/* 1 when some scalar is a float or complex (NaN and Inf can appear). */
int mw_elem_layout_has_float(const mw_elem_layout *l);
size_t mw_elem_layout_itemsize(const mw_elem_layout *l);
/* The scalars of an item, in offset order (pads excluded). */
const struct mw_elem_scalar *mw_elem_layout_scalars(const mw_elem_layout *l, size_t *n);

/* How an array of ndim dimensions with these shape and strides (in bytes) lies in memory:
 * 'C' when without gaps in row-major order, else 'F' when without gaps in column-major
 * order, else 0 (gaps, another order of dimensions, or negative strides). */
char mw_elem_contiguous_order(int ndim, const int64_t *shape, const int64_t *strides,
                              size_t itemsize);

/* Where the byte at offset lies: the item's number in C order, its coordinates (ndim
 * entries written to index, which may be NULL), and the scalar (NULL for padding).
 * MW_EINVAL when offset is past the object. */
int mw_elem_locate(const mw_elem_layout *l, uint64_t offset, uint64_t *item, int64_t *index,
                   const struct mw_elem_scalar **scalar);

/* One changed element (see mw_elem_diff). Pointers are valid during the callback only. */
struct mw_elem_change {
    uint64_t item;                  /* the item's number in C order */
    int ndim;
    const int64_t *index;           /* the item's coordinates: ndim entries */
    const struct mw_elem_scalar *scalar;   /* scalar->path names it inside the item */
    uint64_t offset;                /* of the scalar's first byte, in the ranges' coordinates */
    const unsigned char *old;       /* scalar->size bytes; NULL: unknown */
    const unsigned char *new_;      /* scalar->size bytes; NULL: unknown (partly seen) */
    /* Numeric kinds (bool, int, uint, float, complex: the real part) with known bytes;
     * NAN otherwise. imag: complex only. */
    double old_num, new_num, old_imag, new_imag;
    unsigned flags;                 /* MW_ELEM_F_* */
};

#define MW_ELEM_F_NAN_APPEARED 0x1u    /* new is NaN, old was not (or was unknown) */
#define MW_ELEM_F_INF_APPEARED 0x2u    /* new is +-Inf, old was not (or was unknown) */
#define MW_ELEM_F_NAN_GONE 0x4u        /* old was NaN, new is not */
#define MW_ELEM_F_INF_GONE 0x8u        /* old was +-Inf, new is not */
#define MW_ELEM_F_NONFINITE_APPEARED (MW_ELEM_F_NAN_APPEARED | MW_ELEM_F_INF_APPEARED)

/* Returns 0 to go on; anything else stops mw_elem_diff, which returns it. */
typedef int (*mw_elem_fn)(const struct mw_elem_change *c, void *ctx);

/* Calls fn for each element whose bytes differ in the change made of ranges[0..n) (in
 * ascending offset order, not overlapping; old may be NULL in a range: unknown). Each
 * element is reported once, in ascending order.
 *
 * An element that a range covers only in part needs its other bytes: they are taken from
 * old_value/new_value (the whole value before and after the change, value_len bytes, in
 * the ranges' coordinates) when given, else that element's bytes are reported unknown
 * (NULL). Ranges made by mw_elem_align_ranges never cover an element in part.
 * Returns 0, fn's non-zero value, or MW_EINVAL (a range past the object). */
int mw_elem_diff(const mw_elem_layout *l, const struct mw_rec_range *ranges, size_t n,
                 const unsigned char *old_value, const unsigned char *new_value,
                 size_t value_len, mw_elem_fn fn, void *ctx);

/* Widens exact changed ranges to whole items (itemsize bytes from offset 0), merging the
 * ones that then touch, with bytes taken from old_value/new_value (value_len bytes each):
 * so that a reader of the trace can decode every changed element without the rest of the
 * object. out has room for n entries (widening never makes more ranges); *nout receives
 * the count. A widened range's old is NULL when any of its input ranges' old was. Its
 * pointers point into old_value/new_value. itemsize 1 copies the ranges unchanged. */
int mw_elem_align_ranges(size_t itemsize, const struct mw_rec_range *in, size_t n,
                         const unsigned char *old_value, const unsigned char *new_value,
                         size_t value_len, struct mw_rec_range *out, size_t *nout);

/* Per-change numeric summary. Deltas are new - old over elements with both values known,
 * numeric, not complex, and a finite difference. */
struct mw_elem_stats {
    uint64_t elements;        /* changed elements (scalars) */
    uint64_t unknown;         /* of which old or new is unknown */
    uint64_t deltas;          /* of which a delta was counted */
    double delta_min, delta_max, delta_sum;
    uint64_t nan_appeared, nan_gone, inf_appeared, inf_gone;
};
void mw_elem_stats_init(struct mw_elem_stats *s);
void mw_elem_stats_add(struct mw_elem_stats *s, const struct mw_elem_change *c);

/* Text of a scalar's value from its bytes, Python-like: 0.1334, -3, True, (1+2j), nan,
 * inf, b'ab', 'text', 0x7f12... Floats are the shortest text that reads back as the same
 * value at the scalar's precision. Writes at most size bytes (NUL-terminated); returns the
 * length it needed. A NULL p gives "?". */
size_t mw_elem_format_value(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                            size_t size);
/* The scalar's numeric value (real part) and imaginary part; 0 when numeric, -1 when not. */
int mw_elem_decode_number(const struct mw_elem_scalar *s, const unsigned char *p, double *re,
                          double *im);

/* "tag[3, 17]", "pts[2].y", "s.arr[1]", "x" (a 0-d object): the element's name for people.
 * Returns the length needed, writes at most size bytes (NUL-terminated). */
size_t mw_elem_format_name(const char *tag, int ndim, const int64_t *index,
                           const struct mw_elem_scalar *s, char *buf, size_t size);
/* "[3, 17]": the coordinates as a JSON array. Same return convention. */
size_t mw_elem_format_index(int ndim, const int64_t *index, char *buf, size_t size);
/* What a change's MW_ELEM_F_* flags say, for people: "NaN appeared", "Inf appeared", "NaN
 * gone" or "Inf gone" (the first that applies, in that order), or NULL. */
const char *mw_elem_flags_note(unsigned flags);

#endif
