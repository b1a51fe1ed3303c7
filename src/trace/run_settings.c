#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "run_settings.h"

const char *const mw_env_ours[] = {
    MW_ENV_TRACE_SOCKET, MW_ENV_FOLLOW, MW_ENV_START_NS, MW_ENV_CHECK, MW_ENV_BACKEND, MW_ENV_ON_NAN,
    MW_ENV_VALUES, MW_ENV_MAX_TRACE_SIZE, NULL,
};

static const char *const backend_names[] = {
    [MW_BACKEND_AUTO] = "auto",
    [MW_BACKEND_MPROTECT] = "mprotect",
    [MW_BACKEND_UFFD] = "uffd",
};

static const char *const on_nan_names[] = {
    [MW_ON_NAN_OFF] = "off",
    [MW_ON_NAN_WARN] = "warn",
    [MW_ON_NAN_RAISE] = "raise",
};

#define INTERVAL_PREFIX "interval:"
#define LAST_PREFIX "last:"

void mw_run_settings_init(struct mw_run_settings *s)
{
    memset(s, 0, sizeof *s);
    s->check_mode = MW_CHECK_LINE;
    s->backend = MW_BACKEND_AUTO;
    s->on_nan = MW_ON_NAN_OFF;
    s->values = MW_VALUES_FULL;
}

/* The index of text in names[0..n), or -1. */
static int lookup(const char *const *names, size_t n, const char *text)
{
    for (size_t i = 0; text && i < n; i++)
        if (names[i] && strcmp(names[i], text) == 0)
            return (int)i;
    return -1;
}

/* The number after prefix in text, from 1 to max: 0 and *out, or MW_EINVAL. Digits only:
 * strtoul would take a sign, spaces or "0x". */
static int parse_count_after(const char *text, const char *prefix, unsigned long max,
                             unsigned *out)
{
    size_t plen = strlen(prefix);
    if (strncmp(text, prefix, plen) != 0)
        return MW_EINVAL;
    const char *digits = text + plen;
    if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 9)
        return MW_EINVAL;
    unsigned long n = strtoul(digits, NULL, 10);
    if (n < 1 || n > max)
        return MW_EINVAL;
    *out = (unsigned)n;
    return 0;
}

int mw_parse_check_mode(const char *text, struct mw_run_settings *s)
{
    if (!text)
        return MW_EINVAL;
    if (strcmp(text, "line") == 0 || strcmp(text, "manual") == 0) {
        s->check_mode = text[0] == 'l' ? MW_CHECK_LINE : MW_CHECK_MANUAL;
        s->interval_ms = 0;
        return 0;
    }
    unsigned ms;
    if (parse_count_after(text, INTERVAL_PREFIX, MW_INTERVAL_MAX_MS, &ms) != 0)
        return MW_EINVAL;
    s->check_mode = MW_CHECK_INTERVAL;
    s->interval_ms = ms;
    return 0;
}

int mw_parse_values(const char *text, struct mw_run_settings *s)
{
    if (!text)
        return MW_EINVAL;
    if (strcmp(text, "full") == 0 || strcmp(text, "summary") == 0) {
        s->values = text[0] == 'f' ? MW_VALUES_FULL : MW_VALUES_SUMMARY;
        s->values_last = 0;
        return 0;
    }
    unsigned n;
    if (parse_count_after(text, LAST_PREFIX, MW_VALUES_LAST_MAX, &n) != 0)
        return MW_EINVAL;
    s->values = MW_VALUES_LAST;
    s->values_last = n;
    return 0;
}

/* Powers of 1024 by their letter. */
static int size_shift(char unit)
{
    switch (unit) {
    case 'K': case 'k': return 10;
    case 'M': case 'm': return 20;
    case 'G': case 'g': return 30;
    case 'T': case 't': return 40;
    default: return -1;
    }
}

int mw_parse_max_trace_size(const char *text, uint64_t *out)
{
    if (!text)
        return MW_EINVAL;
    if (strcmp(text, "none") == 0 || strcmp(text, "0") == 0) {
        *out = 0;
        return 0;
    }
    size_t ndigits = strspn(text, "0123456789");
    if (ndigits == 0 || ndigits > 16)
        return MW_EINVAL;
    uint64_t n = strtoull(text, NULL, 10);
    const char *unit = text + ndigits;
    int shift = 0;
    if (*unit) {
        shift = size_shift(*unit);
        const char *rest = unit + 1;
        if (shift < 0 || !(*rest == '\0' || strcmp(rest, "B") == 0 || strcmp(rest, "iB") == 0))
            return MW_EINVAL;
    }
    if (n > (MW_MAX_TRACE_SIZE_MAX >> shift))
        return MW_EINVAL;
    n <<= shift;
    if (n < MW_MAX_TRACE_SIZE_MIN)
        return MW_EINVAL;
    *out = n;
    return 0;
}

int mw_parse_backend(const char *text, enum mw_backend *out)
{
    int i = lookup(backend_names, sizeof backend_names / sizeof *backend_names, text);
    if (i < 0)
        return MW_EINVAL;
    *out = (enum mw_backend)i;
    return 0;
}

int mw_parse_on_nan(const char *text, enum mw_on_nan *out)
{
    int i = lookup(on_nan_names, sizeof on_nan_names / sizeof *on_nan_names, text);
    if (i < 0)
        return MW_EINVAL;
    *out = (enum mw_on_nan)i;
    return 0;
}

void mw_format_check_mode(const struct mw_run_settings *s, char *buf, size_t size)
{
    switch (s->check_mode) {
    case MW_CHECK_INTERVAL:
        snprintf(buf, size, INTERVAL_PREFIX "%u", s->interval_ms);
        break;
    case MW_CHECK_MANUAL:
        snprintf(buf, size, "manual");
        break;
    default:
        snprintf(buf, size, "line");
        break;
    }
}

void mw_format_values(const struct mw_run_settings *s, char *buf, size_t size)
{
    if (s->values == MW_VALUES_LAST)
        snprintf(buf, size, LAST_PREFIX "%u", s->values_last);
    else
        snprintf(buf, size, "%s", s->values == MW_VALUES_SUMMARY ? "summary" : "full");
}

void mw_format_size(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
    if (bytes == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (int i = 0; i < 4; i++) {
        int shift = 40 - 10 * i;
        if (bytes % ((uint64_t)1 << shift) == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(bytes >> shift), units[i]);
            return;
        }
    }
    snprintf(buf, size, "%llu", (unsigned long long)bytes);
}

const char *mw_backend_name(enum mw_backend backend)
{
    size_t i = (size_t)backend;
    return i < sizeof backend_names / sizeof *backend_names && backend_names[i]
               ? backend_names[i] : "unknown";
}

const char *mw_on_nan_name(enum mw_on_nan on_nan)
{
    size_t i = (size_t)on_nan;
    return i < sizeof on_nan_names / sizeof *on_nan_names ? on_nan_names[i] : "unknown";
}

static int saved_name(const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, MW_ENV_SAVED_PREFIX "%s", name);
    return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

int mw_env_save_users(const char *name)
{
    char saved[128];
    if (saved_name(name, saved, sizeof saved) != 0)
        return -ENAMETOOLONG;
    const char *user = getenv(name);
    return (user ? setenv(saved, user, 1) : unsetenv(saved)) == 0 ? 0 : -errno;
}

int mw_env_restore_users(const char *name)
{
    char saved[128];
    if (saved_name(name, saved, sizeof saved) != 0)
        return -ENAMETOOLONG;
    const char *user = getenv(saved);
    int rc = user ? setenv(name, user, 1) : unsetenv(name);
    unsetenv(saved);
    return rc == 0 ? 0 : -errno;
}

int mw_run_settings_to_env(const struct mw_run_settings *s)
{
    char check[32], values[32], max_size[32];
    mw_format_check_mode(s, check, sizeof check);
    mw_format_values(s, values, sizeof values);
    mw_format_size(s->max_trace_size, max_size, sizeof max_size);
    if (setenv(MW_ENV_CHECK, check, 1) != 0 ||
        setenv(MW_ENV_BACKEND, mw_backend_name(s->backend), 1) != 0 ||
        setenv(MW_ENV_ON_NAN, mw_on_nan_name(s->on_nan), 1) != 0 ||
        setenv(MW_ENV_VALUES, values, 1) != 0 ||
        setenv(MW_ENV_MAX_TRACE_SIZE, max_size, 1) != 0)
        return -errno;
    return 0;
}

int mw_run_settings_from_env(struct mw_run_settings *s)
{
    mw_run_settings_init(s);
    int rc = 0;
    const char *check = getenv(MW_ENV_CHECK);
    const char *backend = getenv(MW_ENV_BACKEND);
    const char *on_nan = getenv(MW_ENV_ON_NAN);
    if (check && mw_parse_check_mode(check, s) != 0)
        rc = MW_EINVAL;
    if (backend && mw_parse_backend(backend, &s->backend) != 0)
        rc = MW_EINVAL;
    if (on_nan && mw_parse_on_nan(on_nan, &s->on_nan) != 0)
        rc = MW_EINVAL;
    const char *values = getenv(MW_ENV_VALUES);
    const char *max_size = getenv(MW_ENV_MAX_TRACE_SIZE);
    if (values && mw_parse_values(values, s) != 0)
        rc = MW_EINVAL;
    if (max_size && mw_parse_max_trace_size(max_size, &s->max_trace_size) != 0)
        rc = MW_EINVAL;
    return rc;
}
