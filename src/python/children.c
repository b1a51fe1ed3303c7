/* exec and posix_spawn for the injected library: see children.h.
 *
 * DESIGN
 * The constructor removes LD_PRELOAD from the environment (inject.c), so the script and
 * every program it starts see the user's own environment: a child python3 then has no
 * `memwatch` module, and a script that imports it at the top fails in every
 * multiprocessing child started by spawn or forkserver. Keeping LD_PRELOAD in the
 * environment is no answer: the script would see it, every program it starts would load a
 * library that needs libpython's symbols (`ls: symbol lookup error`), and an interpreter
 * of another minor version would load a library built for another layout of its frames.
 *
 * So the environment is extended only at the exec itself, and only when the file exec'd
 * is this interpreter's own file (same device and inode as /proc/self/exe, through any
 * symbolic link: sys.executable, a venv's python, multiprocessing's executable): the
 * child gets LD_PRELOAD with memwatch's part in front of its own value, and that value
 * saved (MEMWATCH_SAVED_LD_PRELOAD) for the child's constructor to give back, exactly as
 * the launcher does for the traced process. The trace's pipe is close-on-exec and its
 * variable is gone, so the child is untraced and cannot write into the parent's trace.
 * Every other exec — another program, another interpreter, a shell — gets what the
 * caller passed, unchanged.
 *
 * These run in a child between fork (or vfork, as _posixsubprocess uses) and exec, where
 * only async-signal-safe calls are allowed and, after vfork, nothing of the parent's
 * memory may change: the new environment is built on the stack (stat, access, getenv and
 * string copies only), and the real functions are resolved by the constructor. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "children.h"
#include "run_settings.h"

#define EXPORT __attribute__((visibility("default")))

/* Larger environments than these are passed on untouched (the child then runs as under
 * python3, without memwatch): the copy lives on the calling thread's stack. */
#define MAX_ENV_ENTRIES 2048
#define MAX_ENV_BYTES 16384

/* A variable memwatch puts its own value ahead of the user's. */
struct carried {
    const char *name;
    size_t name_len;
    char *ours;          /* memwatch's part of its value */
    size_t ours_len;
};

#ifdef MEMWATCH_SANITIZE_PRELOAD
#define MAX_CARRIED 2
#else
#define MAX_CARRIED 1
#endif

static struct carried carried[MAX_CARRIED];
static int ncarried;
static dev_t exe_dev;
static ino_t exe_ino;
static int ready;        /* set once the above are known; read in children */

static __typeof__(execve) *real_execve;
static __typeof__(execvpe) *real_execvpe;
static __typeof__(fexecve) *real_fexecve;
static __typeof__(posix_spawn) *real_posix_spawn;
static __typeof__(posix_spawnp) *real_posix_spawnp;

extern char **environ;

/* memwatch's part of name's value: the whole value, less the user's own (saved by the
 * launcher or by a parent's exec, after a ':'), or NULL when it cannot be told apart. */
static char *ours_part(const char *name)
{
    const char *value = getenv(name);
    if (!value || !*value)
        return NULL;
    char saved_name[128];
    snprintf(saved_name, sizeof saved_name, "%s%s", MW_ENV_SAVED_PREFIX, name);
    const char *user = getenv(saved_name);
    if (!user)
        return strdup(value);
    size_t vl = strlen(value), ul = strlen(user);
    if (vl > ul + 1 && value[vl - ul - 1] == ':' && strcmp(value + vl - ul, user) == 0)
        return strndup(value, vl - ul - 1);
    return NULL;
}

static void resolve_real(void)
{
    real_execve = (__typeof__(real_execve))dlsym(RTLD_NEXT, "execve");
    real_execvpe = (__typeof__(real_execvpe))dlsym(RTLD_NEXT, "execvpe");
    real_fexecve = (__typeof__(real_fexecve))dlsym(RTLD_NEXT, "fexecve");
    real_posix_spawn = (__typeof__(real_posix_spawn))dlsym(RTLD_NEXT, "posix_spawn");
    real_posix_spawnp = (__typeof__(real_posix_spawnp))dlsym(RTLD_NEXT, "posix_spawnp");
}

void mw_children_init(void)
{
    static const char *const names[MAX_CARRIED] = {
        "LD_PRELOAD",
#ifdef MEMWATCH_SANITIZE_PRELOAD
        "ASAN_OPTIONS",   /* the launcher's, which the ASan runtime needs (cli/launch.c) */
#endif
    };
    resolve_real();
    struct stat st;
    if (stat("/proc/self/exe", &st) != 0)
        return;
    for (int i = 0; i < MAX_CARRIED; i++) {
        char *ours = ours_part(names[i]);
        if (!ours)
            return;   /* without memwatch's LD_PRELOAD there is nothing to pass on */
        carried[ncarried++] = (struct carried){names[i], strlen(names[i]), ours, strlen(ours)};
    }
    exe_dev = st.st_dev;
    exe_ino = st.st_ino;
    ready = 1;
}

/* ---- which exec is a Python child ---------------------------------------------------- */

static int is_our_interpreter(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_dev == exe_dev && st->st_ino == exe_ino;
}

static int path_is_ours(const char *path)
{
    struct stat st;
    return ready && path && stat(path, &st) == 0 && is_our_interpreter(&st);
}

/* What execvp would run for file: the first executable regular file along PATH (the C
 * library's default path when PATH is unset), as the C library searches it. */
static int search_is_ours(const char *file)
{
    if (!ready || !file || !*file)
        return 0;
    if (strchr(file, '/'))
        return path_is_ours(file);
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    size_t flen = strlen(file);
    char buf[PATH_MAX];
    for (const char *s = path;; ) {
        const char *e = strchr(s, ':');
        size_t dlen = e ? (size_t)(e - s) : strlen(s);
        const char *dir = dlen ? s : ".";
        if (!dlen)
            dlen = 1;
        if (dlen + 1 + flen < sizeof buf) {
            memcpy(buf, dir, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
                return is_our_interpreter(&st);
        }
        if (!e)
            return 0;
        s = e + 1;
    }
}

/* ---- the child's environment ---------------------------------------------------------- */

typedef int (*exec_fn)(void *ctx, char *const envp[]);

static int named(const char *entry, const char *name, size_t len)
{
    return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

static int is_saved_of(const char *entry, const struct carried *c)
{
    size_t plen = sizeof MW_ENV_SAVED_PREFIX - 1;
    return strncmp(entry, MW_ENV_SAVED_PREFIX, plen) == 0 && named(entry + plen, c->name, c->name_len);
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Runs fn with envp plus memwatch's part of each carried variable in front of the
 * child's own value, which is saved for the child's constructor to give back. */
static int with_child_env(char *const envp[], exec_fn fn, void *ctx)
{
    static char *const empty[] = {NULL};
    if (!envp)
        envp = empty;
    const char *theirs[MAX_CARRIED] = {0};
    size_t n = 0, bytes = 0;
    for (; envp[n]; n++)
        for (int v = 0; v < ncarried; v++)
            if (named(envp[n], carried[v].name, carried[v].name_len))
                theirs[v] = envp[n] + carried[v].name_len + 1;
    for (int v = 0; v < ncarried; v++) {
        size_t tl = theirs[v] ? strlen(theirs[v]) : 0;
        bytes += carried[v].name_len + carried[v].ours_len + tl + 3;
        if (theirs[v])
            bytes += sizeof MW_ENV_SAVED_PREFIX + carried[v].name_len + tl + 1;
    }
    if (n > MAX_ENV_ENTRIES || bytes > MAX_ENV_BYTES)
        return fn(ctx, envp);
    char *vec[n + 2 * MAX_CARRIED + 1];
    char buf[bytes];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int drop = 0;
        for (int v = 0; v < ncarried; v++)
            drop |= named(envp[i], carried[v].name, carried[v].name_len) ||
                    is_saved_of(envp[i], &carried[v]);
        if (!drop)
            vec[k++] = envp[i];
    }
    char *p = buf;
    for (int v = 0; v < ncarried; v++) {
        const struct carried *c = &carried[v];
        size_t tl = theirs[v] ? strlen(theirs[v]) : 0;
        vec[k++] = p;
        p = put(p, c->name, c->name_len);
        p = put(p, "=", 1);
        p = put(p, c->ours, c->ours_len);
        if (theirs[v]) {
            p = put(p, ":", 1);
            p = put(p, theirs[v], tl);
        }
        *p++ = '\0';
        if (theirs[v]) {
            vec[k++] = p;
            p = put(p, MW_ENV_SAVED_PREFIX, sizeof MW_ENV_SAVED_PREFIX - 1);
            p = put(p, c->name, c->name_len);
            p = put(p, "=", 1);
            p = put(p, theirs[v], tl + 1);
        }
    }
    vec[k] = NULL;
    return fn(ctx, vec);
}

/* ---- the interposed calls --------------------------------------------------------------- */

struct exec_call {
    const char *path;
    char *const *argv;
    int fd;
};

static int call_execve(void *ctx, char *const envp[])
{
    const struct exec_call *c = ctx;
    if (real_execve)
        return real_execve(c->path, c->argv, envp);
    return (int)syscall(SYS_execve, c->path, c->argv, envp);
}

static int call_execvpe(void *ctx, char *const envp[])
{
    const struct exec_call *c = ctx;
    return real_execvpe(c->path, c->argv, envp);
}

static int call_fexecve(void *ctx, char *const envp[])
{
    const struct exec_call *c = ctx;
    return real_fexecve(c->fd, c->argv, envp);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_call c = {.path = path, .argv = argv};
    if (path_is_ours(path))
        return with_child_env(envp, call_execve, &c);
    return call_execve(&c, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    if (!real_execvpe)
        resolve_real();
    struct exec_call c = {.path = file, .argv = argv};
    if (search_is_ours(file))
        return with_child_env(envp, call_execvpe, &c);
    return call_execvpe(&c, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    if (!real_fexecve)
        resolve_real();
    struct exec_call c = {.argv = argv, .fd = fd};
    struct stat st;
    if (ready && fstat(fd, &st) == 0 && is_our_interpreter(&st))
        return with_child_env(envp, call_fexecve, &c);
    return call_fexecve(&c, envp);
}

struct spawn_call {
    pid_t *pid;
    const char *path;
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attr;
    char *const *argv;
    __typeof__(posix_spawn) *fn;
};

static int call_spawn(void *ctx, char *const envp[])
{
    const struct spawn_call *c = ctx;
    return c->fn(c->pid, c->path, c->actions, c->attr, c->argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real_posix_spawn)
        resolve_real();
    struct spawn_call c = {pid, path, actions, attr, argv, real_posix_spawn};
    if (path_is_ours(path))
        return with_child_env(envp, call_spawn, &c);
    return call_spawn(&c, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real_posix_spawnp)
        resolve_real();
    struct spawn_call c = {pid, file, actions, attr, argv, real_posix_spawnp};
    if (search_is_ours(file))
        return with_child_env(envp, call_spawn, &c);
    return call_spawn(&c, envp);
}
