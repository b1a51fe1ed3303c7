/* Which Python interpreter `memwatch trace` runs (memwatch-trace(1), INTERPRETER).
 *
 * DESIGN
 * - The interpreter the user would get: --python or MEMWATCH_PYTHON; else the activated
 *   venv's python; else python3 on PATH, when memwatch supports it; else Debian's
 *   python3. The first three are the user's explicit choice and are refused (one line)
 *   when unsupported; python3 on PATH is passed over then, since memwatch cannot run it.
 * - Supported means: an injected library for its CPython minor version is installed next
 *   to memwatch (libmemwatch-inject-3.12.so), built against that version's headers. The
 *   libraries present are the list of supported versions.
 * - The version is read from the executable's real name when it is python3.N (Debian's,
 *   pyenv's, venvs' and most others' python3 are symbolic links to one), which costs one
 *   realpath(). Anything else (a copied binary, a version manager's shim script) is asked,
 *   by running it once with -I -S: its implementation, version, ABI flags and
 *   sys.executable. A shim is not an interpreter: the executable it would run is run
 *   instead (the environment a shim sets up, such as pyenv's PATH, is not), so the
 *   injected library never lands in a shell.
 * - argv[0] is the name the user would run: the venv's own bin/python3 (Python finds the
 *   venv from it), the PATH entry, the path given. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "interpreter.h"

#define DEBIAN_PYTHON "/usr/bin/python3"
#define PROBE_TIMEOUT_MS 10000
#define INJECT_PREFIX "libmemwatch-inject-"

/* What an interpreter says about itself when asked (probe). */
struct identity {
    char implementation[32];
    char version[32];     /* "3.12.1" */
    char abiflags[16];
    char executable[PATH_MAX];
};

const char *mw_interpreter_source_name(enum mw_interpreter_source source)
{
    switch (source) {
    case MW_PYTHON_FROM_OPTION: return "--python";
    case MW_PYTHON_FROM_ENV: return "MEMWATCH_PYTHON";
    case MW_PYTHON_FROM_VENV: return "VIRTUAL_ENV";
    case MW_PYTHON_FROM_PATH: return "PATH";
    default: return "default";
    }
}

/* ---- the injected libraries ---------------------------------------------------------- */

static int has_inject(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        found = strncmp(e->d_name, INJECT_PREFIX, strlen(INJECT_PREFIX)) == 0;
    closedir(d);
    return found;
}

/* Where the injected libraries are: next to the executable in the build tree, in
 * ../<libdir>/memwatch relative to it once installed (wherever the tree was unpacked),
 * else where this build would install them. */
static const char *inject_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(dir, sizeof dir, "%s", exe);
            if (has_inject(dir))
                return dir;
            int len = snprintf(dir, sizeof dir, "%s/../%s/memwatch", exe, MEMWATCH_INSTALL_LIBDIR);
            if (len > 0 && (size_t)len < sizeof dir && has_inject(dir))
                return dir;
        }
    }
    snprintf(dir, sizeof dir, "%s", MEMWATCH_INSTALL_FULL_LIBDIR "/memwatch");
    return dir;
}

/* Is there a library for minor ("3.12")? Fills out->inject. */
static int find_inject(const char *minor, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/" INJECT_PREFIX "%s.so", inject_dir(), minor);
    return n > 0 && (size_t)n < size && access(out, R_OK) == 0;
}

static int compare_versions(const void *a, const void *b)
{
    unsigned ma = 0, na = 0, mb = 0, nb = 0;
    sscanf(*(char *const *)a, "%u.%u", &ma, &na);
    sscanf(*(char *const *)b, "%u.%u", &mb, &nb);
    return ma != mb ? (ma > mb) - (ma < mb) : (na > nb) - (na < nb);
}

/* "CPython 3.11, 3.12 and 3.13", from the libraries present. */
static void supported_list(char *out, size_t size)
{
    char *names[32];
    int count = 0;
    DIR *d = opendir(inject_dir());
    for (struct dirent *e; d && count < 32 && (e = readdir(d));) {
        size_t len = strlen(e->d_name), plen = strlen(INJECT_PREFIX);
        if (len > plen + 3 && strncmp(e->d_name, INJECT_PREFIX, plen) == 0 &&
            strcmp(e->d_name + len - 3, ".so") == 0 &&
            (names[count] = strndup(e->d_name + plen, len - plen - 3)))
            count++;
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)count, sizeof *names, compare_versions);
    size_t at = (size_t)snprintf(out, size, "%s", count ? "CPython " : "no Python version");
    for (int i = 0; i < count; i++) {
        const char *sep = i == 0 ? "" : i == count - 1 ? " and " : ", ";
        if (at < size)
            at += (size_t)snprintf(out + at, size - at, "%s%s", sep, names[i]);
        free(names[i]);
    }
}

/* ---- identifying an interpreter ------------------------------------------------------ */

/* The first line of s (destructively), copied into out. */
static char *take_line(char **s, char *out, size_t size)
{
    char *nl = strchr(*s, '\n');
    if (!nl)
        return NULL;
    *nl = '\0';
    int n = snprintf(out, size, "%s", *s);
    *s = nl + 1;
    return n >= 0 && (size_t)n < size ? out : NULL;
}

/* Runs path -I -S and reads what it says about itself. 0, or -1 when it could not be
 * asked (not runnable, no answer within PROBE_TIMEOUT_MS, not a Python). */
static int probe(const char *path, struct identity *id)
{
    static const char code[] =
        "import sys; i = sys.implementation; "
        "print(i.name, '%d.%d.%d' % sys.version_info[:3], sys.abiflags, sys.executable, sep='\\n')";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(fds[1], 1);
        dup2(null, 2);
        execl(path, path, "-I", "-S", "-c", code, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[3 * PATH_MAX];
    size_t got = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (waited >= PROBE_TIMEOUT_MS || poll(&p, 1, (int)(PROBE_TIMEOUT_MS - waited)) == 0) {
            kill(pid, SIGKILL);
            break;
        }
        ssize_t n = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (got += (size_t)n) == sizeof buf - 1)
            break;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    buf[got] = '\0';
    char *s = buf;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        !take_line(&s, id->implementation, sizeof id->implementation) ||
        !take_line(&s, id->version, sizeof id->version) ||
        !take_line(&s, id->abiflags, sizeof id->abiflags) ||
        !take_line(&s, id->executable, sizeof id->executable))
        return -1;
    return 0;
}

/* "3.12" when the file is named python3.12 exactly, else "". */
static void minor_from_name(const char *real, char *minor, size_t size)
{
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    unsigned m;
    int end = 0;
    minor[0] = '\0';
    if (sscanf(base, "python3.%u%n", &m, &end) == 1 && base[end] == '\0' &&
        strspn(base + 8, "0123456789") == strlen(base + 8))
        snprintf(minor, size, "3.%u", m);
}

static int is_elf(const char *path)
{
    unsigned char magic[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n == 4 && memcmp(magic, "\177ELF", 4) == 0;
}

/* The file a command name runs: itself when it has a slash, else the first executable of
 * that name on PATH. */
static int resolve_command(const char *name, char *out, size_t size)
{
    if (strchr(name, '/')) {
        snprintf(out, size, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    char *copy = path ? strdup(path) : NULL;
    int rc = -1;
    for (char *save = NULL, *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && rc;
         dir = strtok_r(NULL, ":", &save)) {
        int n = snprintf(out, size, "%s/%s", dir, name);
        struct stat st;
        if (dir[0] == '/' && n > 0 && (size_t)n < size && access(out, X_OK) == 0 &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode))
            rc = 0;
    }
    free(copy);
    return rc;
}

/* Fills version, minor, path and argv0 of it for the interpreter at candidate. 1 when
 * memwatch supports it, 0 when not (err says why), -1 when it cannot be run at all. */
static int identify(const char *candidate, struct mw_interpreter *it, char *err, size_t errsize)
{
    char real[PATH_MAX];
    if (!realpath(candidate, real) || access(real, X_OK) != 0) {
        snprintf(err, errsize, "cannot run the interpreter '%s': %s", candidate,
                 strerror(errno ? errno : EACCES));
        return -1;
    }
    snprintf(it->path, sizeof it->path, "%s", candidate);
    snprintf(it->argv0, sizeof it->argv0, "%s", candidate);
    int elf = is_elf(real);
    if (elf)
        minor_from_name(real, it->minor, sizeof it->minor);
    if (elf && it->minor[0] && find_inject(it->minor, it->inject, sizeof it->inject)) {
        snprintf(it->version, sizeof it->version, "%s", it->minor);
        return 1;
    }
    /* Not named for its version, or not one memwatch has a library for: ask it (a
     * refusal names the exact version). */
    struct identity id;
    if (probe(candidate, &id) < 0) {
        snprintf(err, errsize, "cannot run the interpreter '%s': it does not answer as "
                 "Python does (`%s -I -S -c ...` failed)", candidate, candidate);
        return -1;
    }
    unsigned major = 0, minor = 0;
    sscanf(id.version, "%u.%u", &major, &minor);
    snprintf(it->version, sizeof it->version, "%s", id.version);
    snprintf(it->minor, sizeof it->minor, "%u.%u", major, minor);
    if (!elf && id.executable[0]) {   /* a shim: run what it runs */
        snprintf(it->path, sizeof it->path, "%s", id.executable);
        snprintf(it->argv0, sizeof it->argv0, "%s", id.executable);
    }
    int cpython = strcmp(id.implementation, "cpython") == 0;
    if (cpython && !id.abiflags[0] && find_inject(it->minor, it->inject, sizeof it->inject))
        return 1;
    char supported[256];
    supported_list(supported, sizeof supported);
    snprintf(err, errsize, "cannot trace with '%s' (%s %s%s%s): this memwatch supports %s",
             candidate, cpython ? "CPython" : id.implementation, id.version,
             id.abiflags[0] ? ", ABI flags " : "", id.abiflags, supported);
    return 0;
}

/* ---- the choice ---------------------------------------------------------------------- */

/* An interpreter the user named (option, environment, venv): it must be supported. */
static int chosen(const char *name, enum mw_interpreter_source source, struct mw_interpreter *out,
                  char *err, size_t errsize)
{
    char path[PATH_MAX];
    out->source = source;
    if (resolve_command(name, path, sizeof path) < 0) {
        snprintf(err, errsize, "cannot run the interpreter '%s' (from %s): %s", name,
                 mw_interpreter_source_name(source), strerror(ENOENT));
        return -1;
    }
    int rc = identify(path, out, err, errsize);
    if (rc <= 0 && source != MW_PYTHON_FROM_OPTION) {
        size_t n = strlen(err);
        snprintf(err + n, errsize - n, " (chosen by %s; use --python to choose another)",
                 mw_interpreter_source_name(source));
    }
    return rc == 1 ? 0 : -1;
}

/* The activated venv's python3 (or python). */
static int venv_python(char *out, size_t size)
{
    const char *venv = getenv("VIRTUAL_ENV");
    if (!venv || !venv[0])
        return -1;
    static const char *const names[] = {"python3", "python"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int n = snprintf(out, size, "%s/bin/%s", venv, names[i]);
        if (n > 0 && (size_t)n < size && access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

int mw_interpreter_choose(const char *option, struct mw_interpreter *out, char *err,
                          size_t errsize)
{
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    const char *env = getenv("MEMWATCH_PYTHON");
    char path[PATH_MAX];
    if (option)
        return chosen(option, MW_PYTHON_FROM_OPTION, out, err, errsize);
    if (env && env[0])
        return chosen(env, MW_PYTHON_FROM_ENV, out, err, errsize);
    if (venv_python(path, sizeof path) == 0)
        return chosen(path, MW_PYTHON_FROM_VENV, out, err, errsize);
    if (resolve_command("python3", path, sizeof path) == 0) {
        out->source = MW_PYTHON_FROM_PATH;
        if (identify(path, out, err, errsize) == 1)
            return 0;
        memset(out, 0, sizeof *out);   /* not one memwatch can run: the next choice */
        err[0] = '\0';
    }
    return chosen(DEBIAN_PYTHON, MW_PYTHON_FROM_DEFAULT, out, err, errsize);
}
