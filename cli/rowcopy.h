/* Copies of what the trace reader's iterator hands out (its strings and bytes are valid
 * only until its next row), for `query --elements` and `diff`, which keep a whole change
 * or a whole history. */
#ifndef MW_CLI_ROWCOPY_H
#define MW_CLI_ROWCOPY_H

#include <stdint.h>

/* A copy of s, or NULL for NULL; sets *oom when the copy fails. */
char *mw_cli_copy_str(const char *s, int *oom);
/* A copy of n bytes at p, or NULL for NULL; sets *oom when the copy fails. */
unsigned char *mw_cli_copy_bytes(const unsigned char *p, uint64_t n, int *oom);

#endif
