/* Values of elements (see elements.h): decoding a scalar's bytes into a number, and
 * writing values, names and indices as text the way Python would show them. */
#include "elements.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_LITTLE (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

/* ---- decoding --------------------------------------------------------------------- */

/* n bytes of a scalar at p, in this machine's byte order, into dst. */
static void load(const struct mw_elem_scalar *s, const unsigned char *p, unsigned char *dst,
                 size_t n)
{
    if (s->swap)
        for (size_t i = 0; i < n; i++)
            dst[i] = p[n - 1 - i];
    else
        memcpy(dst, p, n);
}

/* The bits of an integer or pointer scalar (at most 8 bytes wide) as an unsigned number. */
static uint64_t load_uint(const struct mw_elem_scalar *s, const unsigned char *p)
{
    unsigned char b[64] = {0};
    uint64_t u = 0;
    load(s, p, b, s->size);
    if (HOST_LITTLE)
        for (int i = (int)s->size - 1; i >= 0; i--)
            u = (u << 8) | b[i];
    else
        for (unsigned i = 0; i < s->size; i++)
            u = (u << 8) | b[i];
    return u;
}

/* An integer scalar's bits, sign-extended when it is signed. */
static uint64_t extend_sign(const struct mw_elem_scalar *s, uint64_t u)
{
    if (s->kind == MW_ELEM_INT && s->size < 8 && (u >> (s->size * 8 - 1)) & 1)
        u |= ~(uint64_t)0 << (s->size * 8);
    return u;
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

static int load_float(const struct mw_elem_scalar *s, const unsigned char *p, long double *v)
{
    unsigned char b[64] = {0};
    if (s->size > sizeof b)
        return -1;
    load(s, p, b, s->size);
    return decode_float(s->size, b, v);
}

/* A complex scalar: two floats of s->unit bytes, each in the scalar's byte order. */
static int load_complex(const struct mw_elem_scalar *s, const unsigned char *p, long double *re,
                        long double *im)
{
    unsigned char b[64] = {0};
    unsigned u = s->unit;
    if (s->size > sizeof b)
        return -1;
    load(s, p, b, u);
    load(s, p + u, b + u, u);
    return decode_float(u, b, re) || decode_float(u, b + u, im) ? -1 : 0;
}

int mw_elem_decode_number(const struct mw_elem_scalar *s, const unsigned char *p, double *re,
                          double *im)
{
    long double r, i;
    *re = NAN;
    if (im)
        *im = 0;
    if (!p || s->size > 64)
        return -1;
    switch (s->kind) {
    case MW_ELEM_BOOL:
        *re = p[0] != 0;
        return 0;
    case MW_ELEM_INT:
    case MW_ELEM_UINT: {
        uint64_t u = extend_sign(s, load_uint(s, p));
        *re = s->kind == MW_ELEM_INT ? (double)(int64_t)u : (double)u;
        return 0;
    }
    case MW_ELEM_FLOAT:
        if (load_float(s, p, &r))
            return -1;
        *re = (double)r;
        return 0;
    case MW_ELEM_COMPLEX:
        if (load_complex(s, p, &r, &i))
            return -1;
        *re = (double)r;
        if (im)
            *im = (double)i;
        return 0;
    default:
        return -1;
    }
}

/* ---- values as text ------------------------------------------------------------------- */

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

/* "(1+2j)": a complex value, its parts bare. */
static size_t format_complex(long double r, long double i, unsigned unit, char *buf,
                             size_t size)
{
    char rs[64], is[64];
    repr_float(r, unit, 1, rs, sizeof rs);
    repr_float(i, unit, 1, is, sizeof is);
    int plus = is[0] != '-';
    return (size_t)snprintf(buf, size, "(%s%s%sj)", rs, plus ? "+" : "", is);
}

/* b'...': a character or a byte string. */
static size_t format_bytes(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                           size_t size)
{
    size_t len = 0, n = s->size;
    if (s->kind == MW_ELEM_BYTES)
        while (n > 0 && p[n - 1] == 0)
            n--;   /* numpy's bytes_ drops trailing NULs */
    put(buf, size, &len, "b'", 2);
    for (size_t i = 0; i < n; i++)
        put_byte_repr(buf, size, &len, p[i]);
    put(buf, size, &len, "'", 1);
    return len;
}

/* The code points of a text scalar (at most max, trailing NULs dropped, as numpy's str_
 * does); returns how many. */
static size_t text_code_points(const struct mw_elem_scalar *s, const unsigned char *p,
                               uint32_t *cps, size_t max)
{
    unsigned char b[64] = {0};
    unsigned u = s->unit ? s->unit : 4;
    size_t n = s->size / u;
    if (n > max)
        n = max;
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
    return n;
}

/* One code point of a str's repr: escaped as Python does, else UTF-8. */
static void put_code_point(char *buf, size_t size, size_t *len, uint32_t cp)
{
    char e[8];
    size_t k = 0;
    if (cp < 0x20 || cp == 0x7f || cp == '\'' || cp == '\\' || (cp >= 0xd800 && cp <= 0xdfff) ||
        cp > 0x10ffff) {
        if (cp < 0x100) {
            put_byte_repr(buf, size, len, cp);
            return;
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
    put(buf, size, len, e, k);
}

/* '...': a text scalar (UCS-2 or UCS-4). */
static size_t format_text(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                          size_t size)
{
    uint32_t cps[1024];
    size_t len = 0, n = text_code_points(s, p, cps, 1024);
    put(buf, size, &len, "'", 1);
    for (size_t i = 0; i < n; i++)
        put_code_point(buf, size, &len, cps[i]);
    put(buf, size, &len, "'", 1);
    return len;
}

/* Anything else: its bytes in hex. */
static size_t format_hex(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                         size_t size)
{
    size_t len = 0;
    for (size_t i = 0; i < s->size; i++) {
        char h[3];
        snprintf(h, sizeof h, "%02x", p[i]);
        put(buf, size, &len, h, 2);
    }
    return len;
}

size_t mw_elem_format_value(const struct mw_elem_scalar *s, const unsigned char *p, char *buf,
                            size_t size)
{
    long double r, i;
    if (size)
        buf[0] = '\0';
    if (!p) {
        size_t len = 0;
        put(buf, size, &len, "?", 1);
        return len;
    }
    switch (s->kind) {
    case MW_ELEM_BOOL:
        return (size_t)snprintf(buf, size, "%s", p[0] ? "True" : "False");
    case MW_ELEM_INT:
        return (size_t)snprintf(buf, size, "%lld",
                                (long long)(int64_t)extend_sign(s, load_uint(s, p)));
    case MW_ELEM_UINT:
        return (size_t)snprintf(buf, size, "%llu", (unsigned long long)load_uint(s, p));
    case MW_ELEM_FLOAT:
        if (load_float(s, p, &r) == 0)
            return repr_float(r, s->size, 0, buf, size);
        break;
    case MW_ELEM_COMPLEX:
        if (load_complex(s, p, &r, &i) == 0)
            return format_complex(r, i, s->unit, buf, size);
        break;
    case MW_ELEM_CHAR:
    case MW_ELEM_BYTES:
        return format_bytes(s, p, buf, size);
    case MW_ELEM_TEXT:
        return format_text(s, p, buf, size);
    case MW_ELEM_POINTER:
        if (s->size <= 8)
            return (size_t)snprintf(buf, size, "0x%llx", (unsigned long long)load_uint(s, p));
        break;
    default:
        break;
    }
    return format_hex(s, p, buf, size);
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

const char *mw_elem_flags_note(unsigned flags)
{
    if (flags & MW_ELEM_F_NAN_APPEARED)
        return "NaN appeared";
    if (flags & MW_ELEM_F_INF_APPEARED)
        return "Inf appeared";
    if (flags & MW_ELEM_F_NAN_GONE)
        return "NaN gone";
    if (flags & MW_ELEM_F_INF_GONE)
        return "Inf gone";
    return NULL;
}
