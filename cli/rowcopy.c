/* Copies of trace rows' strings and bytes, texts of elements (see rowcopy.h). */
#include "rowcopy.h"

#include <stdlib.h>
#include <string.h>

#include "elements.h"

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

/* The formatters write at most size bytes and return the length they need: a first call
 * into a small buffer, a second one only when it was too small. */
char *mw_cli_element_name(const char *tag, const struct mw_elem_change *e)
{
    char small[128];
    size_t n = mw_elem_format_name(tag, e->ndim, e->index, e->scalar, small, sizeof small);
    char *t = malloc(n + 1);
    if (t && n < sizeof small)
        memcpy(t, small, n + 1);
    else if (t)
        mw_elem_format_name(tag, e->ndim, e->index, e->scalar, t, n + 1);
    return t;
}

char *mw_cli_element_value(const struct mw_elem_scalar *s, const unsigned char *v)
{
    char small[64];
    size_t n = mw_elem_format_value(s, v, small, sizeof small);
    char *t = malloc(n + 1);
    if (t && n < sizeof small)
        memcpy(t, small, n + 1);
    else if (t)
        mw_elem_format_value(s, v, t, n + 1);
    return t;
}
