/* JSON text on a stdio stream: strings and hex-encoded bytes, written the one way every
 * JSON output of memwatch writes them (the report's page data, query's json and jsonl).
 *
 * Strings: quotes, backslashes and control characters are escaped (\n, \t and \r by name,
 * the others and DEL as \u00XX), and invalid UTF-8 becomes U+FFFD, one per bad byte, so the
 * output is always valid JSON whatever bytes a trace holds. */
#ifndef MW_TRACE_JSON_OUT_H
#define MW_TRACE_JSON_OUT_H

#include <stddef.h>
#include <stdio.h>

/* For a document inside an HTML <script> element: "<", ">" and "&" are escaped too, so
 * that no "</script>" can end it early, and so are U+2028 and U+2029. */
#define MW_JSON_HTML_SAFE 0x1u

/* Writes the n bytes at s as a JSON string (with its quotes); a NULL s is written as null.
 * flags: 0 or MW_JSON_HTML_SAFE. */
void mw_json_string(FILE *f, const char *s, size_t n, unsigned flags);
/* Writes n bytes as a JSON string of lower-case hex digits. */
void mw_json_hex(FILE *f, const unsigned char *p, size_t n);
/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void mw_hex(char *out, const unsigned char *p, size_t n);
/* Length of the valid UTF-8 sequence at p (1-4; n > 0 bytes there), or 0 when it is not
 * valid: overlong forms, surrogates and code points past U+10FFFF are not. */
size_t mw_utf8_len(const unsigned char *p, size_t n);

#endif
