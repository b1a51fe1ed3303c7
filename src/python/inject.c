/* Entry point of libmemwatch-inject.so, preloaded into python3 by `memwatch trace`
 * (cli/cmd_trace.c explains why the interpreter is not linked into memwatch).
 *
 * Before python3's main() runs, the constructor registers the built-in `memwatch` module
 * (PyImport_AppendInittab must precede interpreter initialization), takes the record pipe
 * from the environment, and removes every trace of memwatch from the environment so that
 * the script and its subprocesses see what they would under python3. A Python child of the
 * script (children.c) loads it again with the run's settings and is traced the same way,
 * as a new process of the run; under --no-follow it gets the library alone, and there the
 * module exists and watches nothing (watcher_object.c).
 *
 * It is the top of the library: it calls into the other parts and none calls into it, so
 * it has no header (the configuration it loads is config.c's, the module it registers
 * module.c's). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocheck.h"
#include "channel.h"
#include "check.h"
#include "shared_watch.h"
#include "children.h"
#include "config.h"
#include "fork.h"
#include "held.h"
#include "module.h"
#include "pycompat.h"

static pid_t traced_pid;   /* the process memwatch traces; not its forked children */

/* A child made by fork() without exec (multiprocessing's fork start method, os.fork): the
 * engine starts afresh (the watches on shared memory come back with the GIL: fork.c), and
 * the child connects on its own unless --no-follow, never writing into the parent's
 * connection. Async-signal-safe: system calls and memory reserved before the fork. */
static void after_fork_in_child(void)
{
    mw_engine_reset_after_fork();
    mw_check_after_fork();
    mw_held_after_fork();
    mw_channel_after_fork();
    mw_autocheck_after_fork();
    mw_fork_happened();
    if (mw_channel_is_open())
        traced_pid = getpid();
    else
        mw_run.traced = 0;
}

/* os._exit() skips atexit: the changes made until then are found here, before the real
 * _exit. Only in the traced process itself with the GIL held (os._exit holds it); never in a
 * vfork child sharing its memory, nor after the interpreter finalized. */
__attribute__((visibility("default"), noreturn)) void _exit(int status)
{
    if (mw_run.traced && getpid() == traced_pid && Py_IsInitialized() && !mw_py_is_finalizing() &&
        PyGILState_Check()) {
        PyObject *name = PyUnicode_FromString("memwatch");
        PyObject *module = name ? PyImport_GetModule(name) : NULL;   /* never imports it */
        Py_XDECREF(name);
        PyObject *r = module ? PyObject_CallMethod(module, "_finish", NULL) : NULL;
        Py_XDECREF(r);
        Py_XDECREF(module);
        PyErr_Clear();
        mw_channel_end(status);
        mw_channel_drain();
    }
    for (;;)
        syscall(SYS_exit_group, status);
}

/* launched: the run's socket is in the environment: put there by `memwatch trace` itself or
 * by a traced parent's exec (children.c), both of which also put GLIBC_TUNABLES ahead of
 * the user's; else (an untraced child under --no-follow) only LD_PRELOAD (and ASAN_OPTIONS)
 * changed. */
static void restore_environment(int launched)
{
    mw_env_restore_users("LD_PRELOAD");
#ifdef MEMWATCH_SANITIZE_PRELOAD
    /* A sanitized build's launcher set ASAN_OPTIONS for this process (cli/launch.c). */
    mw_env_restore_users("ASAN_OPTIONS");
#endif
    if (launched)
        mw_env_restore_users("GLIBC_TUNABLES");
    for (size_t i = 0; mw_env_ours[i]; i++)
        unsetenv(mw_env_ours[i]);
}

/* Every exit path that runs atexit functions (including Py_Exit from inside Py_RunMain)
 * sends what is still queued before the process ends. */
static void drain_at_exit(void)
{
    if (getpid() == traced_pid)
        mw_channel_close();
}

/* The launcher preloads this library only into an interpreter of the minor version it was
 * built for (cli/interpreter.c), and children.c only into the file of the interpreter it
 * runs in; anything else would have its frames read with another layout. Checked once
 * more here, before anything is installed. Under `memwatch trace` a mismatch ends the
 * process with one line, before the script runs. Anywhere else (a preload that reached
 * another interpreter some other way) the program must run as if memwatch were not there:
 * the library gives the environment back, installs nothing and says nothing. 1: go on. */
static int check_own_version(int launched)
{
    unsigned long running = Py_Version;
    if ((running >> 16) == ((unsigned long)PY_VERSION_HEX >> 16))
        return 1;
    if (!launched) {
        restore_environment(0);
        return 0;
    }
    fprintf(stderr, "memwatch: this library is built for CPython %d.%d, but the interpreter is "
            "%lu.%lu.%lu\n", PY_MAJOR_VERSION, PY_MINOR_VERSION, running >> 24,
            (running >> 16) & 0xff, (running >> 8) & 0xff);
    syscall(SYS_exit_group, 2);
    return 0;
}

__attribute__((constructor)) static void mw_inject_start(void)
{
    const char *socket_name = getenv(MW_ENV_TRACE_SOCKET);
    int launched = socket_name != NULL;
    if (!check_own_version(launched))
        return;
    mw_children_init();
    mw_config_load();
    if (socket_name) {
        const char *start = getenv(MW_ENV_START_NS);
        const char *follow = getenv(MW_ENV_FOLLOW);
        struct mw_rec_hello hello = {
            .python_version = Py_GetVersion(),
            .backend = mw_backend_name(mw_run.backend == MW_BACKEND_AUTO
                                           ? mw_engine_default_backend() : mw_run.backend),
            .page_size = sysconf(_SC_PAGESIZE),
        };
        if (mw_channel_open(socket_name, start ? strtoll(start, NULL, 10) : 0, &hello,
                            !(follow && strcmp(follow, "0") == 0)) == 0) {
            mw_run.traced = 1;
            mw_shared_watch_init();   /* in the run's shared memory, before the script runs */
        }
    }
    restore_environment(launched);
    traced_pid = getpid();
    pthread_atfork(mw_channel_before_fork, mw_channel_after_fork_parent, after_fork_in_child);
    PyImport_AppendInittab("memwatch", mw_module_init);
    if (mw_run.traced)
        atexit(drain_at_exit);
}
