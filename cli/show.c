/* Text shown to people on a terminal (see show.h).
 *
 * A text is read as units: a character shown as it is (ASCII or a valid UTF-8 sequence),
 * or a character or byte shown as escapes. The first pass finds whether the text needs
 * quoting and how wide it is; the second writes it, whole or as its start and its end
 * around MW_SHOW_CUT, so that a four-megabyte tag costs one scan, and a table cell or a
 * heading stays the width it is given. */
#include "show.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"

struct unit {
    size_t len;     /* bytes of the text */
    int raw;        /* 1: shown as it is; 0: each byte escaped */
};

/* Code points that a terminal acts on or that reorder text: the C1 controls and the
 * bidirectional embeddings, overrides and isolates. */
static int special_code_point(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

static struct unit next_unit(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return (struct unit){1, p[0] >= 0x20 && p[0] != 0x7f};
    size_t len = mw_utf8_len(p, n);
    if (!len)
        return (struct unit){1, 0};
    uint32_t cp = p[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (p[i] & 0x3fu);
    return (struct unit){len, !special_code_point(cp)};
}

/* The escape of one byte, without its backslash: "n" for a newline, "033" for ESC. */
static const char *escape_of(unsigned char c, char out[4])
{
    static const char named[] = {['\a'] = 'a', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
                                 ['\v'] = 'v', ['\f'] = 'f', ['\r'] = 'r'};
    if (c < sizeof named && named[c]) {
        out[0] = named[c];
        out[1] = '\0';
    } else {
        out[0] = (char)('0' + (c >> 6));
        out[1] = (char)('0' + ((c >> 3) & 7));
        out[2] = (char)('0' + (c & 7));
        out[3] = '\0';
    }
    return out;
}

/* Characters (= bytes: escapes are ASCII) unit u at p takes when shown. */
static size_t unit_width(const unsigned char *p, struct unit u, int quote)
{
    if (u.raw)
        return quote && (p[0] == '"' || p[0] == '\\') ? 2 : 1;
    size_t w = 0;
    char e[4];
    for (size_t i = 0; i < u.len; i++)
        w += 1 + strlen(escape_of(p[i], e));
    return w;
}

/* Appends unit u at p as shown to out (room for it is there); returns the new end. */
static char *put_unit(char *out, const unsigned char *p, struct unit u, int quote)
{
    if (u.raw) {
        if (quote && (p[0] == '"' || p[0] == '\\'))
            *out++ = '\\';
        memcpy(out, p, u.len);
        return out + u.len;
    }
    char e[4];
    for (size_t i = 0; i < u.len; i++) {
        *out++ = '\\';
        size_t k = strlen(escape_of(p[i], e));
        memcpy(out, e, k);
        out += k;
    }
    return out;
}

/* Whether the text needs quoting (never when may_quote is 0), and its width and size
 * (bytes) when shown whole. */
static int measure(const unsigned char *p, size_t n, int may_quote, size_t *width,
                   size_t *bytes)
{
    int quote = 0;
    for (size_t i = 0; may_quote && i < n;) {
        struct unit u = next_unit(p + i, n - i);
        quote |= !u.raw || p[i] == '"' || p[i] == '\\';
        i += u.len;
    }
    *width = quote ? 2 : 0;
    *bytes = *width;
    for (size_t i = 0; i < n;) {
        struct unit u = next_unit(p + i, n - i);
        size_t w = unit_width(p + i, u, quote);
        *width += w;
        *bytes += u.raw && w == 1 ? u.len : w;   /* a character of u.len bytes, or escapes */
        i += u.len;
    }
    return quote;
}

/* Where the last units of p[from, n) that fit in width characters start. */
static size_t tail_start(const unsigned char *p, size_t from, size_t n, size_t width,
                         int quote)
{
    /* A ring of the last units' offsets and widths: each is at least one character wide,
     * so width + 1 entries hold every unit that can fit. */
    size_t cap = width + 1, head = 0, count = 0, sum = 0;
    size_t *off = malloc(cap * sizeof *off), *wid = malloc(cap * sizeof *wid);
    if (!off || !wid) {
        free(off);
        free(wid);
        return n;   /* no tail: the start alone is shown */
    }
    for (size_t i = from; i < n;) {
        struct unit u = next_unit(p + i, n - i);
        size_t w = unit_width(p + i, u, quote);
        size_t at = (head + count) % cap;
        if (count == cap) {   /* full: the oldest goes */
            sum -= wid[head];
            head = (head + 1) % cap;
            count--;
            at = (head + count) % cap;
        }
        off[at] = i;
        wid[at] = w;
        count++;
        sum += w;
        while (sum > width && count) {
            sum -= wid[head];
            head = (head + 1) % cap;
            count--;
        }
        i += u.len;
    }
    size_t start = count ? off[head] : n;
    free(off);
    free(wid);
    return start;
}

static char *show(const char *s, size_t n, size_t max, int *cut, int may_quote)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    if (!s)
        n = 0;
    size_t width, bytes;
    int quote = measure(p, n, may_quote, &width, &bytes);
    int shorten = max && width > max;
    /* Shortened: the start, the cut mark, the end, each unit at most 16 bytes. */
    size_t room = shorten ? 16 * max + sizeof MW_SHOW_CUT + 2 : bytes;
    char *out = malloc(room + 1), *o = out;
    if (!out)
        return NULL;
    if (quote)
        *o++ = '"';
    size_t i = 0;
    if (shorten) {
        size_t budget = max > 3 + (quote ? 2u : 0u) ? max - 1 - (quote ? 2 : 0) : 1;
        size_t head_w = budget / 2, used = 0;
        while (i < n) {
            struct unit u = next_unit(p + i, n - i);
            size_t w = unit_width(p + i, u, quote);
            if (used + w > head_w)
                break;
            o = put_unit(o, p + i, u, quote);
            used += w;
            i += u.len;
        }
        memcpy(o, MW_SHOW_CUT, sizeof MW_SHOW_CUT - 1);
        o += sizeof MW_SHOW_CUT - 1;
        i = tail_start(p, i, n, budget - head_w, quote);
        if (cut)
            *cut = 1;
    }
    while (i < n) {
        struct unit u = next_unit(p + i, n - i);
        o = put_unit(o, p + i, u, quote);
        i += u.len;
    }
    if (quote)
        *o++ = '"';
    *o = '\0';
    return out;
}

char *mw_show(const char *s, size_t n, size_t max, int *cut)
{
    return show(s, n, max, cut, 1);
}

char *mw_show_repr(const char *s, size_t n, size_t max, int *cut)
{
    return show(s, n, max, cut, 0);
}

const char *mw_show_name(const char *s)
{
    static char slots[MW_SHOW_SLOTS][16 * MW_SHOW_NAME_MAX + 16];
    static unsigned next;
    char *slot = slots[next++ % MW_SHOW_SLOTS];
    if (!s)
        return "'(null)'";
    char *shown = mw_show(s, strlen(s), MW_SHOW_NAME_MAX - 2, NULL);
    if (!shown)
        return "'(out of memory)'";
    if (shown[0] == '"')
        snprintf(slot, sizeof slots[0], "%s", shown);
    else
        snprintf(slot, sizeof slots[0], "'%s'", shown);
    free(shown);
    return slot;
}

void mw_show_message(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    char e[4];
    for (size_t i = 0; i < n;) {
        struct unit u = next_unit(p + i, n - i);
        if (u.raw)
            fwrite(p + i, 1, u.len, f);
        else
            for (size_t k = 0; k < u.len; k++)
                fprintf(f, "\\%s", escape_of(p[i + k], e));
        i += u.len;
    }
}

size_t mw_show_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xc0) != 0x80;
    return w;
}

/* Bytes that no POSIX shell acts on anywhere in a word (and UTF-8 beyond ASCII). */
static int shell_plain(unsigned char c)
{
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("._/+-,:@%=", c);
}

char *mw_show_shell_word(const char *path)
{
    char *shown = mw_show(path, strlen(path), 0, NULL);
    if (!shown)
        return NULL;
    const char *lead = path[0] == '-' ? "./" : "";
    int plain = shown[0] != '"', has_quote = 0, all_plain = 1;
    for (const unsigned char *p = (const unsigned char *)shown; *p; p++) {
        has_quote |= *p == '\'';
        all_plain &= shell_plain(*p) != 0;
    }
    /* Quoted by mw_show ("..." with C escapes): only its $, ` and \ left to escape; a
     * plain text is quoted here, its bytes as they are. */
    const char *body = plain ? shown : shown + 1;
    size_t n = strlen(body) - (plain ? 0 : 1);
    char *out = malloc(2 * n + 8);
    if (out) {
        char *o = out + sprintf(out, "%s", plain && all_plain ? lead : "");
        if (plain && all_plain) {
            memcpy(o, body, n);
            o += n;
        } else if (plain && !has_quote) {
            o += sprintf(o, "'%s", lead);
            memcpy(o, body, n);
            o += n;
            *o++ = '\'';
        } else {
            o += sprintf(o, "\"%s", lead);
            for (size_t i = 0; i < n; i++) {
                /* mw_show's own escapes (\n, \\, \") pass as they are. */
                if (!plain && body[i] == '\\' && i + 1 < n) {
                    *o++ = body[i++];
                    *o++ = body[i];
                    continue;
                }
                if (strchr("$`\\\"", body[i]))
                    *o++ = '\\';
                *o++ = body[i];
            }
            *o++ = '"';
        }
        *o = '\0';
    }
    free(shown);
    return out;
}
