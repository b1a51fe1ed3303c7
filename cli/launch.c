#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch.h"
#include "watcher.h"

void mw_launch_init(struct mw_launch *l)
{
    memset(l, 0, sizeof *l);
    mw_run_settings_init(&l->settings);
}

int mw_launch_add_python_option(struct mw_launch *l, int opt, const char *value)
{
    static const char *const flags[] = {['X'] = "-X", ['W'] = "-W", ['u'] = "-u"};
    if (l->npyopts + 2 > MW_LAUNCH_MAX_PYOPTS)
        return -1;
    l->pyopts[l->npyopts++] = flags[opt];
    if (value)
        l->pyopts[l->npyopts++] = value;
    return 0;
}

int mw_launch_check_backend(const struct mw_launch *l)
{
    if (l->settings.backend == MW_BACKEND_UFFD && !mw_engine_backend_available(MW_BACKEND_UFFD))
        return -1;
    return 0;
}

int mw_launch_is_runnable_dir(const char *path)
{
    char main_py[PATH_MAX];
    snprintf(main_py, sizeof main_py, "%s/__main__.py", path);
    return access(main_py, R_OK) == 0;
}

const char *mw_launch_mode_name(enum mw_launch_mode mode)
{
    switch (mode) {
    case MW_LAUNCH_MODULE: return "module";
    case MW_LAUNCH_COMMAND: return "command";
    default: return "script";
    }
}

int mw_launch_resolve(struct mw_launch *l)
{
    return mw_interpreter_choose(l->python_option, &l->interp, l->error, sizeof l->error);
}

static void set_env_number(const char *name, long long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", value);
    setenv(name, buf, 1);
}

/* Sets the colon-separated setting name to ours followed by the user's own value (which,
 * coming last, wins where both set something). */
static void put_ours_first(const char *name, const char *ours)
{
    mw_env_save_users(name);
    const char *user = getenv(name);
    size_t n = strlen(ours) + (user ? strlen(user) + 1 : 0) + 1;
    char *value = malloc(n);
    if (!value)
        return;
    snprintf(value, n, "%s%s%s", ours, user ? ":" : "", user ? user : "");
    setenv(name, value, 1);
    free(value);
}

void mw_launch_exec(const struct mw_launch *l, const char *trace_socket, int follow,
                    int64_t start_monotonic_ns)
{
    /* The injected library restores LD_PRELOAD to what it was, so subprocesses of the
     * script see the user's own environment. */
    const char *old = getenv("LD_PRELOAD");
    const char *inject = l->interp.inject;
#ifdef MEMWATCH_SANITIZE_PRELOAD
    /* A sanitized build (MEMWATCH_SANITIZE) injects a library that needs the ASan runtime,
     * which must be the first object loaded: python3 itself is not sanitized, so the
     * runtime goes ahead of ours in LD_PRELOAD. Leaks of the interpreter are not ours to
     * report. The engine copies and compares whole pages around watched objects, which
     * takes in the neighbours' heap redzones: memcpy/memcmp are not checked (the
     * library's own loads and stores still are). The user's ASAN_OPTIONS come after
     * ours, so theirs win. */
    char *sanitized = malloc(strlen(MEMWATCH_SANITIZE_PRELOAD) + strlen(inject) + 2);
    if (sanitized) {
        sprintf(sanitized, "%s:%s", MEMWATCH_SANITIZE_PRELOAD, inject);
        inject = sanitized;
    }
    /* handle_segv/handle_sigbus=0: faults that are not memwatch's die by the signal, as
     * under python3, instead of ASan's report for code it did not build. The injected
     * library gives the script the user's own ASAN_OPTIONS back (inject.c). */
    static const char ours[] = "detect_leaks=0:replace_intrin=0:intercept_memcmp=0:"
                               "handle_segv=0:handle_sigbus=0";
    put_ours_first("ASAN_OPTIONS", ours);
#endif
    /* A finished thread that CPython detached frees the TLS of cached thread stacks once
     * glibc's stack cache passes 40 MiB, after it has blocked every signal: a free() that
     * writes a protected heap page then kills the process (SIGBUS/SIGSEGV forced to the
     * default action, memwatch's handler never runs). A cache that never overflows makes
     * glibc reuse those stacks instead; their memory is returned to the kernel when cached.
     * The user's own tunables come after ours, so theirs win; inject.c restores them. */
    put_ours_first("GLIBC_TUNABLES", "glibc.pthread.stack_cache_size=0x100000000000");
    mw_env_save_users("LD_PRELOAD");
    if (old) {
        char *both = malloc(strlen(old) + strlen(inject) + 2);
        if (both) {
            sprintf(both, "%s:%s", inject, old);
            setenv("LD_PRELOAD", both, 1);
            free(both);
        }
    } else {
        setenv("LD_PRELOAD", inject, 1);
    }
    /* The injected library connects to the socket (and removes these from the
     * environment before the script runs). */
    setenv(MW_ENV_TRACE_SOCKET, trace_socket, 1);
    setenv(MW_ENV_FOLLOW, follow ? "1" : "0", 1);
    set_env_number(MW_ENV_START_NS, (long long)start_monotonic_ns);
    if (mw_run_settings_to_env(&l->settings) != 0)
        return;

    int argc = 0;
    const char **argv = calloc((size_t)(l->npyopts + l->script_argc + 4), sizeof *argv);
    if (!argv)
        return;
    argv[argc++] = l->interp.argv0;
    for (int i = 0; i < l->npyopts; i++)
        argv[argc++] = l->pyopts[i];
    if (l->mode == MW_LAUNCH_MODULE)
        argv[argc++] = "-m";
    else if (l->mode == MW_LAUNCH_COMMAND)
        argv[argc++] = "-c";
    else if (l->target[0] == '-')
        argv[argc++] = "--";   /* a script named like an option stays a script */
    argv[argc++] = l->target;
    for (int i = 0; i < l->script_argc; i++)
        argv[argc++] = l->script_argv[i];
    argv[argc] = NULL;
    execv(l->interp.path, (char *const *)argv);
    free(argv);
}
