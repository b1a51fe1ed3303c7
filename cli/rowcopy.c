/* Copies of trace rows' strings and bytes (see rowcopy.h). */
#include "rowcopy.h"

#include <stdlib.h>
#include <string.h>

char *mw_cli_copy_str(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

unsigned char *mw_cli_copy_bytes(const unsigned char *p, uint64_t n, int *oom)
{
    if (!p)
        return NULL;
    unsigned char *d = malloc(n ? (size_t)n : 1);
    if (!d) {
        *oom = 1;
        return NULL;
    }
    memcpy(d, p, (size_t)n);
    return d;
}
