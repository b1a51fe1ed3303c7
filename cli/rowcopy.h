/* Copies of what the trace reader's iterator hands out (its strings and bytes are valid
 * only until its next row), for `query --elements` and `diff`, which keep a whole change
 * or a whole history; and the texts of an element they both print, whole. */
#ifndef MW_CLI_ROWCOPY_H
#define MW_CLI_ROWCOPY_H

#include <stdint.h>

/* A copy of s, or NULL for NULL; sets *oom when the copy fails. */
char *mw_cli_copy_str(const char *s, int *oom);
/* A copy of n bytes at p, or NULL for NULL; sets *oom when the copy fails. */
unsigned char *mw_cli_copy_bytes(const unsigned char *p, uint64_t n, int *oom);

struct mw_elem_change;
struct mw_elem_scalar;
/* An element's name, "tag[3, 17].y", whole however long the tag (malloc'd; NULL when out of
 * memory). */
char *mw_cli_element_name(const char *tag, const struct mw_elem_change *e);
/* A value as Python would print it, "0.1334", "b'\\x1b'", "?" for NULL (malloc'd; NULL when
 * out of memory). */
char *mw_cli_element_value(const struct mw_elem_scalar *s, const unsigned char *v);

#endif
