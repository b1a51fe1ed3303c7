/* exec and posix_spawn for the injected library: see children.h.
 *
 * DESIGN
 * The constructor removes LD_PRELOAD and the run's settings from the environment
 * (inject.c), so the script and every program it starts see the user's own environment.
 * Keeping them in the environment is no answer: the script would see them, every program
 * it starts would load a library that needs libpython's symbols (`ls: symbol lookup
 * error`), and an interpreter of another minor version would load a library built for
 * another layout of its frames.
 *
 * So the environment is extended only at the exec itself, and only when the file exec'd
 * is this interpreter's own file (same device and inode as /proc/self/exe, through any
 * symbolic link: sys.executable, a venv's python, multiprocessing's executable), or a
 * script whose "#!" line names that file (console scripts: `jupyter notebook` execs
 * /usr/bin/jupyter-notebook, whose kernels are then this interpreter's children): the
 * child gets LD_PRELOAD (and GLIBC_TUNABLES, and in a sanitized build ASAN_OPTIONS) with
 * memwatch's part in front of its own value, that value saved (MEMWATCH_SAVED_<name>) for
 * the child's constructor to give back, exactly as the launcher does for the script; and,
 * unless --no-follow, the run's settings exactly as the launcher gave them (the socket,
 * follow, the start time, --check, --backend, --on-nan, --values: run_settings.h), which
 * replace any variable of the same name the caller passed. The child then connects to the
 * same socket as a new process of the run and writes into the same trace (serve.c).
 * Every other exec — another program, another interpreter, a shell — gets what the caller
 * passed, unchanged; when children are followed, memwatch trace is told that this process
 * runs untraced (untraced_note.h), so that the trace says so.
 *
 * These run in a child between fork (or vfork, as _posixsubprocess uses) and exec, where
 * only async-signal-safe calls are allowed and, after vfork, nothing of the parent's
 * memory may change: the new environment is built on the stack (stat, access, getenv and
 * string copies only), and the real functions are resolved by the constructor. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
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
#include "untraced_note.h"

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
#define MAX_CARRIED 3
#else
#define MAX_CARRIED 2
#endif
/* The run's settings (mw_env_ours), each "NAME=value" as the launcher set it. */
#define MAX_SETTINGS 16

static struct carried carried[MAX_CARRIED];
static int ncarried;
static char *settings[MAX_SETTINGS];
static size_t settings_name_len[MAX_SETTINGS];
static int nsettings;
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

/* Remembers the run's settings, as "NAME=value", when children are followed. */
static void keep_settings(void)
{
    const char *follow = getenv(MW_ENV_FOLLOW);
    if (!getenv(MW_ENV_TRACE_SOCKET) || (follow && strcmp(follow, "0") == 0))
        return;
    for (size_t i = 0; mw_env_ours[i] && nsettings < MAX_SETTINGS; i++) {
        const char *value = getenv(mw_env_ours[i]);
        size_t nl = strlen(mw_env_ours[i]);
        char *entry = value ? malloc(nl + strlen(value) + 2) : NULL;
        if (!entry)
            continue;
        memcpy(entry, mw_env_ours[i], nl);
        entry[nl] = '=';
        strcpy(entry + nl + 1, value);
        settings_name_len[nsettings] = nl;
        settings[nsettings++] = entry;
    }
}

void mw_children_init(void)
{
    static const struct {
        const char *name;
        int required;    /* without memwatch's part of it there is nothing to pass on */
    } names[MAX_CARRIED] = {
        {"LD_PRELOAD", 1},
        /* The launcher's stack cache setting (cli/launch.c); only followed children get it,
         * since only they are traced (their constructor gives the user's value back). */
        {"GLIBC_TUNABLES", 0},
#ifdef MEMWATCH_SANITIZE_PRELOAD
        {"ASAN_OPTIONS", 1},   /* the launcher's, which the ASan runtime needs (cli/launch.c) */
#endif
    };
    resolve_real();
    struct stat st;
    if (stat("/proc/self/exe", &st) != 0)
        return;
    keep_settings();
    for (int i = 0; i < MAX_CARRIED; i++) {
        if (!names[i].required && nsettings == 0)
            continue;
        char *ours = ours_part(names[i].name);
        if (!ours && names[i].required)
            return;
        if (ours)
            carried[ncarried++] = (struct carried){names[i].name, strlen(names[i].name), ours,
                                                   strlen(ours)};
    }
    if (nsettings)
        mw_untraced_note_init(getenv(MW_ENV_TRACE_SOCKET));
    exe_dev = st.st_dev;
    exe_ino = st.st_ino;
    ready = 1;
}

/* ---- which exec is a Python child ---------------------------------------------------- */

/* What an exec would run: nothing (no such executable file: the exec fails, or a search
 * goes on), this interpreter, or another program. */
enum exec_target { EXEC_NOTHING, EXEC_OURS, EXEC_OTHER };

static int is_our_interpreter(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_dev == exe_dev && st->st_ino == exe_ino;
}

/* Whether path is a script whose "#!" line names this interpreter's file directly (a
 * console script such as jupyter's, pip's): the kernel runs this interpreter with it.
 * Not "#!/usr/bin/env python3": env is another program, which must not get the library.
 * Raw calls (open and read are this library's own: kwrite_interpose.c). */
static int script_is_ours(const char *path)
{
    char head[256];
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long n = syscall(SYS_read, fd, head, sizeof head - 1);
    syscall(SYS_close, fd);
    if (n < 3 || head[0] != '#' || head[1] != '!')
        return 0;
    head[n] = '\0';
    char *start = head + 2;
    while (*start == ' ' || *start == '\t')
        start++;
    char *end = start;
    while (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
        end++;
    if (end == start || !*end)
        return 0;   /* no interpreter, or a line longer than we read */
    *end = '\0';
    struct stat st;
    return stat(start, &st) == 0 && is_our_interpreter(&st);
}

/* path: the file's name, for a script's "#!" line (NULL: not looked at). */
static enum exec_target classify(const char *path, const struct stat *st)
{
    if (!S_ISREG(st->st_mode))
        return EXEC_NOTHING;
    if (is_our_interpreter(st) || (path && script_is_ours(path)))
        return EXEC_OURS;
    return EXEC_OTHER;
}

static enum exec_target path_target(const char *path)
{
    struct stat st;
    if (!ready || !path || stat(path, &st) != 0 || access(path, X_OK) != 0)
        return EXEC_NOTHING;
    return classify(path, &st);
}

/* What execvp would run for file: the first executable regular file along PATH (the C
 * library's default path when PATH is unset), as the C library searches it. */
static enum exec_target search_target(const char *file)
{
    if (!ready || !file || !*file)
        return EXEC_NOTHING;
    if (strchr(file, '/'))
        return path_target(file);
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
                return classify(buf, &st);
        }
        if (!e)
            return EXEC_NOTHING;
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

/* Whether the child's entry is memwatch's to set: a carried variable, its saved value, or
 * one of the run's settings. */
static int replaced(const char *entry)
{
    for (int v = 0; v < ncarried; v++)
        if (named(entry, carried[v].name, carried[v].name_len) || is_saved_of(entry, &carried[v]))
            return 1;
    for (int i = 0; i < nsettings; i++)
        if (strncmp(entry, settings[i], settings_name_len[i] + 1) == 0)
            return 1;
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Runs fn with envp plus memwatch's part of each carried variable in front of the
 * child's own value, which is saved for the child's constructor to give back, and the
 * run's settings. */
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
    char *vec[n + 2 * MAX_CARRIED + MAX_SETTINGS + 1];
    char buf[bytes];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!replaced(envp[i]))
            vec[k++] = envp[i];
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
    for (int i = 0; i < nsettings; i++)
        vec[k++] = settings[i];
    vec[k] = NULL;
    return fn(ctx, vec);
}

/* Runs fn with the environment the target gets: memwatch's for this interpreter; for any
 * other program what the caller passed, after telling memwatch trace it runs untraced
 * (from the process about to exec: its pid is the program's). */
static int exec_as(enum exec_target target, char *const argv[], char *const envp[], exec_fn fn,
                   void *ctx)
{
    if (target == EXEC_OURS)
        return with_child_env(envp, fn, ctx);
    if (target == EXEC_OTHER)
        mw_untraced_note((pid_t)syscall(SYS_getpid), (pid_t)syscall(SYS_getppid), argv);
    return fn(ctx, envp);
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
    return exec_as(path_target(path), argv, envp, call_execve, &c);
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
    return exec_as(search_target(file), argv, envp, call_execvpe, &c);
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
    enum exec_target target = ready && fstat(fd, &st) == 0 ? classify(NULL, &st) : EXEC_NOTHING;
    return exec_as(target, argv, envp, call_fexecve, &c);
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

/* posix_spawn runs in this process: memwatch trace hears of an untraced program once it
 * has its pid. */
static int spawn_as(enum exec_target target, struct spawn_call *c, char *const envp[])
{
    if (target == EXEC_OURS)
        return with_child_env(envp, call_spawn, c);
    pid_t pid = 0;
    if (!c->pid)
        c->pid = &pid;
    int rc = call_spawn(c, envp);
    if (rc == 0 && target == EXEC_OTHER)
        mw_untraced_note(*c->pid, getpid(), c->argv);
    return rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real_posix_spawn)
        resolve_real();
    struct spawn_call c = {pid, path, actions, attr, argv, real_posix_spawn};
    return spawn_as(path_target(path), &c, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real_posix_spawnp)
        resolve_real();
    struct spawn_call c = {pid, file, actions, attr, argv, real_posix_spawnp};
    return spawn_as(search_target(file), &c, envp);
}
