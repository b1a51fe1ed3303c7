/* The contract between `memwatch trace` (cli/launch.c) and the library it injects into the
 * traced interpreter (src/python/inject.c): the twin of record.h, for the other direction.
 *
 * The launcher validates the user's options into a struct mw_run_settings, formats each
 * setting into the child's environment, and the injected library parses the same
 * variables back with the same functions: one spelling of every name and value, one
 * range check. The enums are what the rest of the code uses; no other file spells
 * "uffd", "interval:" or an environment variable's name.
 *
 * Needs neither Python nor SQLite (it is part of mw_record). */
#ifndef MW_RUN_SETTINGS_H
#define MW_RUN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "watcher.h"   /* enum mw_backend */

/* When changes are found (`--check`). */
enum mw_check_mode { MW_CHECK_LINE, MW_CHECK_INTERVAL, MW_CHECK_MANUAL };

/* What a NaN or Inf appearing in a watched float array does (`--on-nan`). */
enum mw_on_nan { MW_ON_NAN_OFF, MW_ON_NAN_WARN, MW_ON_NAN_RAISE };

/* Which bytes the trace keeps (`--values`): every change's old and new bytes (full), none
 * (summary: ranges and numeric summaries only), or the last N changes of each object
 * (last:N, a flight recorder). README "Watching large objects and long runs". */
enum mw_values_policy { MW_VALUES_FULL, MW_VALUES_SUMMARY, MW_VALUES_LAST };

/* The longest --check=interval:MS, an hour. */
#define MW_INTERVAL_MAX_MS 3600000u
/* The deepest --values=last:N. */
#define MW_VALUES_LAST_MAX 1000000u
/* The smallest --max-trace-size: the schema, the run and a few thousand changes. */
#define MW_MAX_TRACE_SIZE_MIN ((uint64_t)1 << 20)
/* The largest: SQLite's page count times its largest page, far beyond any disk. */
#define MW_MAX_TRACE_SIZE_MAX ((uint64_t)1 << 50)

struct mw_run_settings {
    enum mw_check_mode check_mode;
    unsigned interval_ms;          /* MW_CHECK_INTERVAL: 1 .. MW_INTERVAL_MAX_MS */
    enum mw_backend backend;
    enum mw_on_nan on_nan;
    enum mw_values_policy values;
    unsigned values_last;          /* MW_VALUES_LAST: N, 1 .. MW_VALUES_LAST_MAX */
    uint64_t max_trace_size;       /* bytes; 0: no limit */
};

/* Environment variables the launcher sets for the injected library. The library removes
 * every one of them before the script starts (mw_env_ours), so the script and its
 * children see the user's own environment. */
#define MW_ENV_TRACE_SOCKET "MEMWATCH_TRACE_SOCKET" /* the writer's socket (abstract name) */
#define MW_ENV_FOLLOW "MEMWATCH_FOLLOW"         /* "0": fork children are not traced */
#define MW_ENV_START_NS "MEMWATCH_START_NS"     /* CLOCK_MONOTONIC at the run's start */
#define MW_ENV_CHECK "MEMWATCH_CHECK"
#define MW_ENV_BACKEND "MEMWATCH_BACKEND"
#define MW_ENV_ON_NAN "MEMWATCH_ON_NAN"
#define MW_ENV_VALUES "MEMWATCH_VALUES"
#define MW_ENV_MAX_TRACE_SIZE "MEMWATCH_MAX_TRACE_SIZE"
/* The run's shared memory (serve.c makes it, src/python/run_shared.h maps it): a memfd
 * of this size, sparse. Its first page holds the run's counters; the rest, from
 * MW_RUN_SHARED_REGISTRY_OFFSET, is the shared-watch registry's. */
#define MW_RUN_SHARED_REGISTRY_OFFSET ((size_t)4096)
#define MW_RUN_SHARED_SIZE (((size_t)64 << 20) + MW_RUN_SHARED_REGISTRY_OFFSET)
/* Settings memwatch puts ahead of the user's own value keep the user's value here, for
 * the library to give back (MW_ENV_SAVED_PREFIX + the variable's name). */
#define MW_ENV_SAVED_PREFIX "MEMWATCH_SAVED_"

/* Settings memwatch puts its own value into keep the user's: the launcher saves the
 * user's value of name (or its absence) before changing it, and the library gives it back
 * to the script, so that the script and its children see their own. 0 or -errno. */
int mw_env_save_users(const char *name);
int mw_env_restore_users(const char *name);

/* NULL-terminated: the variables above that the library unsets. */
extern const char *const mw_env_ours[];

/* The defaults: line mode, auto backend, --on-nan=off, --values=full, no size limit. */
void mw_run_settings_init(struct mw_run_settings *s);

/* Parsers take the user's text (an option's value or an environment variable's) and
 * return 0, or MW_EINVAL leaving *s unchanged. */
int mw_parse_check_mode(const char *text, struct mw_run_settings *s);
int mw_parse_backend(const char *text, enum mw_backend *out);
int mw_parse_on_nan(const char *text, enum mw_on_nan *out);
/* "full", "summary" or "last:N" (N from 1 to MW_VALUES_LAST_MAX). */
int mw_parse_values(const char *text, struct mw_run_settings *s);
/* A size in bytes: digits with an optional K, M, G or T (powers of 1024, optionally
 * followed by "iB" or "B"), from MW_MAX_TRACE_SIZE_MIN to MW_MAX_TRACE_SIZE_MAX; "0" or
 * "none" is no limit. */
int mw_parse_max_trace_size(const char *text, uint64_t *out);

/* Canonical text, what the parsers accept: "line", "interval:50", "manual". */
void mw_format_check_mode(const struct mw_run_settings *s, char *buf, size_t size);
const char *mw_backend_name(enum mw_backend backend);   /* "auto", "mprotect", "uffd" */
const char *mw_on_nan_name(enum mw_on_nan on_nan);      /* "off", "warn", "raise" */
/* "full", "summary", "last:8". */
void mw_format_values(const struct mw_run_settings *s, char *buf, size_t size);
/* A size as people read it and mw_parse_max_trace_size reads back: "512MiB", "1536KiB",
 * "1000000" (bytes when it is no whole number of KiB); "none" for 0. */
void mw_format_size(uint64_t bytes, char *buf, size_t size);

/* The launcher's side: sets MW_ENV_CHECK, MW_ENV_BACKEND, MW_ENV_ON_NAN, MW_ENV_VALUES and
 * MW_ENV_MAX_TRACE_SIZE. 0 or -errno. */
int mw_run_settings_to_env(const struct mw_run_settings *s);
/* The library's side: the settings from the environment. A variable that is missing or
 * does not parse leaves that setting at its default (only the launcher sets them).
 * Returns 0, or MW_EINVAL when some variable was present but invalid. */
int mw_run_settings_from_env(struct mw_run_settings *s);

#endif
