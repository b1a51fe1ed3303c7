/* JSON strings and hex (see json_out.h). */
#include "json_out.h"

#include <stdint.h>

static const char hex_digits[] = "0123456789abcdef";

size_t mw_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* One ASCII byte, escaped as JSON needs (and as flags ask). */
static void put_ascii(FILE *f, unsigned c, unsigned flags)
{
    switch (c) {
    case '"': fputs("\\\"", f); return;
    case '\\': fputs("\\\\", f); return;
    case '\n': fputs("\\n", f); return;
    case '\t': fputs("\\t", f); return;
    case '\r': fputs("\\r", f); return;
    case '<': case '>': case '&':
        if (flags & MW_JSON_HTML_SAFE) {
            fprintf(f, "\\u%04x", c);
            return;
        }
        break;
    default:
        if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            return;
        }
    }
    putc((int)c, f);
}

void mw_json_string(FILE *f, const char *s, size_t n, unsigned flags)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    putc('"', f);
    while (p < end) {
        if (*p < 0x80) {
            put_ascii(f, *p++, flags);
            continue;
        }
        size_t len = mw_utf8_len(p, (size_t)(end - p));
        if (!len) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }
        /* U+2028 and U+2029 (e2 80 a8/a9) end a line in a script. */
        if ((flags & MW_JSON_HTML_SAFE) && len == 3 && p[0] == 0xe2 && p[1] == 0x80 &&
            (p[2] == 0xa8 || p[2] == 0xa9))
            fprintf(f, "\\u%04x", 0x2000u | (p[2] - 0x80u));
        else
            fwrite(p, 1, len, f);
        p += len;
    }
    putc('"', f);
}

void mw_json_hex(FILE *f, const unsigned char *p, size_t n)
{
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        putc(hex_digits[p[i] >> 4], f);
        putc(hex_digits[p[i] & 15], f);
    }
    putc('"', f);
}

void mw_hex(char *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}
