#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "run_settings.h"

const char *const mw_env_ours[] = {
    MW_ENV_TRACE_FD, MW_ENV_START_NS, MW_ENV_CHECK, MW_ENV_BACKEND, MW_ENV_ON_NAN, NULL,
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

void mw_run_settings_init(struct mw_run_settings *s)
{
    memset(s, 0, sizeof *s);
    s->check_mode = MW_CHECK_LINE;
    s->backend = MW_BACKEND_AUTO;
    s->on_nan = MW_ON_NAN_OFF;
}

/* The index of text in names[0..n), or -1. */
static int lookup(const char *const *names, size_t n, const char *text)
{
    for (size_t i = 0; text && i < n; i++)
        if (names[i] && strcmp(names[i], text) == 0)
            return (int)i;
    return -1;
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
    size_t plen = strlen(INTERVAL_PREFIX);
    if (strncmp(text, INTERVAL_PREFIX, plen) != 0)
        return MW_EINVAL;
    const char *digits = text + plen;
    /* Digits only: strtoul would take a sign, spaces or "0x". */
    if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 7)
        return MW_EINVAL;
    unsigned long ms = strtoul(digits, NULL, 10);
    if (ms < 1 || ms > MW_INTERVAL_MAX_MS)
        return MW_EINVAL;
    s->check_mode = MW_CHECK_INTERVAL;
    s->interval_ms = (unsigned)ms;
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
    char check[32];
    mw_format_check_mode(s, check, sizeof check);
    if (setenv(MW_ENV_CHECK, check, 1) != 0 ||
        setenv(MW_ENV_BACKEND, mw_backend_name(s->backend), 1) != 0 ||
        setenv(MW_ENV_ON_NAN, mw_on_nan_name(s->on_nan), 1) != 0)
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
    return rc;
}
