/* Automatic checks (`memwatch trace --check`), so that a script that only calls
 * memwatch.watch() still gets every change into the trace.
 *
 * DESIGN:
 *   - line: the fault handler (any thread) calls PyErr_SetInterruptEx() for a signal
 *     number whose Python-level handler is memwatch's check. That call is
 *     async-signal-safe and makes the main thread run the check at its next eval-breaker
 *     point (function entry, loop back-edge), so a function called in a loop gets one
 *     change per call. Where the write happened is captured in the fault handler itself,
 *     so attribution never depends on when the check runs. The writing thread also checks
 *     at its own next line (lines.c), which straight-line code needs.
 *   - pages whose neighbours are busy: the engine offers them (on_busy_page) and the next
 *     check leaves them open; while any is, line mode compares at every line boundary of
 *     every thread (lines.c), and the poller when no thread runs lines.
 *   - every mode but manual: a poller thread checks when pages are dirty and the main thread
 *     has not (it may be blocked in join() or sleep while other threads write). line polls
 *     every POLL_MS; interval:MS checks every MS, coalescing what was written in between.
 *   - --on-nan: every check made here, and every check made elsewhere (which calls
 *     mw_autocheck_after_check), is followed by a question to on-nan: when a message waits,
 *     the check signal is raised, so the main thread tells the script at its next safe
 *     point; the line trace and the signal handler tell it themselves right after their
 *     check. on-nan never calls back here.
 * Checks always run with the GIL held, so they never overlap Python code that watches or
 * unwatches. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "autocheck.h"
#include "channel.h"
#include "check.h"
#include "config.h"
#include "lines.h"
#include "location.h"
#include "on_nan.h"
#include "shared_watch.h"
#include "pycompat.h"
#include "threads.h"

#define POLL_MS 20
/* In line mode the poller waits for writes to settle (no new fault for a poll period), so a
 * long write in progress (a numpy op on a large array, with the GIL released) is not split
 * into two changes; a writer that never pauses is still checked this often. */
#define MAX_UNSETTLED_MS 1000
/* A thread whose line check has been pending this long has lost its trace function (a
 * debugger set its own): the poller checks after all. */
#define MAX_PENDING_MS 10000

static uint64_t fault_count;             /* atomic: faults seen by the writer hook */
/* SIGTERM arrived while its action was the default one (see on_term). */
static volatile sig_atomic_t term_requested;
static struct timespec term_time;
#define TERM_GRACE_MS 1000

static int check_signal;   /* Python-level signal whose handler checks (0: none); see DESIGN */
static int installed_signal;   /* the one install_line_handler set, which fork children keep */
static pthread_t poller;
static int poller_running;
static volatile int poller_stop;         /* atomic */
static pthread_mutex_t poller_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t poller_wake = PTHREAD_COND_INITIALIZER;

/* Has the main thread run autocheck_handler at its next safe point. Async-signal-safe. */
static void request_check(void)
{
    if (check_signal)
        PyErr_SetInterruptEx(check_signal);
}

void mw_autocheck_after_check(void)
{
    if (mw_on_nan_pending())
        request_check();
}

/* After every check: line boundaries compare while the engine has pages left open (only
 * line mode leaves any). */
static void after_check(void)
{
    mw_autocheck_after_check();
    mw_lines_set_compare(mw_run.check_mode == MW_CHECK_LINE && mw_engine_shadowed() > 0);
}

/* Before every check: an open page's writes are named after the line at whose boundary
 * they are seen, which with several Python threads may be another thread's line
 * (shadow.c): then this check protects open pages again and leaves none open. */
static void before_check(void)
{
    if (mw_run.check_mode == MW_CHECK_LINE)
        mw_engine_allow_shadows(!mw_threads_program_has_several());
}

/* Every check autocheck makes (see DESIGN: --on-nan). */
static Py_ssize_t check(int automatic)
{
    before_check();
    Py_ssize_t found = mw_check_all_ex(automatic);
    after_check();
    return found;
}

/* The check at a line boundary (lines.c): writer is the line that just ran. A failed
 * check must not raise into the script; --on-nan=raise does, at the line after the write. */
static int check_at_line(const struct mw_writer *writer)
{
    before_check();
    if (mw_check_line(writer) < 0)
        PyErr_WriteUnraisable(NULL);
    after_check();
    return mw_on_nan_raise_pending();
}

/* Async-signal-safe: runs in the fault handler of the writing thread.
 *
 * In line mode the check must run before the next line writes again (a page, once written,
 * does not fault again until checked). The eval breaker alone comes too late for
 * straight-line code (it is only looked at on calls and loop back-edges), so the writing
 * thread checks at its very next line (lines.c); the main thread's check signal serves
 * threads that run no Python code. */
static void on_fault(struct mw_writer *out, void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&fault_count, 1, __ATOMIC_RELAXED);
    mw_location_capture(out);
    if (mw_run.check_mode != MW_CHECK_LINE)
        return;
    /* This thread checks at its own next line; the main thread's check signal serves only
     * threads that cannot (no Python code running, or a debugger's trace function). */
    if (!out->file[0] || !mw_lines_check_here())
        request_check();
}

/* Async-signal-safe: the engine offers a busy page (shadow.c; line mode only). The next
 * check leaves it open: this thread's next line runs that check. */
static void on_busy_page(void)
{
    if (!mw_lines_check_here())
        request_check();
}

/* Dies by SIGTERM as python3 would, now that the trace has everything. */
static void die_by_term(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGTERM);
}

/* SIGTERM with its default action would kill the script before memwatch's final check.
 * Async-signal-safe: it only asks the main thread to finish the trace and then die by
 * SIGTERM (autocheck_handler); the poller does so without a final check if the main thread
 * does not get there within TERM_GRACE_MS. */
static void on_term(int sig)
{
    (void)sig;
    if (!term_requested)
        clock_gettime(CLOCK_MONOTONIC, &term_time);
    term_requested = 1;
    request_check();
}

static PyObject *autocheck_handler(PyObject *self, PyObject *args)
{
    (void)args;
    if (term_requested) {
        PyObject *r = PyObject_CallMethod(self, "_finish", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        die_by_term();
    }
    /* The main thread's check waits for one the poller may be running (only a check
     * nested in this same thread is skipped), so a line's write is recorded before the
     * script goes on. A check that fails must not raise into whatever line the script is
     * on. Not while a thread's line is still writing (lines.c): its own check comes. */
    if (!(mw_run.check_mode == MW_CHECK_LINE && mw_lines_pending()) && check(0) < 0)
        PyErr_WriteUnraisable(NULL);
    /* --on-nan: the script learns here, at the line after the write. */
    if (mw_on_nan_raise_pending() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int term_grace_over(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - term_time.tv_sec) * 1000 + (now.tv_nsec - term_time.tv_nsec) / 1000000;
    return ms >= TERM_GRACE_MS;
}

static PyMethodDef autocheck_def = {"_autocheck", autocheck_handler, METH_VARARGS, NULL};

static void *poll_loop(void *arg)
{
    (void)arg;
    /* memwatch's own thread: what it writes beside watched bytes (its thread state, its
     * checks) is never the program's (README, Neighbours). */
    mw_engine_own_work(1);
    unsigned period_ms = mw_run.check_mode == MW_CHECK_INTERVAL ? mw_run.interval_ms : POLL_MS;
    uint64_t seen_faults = 0;
    unsigned unsettled_ms = 0;
    pthread_mutex_lock(&poller_lock);
    while (!__atomic_load_n(&poller_stop, __ATOMIC_ACQUIRE)) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += period_ms / 1000;
        deadline.tv_nsec += (long)(period_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&poller_wake, &poller_lock, &deadline);
        if (__atomic_load_n(&poller_stop, __ATOMIC_ACQUIRE))
            break;
        if (term_requested && term_grace_over()) {
            mw_channel_drain();
            die_by_term();
        }
        /* Pages left open are compared at line boundaries; when no thread has run a line
         * for a while (all blocked, or native threads writing), the poller compares. */
        if (mw_shared_watch_changed() && !mw_py_is_finalizing()) {
            /* Another process watches shared memory this one may map (shared_watch.h). */
            pthread_mutex_unlock(&poller_lock);
            PyGILState_STATE gil = PyGILState_Ensure();
            mw_shared_watch_adopt();
            PyGILState_Release(gil);
            pthread_mutex_lock(&poller_lock);
        }
        int open_changed = mw_lines_comparing() &&
                           mw_lines_quiet_ns() > (uint64_t)period_ms * 1000000u &&
                           mw_engine_shadows_changed();
        if ((!mw_engine_has_dirty() && !open_changed) || mw_py_is_finalizing()) {
            unsettled_ms = 0;
            continue;
        }
        uint64_t faults = __atomic_load_n(&fault_count, __ATOMIC_RELAXED);
        if (mw_run.check_mode == MW_CHECK_LINE &&
            ((faults != seen_faults && unsettled_ms < MAX_UNSETTLED_MS) ||
             (mw_lines_pending() && unsettled_ms < MAX_PENDING_MS))) {
            /* Writes still coming, or a thread is still on the line that wrote (its own
             * check comes at its next line): a check now would cut a line in two. */
            seen_faults = faults;
            unsettled_ms += period_ms;
            continue;
        }
        unsettled_ms = 0;
        pthread_mutex_unlock(&poller_lock);
        PyGILState_STATE gil = PyGILState_Ensure();
        mw_threads_own_python_thread();
        if (!__atomic_load_n(&poller_stop, __ATOMIC_ACQUIRE) && check(1) < 0)
            PyErr_WriteUnraisable(NULL);
        PyGILState_Release(gil);
        pthread_mutex_lock(&poller_lock);
    }
    pthread_mutex_unlock(&poller_lock);
    return NULL;
}

static int install_line_handler(PyObject *module)
{
    PyObject *signal_mod = PyImport_ImportModule("signal");
    if (!signal_mod)
        return -1;
    PyObject *handler = PyCFunction_NewEx(&autocheck_def, module, NULL);
    int sig = SIGRTMAX - 1;
    PyObject *r = handler ? PyObject_CallMethod(signal_mod, "signal", "iO", sig, handler) : NULL;
    Py_XDECREF(handler);
    Py_DECREF(signal_mod);
    if (!r) {
        /* signal.signal() works in the main thread only: without it, the poller checks. */
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(r);
    check_signal = installed_signal = sig;
    return 0;
}

static void install_term_handler(void)
{
    struct sigaction old, sa;
    if (sigaction(SIGTERM, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
        return;   /* the script's own (or an inherited SIG_IGN) stays */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

/* The check thread: 0, or -1 with an exception. It must not take signals meant for the
 * main thread (threads.c). */
static int start_poller(void)
{
    __atomic_store_n(&poller_stop, 0, __ATOMIC_RELEASE);
    int err = mw_threads_start(&poller, poll_loop);
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "memwatch: cannot start the check thread: %s", strerror(err));
        return -1;
    }
    poller_running = 1;
    return 0;
}

int mw_autocheck_start(PyObject *module)
{
    mw_engine_set_writer_hook(on_fault, NULL);
    /* Busy pages are left open only where line boundaries compare them and name the line
     * that wrote; in the other modes they stay trapped (exact first writers, at a bounded
     * cost: MW_NEIGHBOUR_LIMIT). */
    if (mw_run.check_mode == MW_CHECK_LINE)
        mw_engine_set_hot_hook(on_busy_page);
    if (mw_lines_init(check_at_line) < 0)
        return -1;
    if (!mw_run.traced)
        return 0;
    /* The Python-level check handler serves line mode and the end on SIGTERM. */
    if (install_line_handler(module) < 0)
        return -1;
    install_term_handler();
    if (mw_run.check_mode == MW_CHECK_MANUAL)
        return 0;
    return start_poller();
}

/* Stops the check thread (GIL held; let go while it ends). */
static void stop_poller(void)
{
    if (!poller_running)
        return;
    pthread_mutex_lock(&poller_lock);
    __atomic_store_n(&poller_stop, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&poller_wake);
    pthread_mutex_unlock(&poller_lock);
    /* The poller may be waiting for the GIL: let it have it while we wait. */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(poller, NULL);
    Py_END_ALLOW_THREADS
    poller_running = 0;
}

void mw_autocheck_stop(void)
{
    check_signal = 0;
    stop_poller();
}

/* os.fork() calls under way in this process, and whether the check thread stopped for
 * them (mw_autocheck_fork_hook); whether this thread is between its fork's two calls. */
static int forks_under_way, poller_paused;
static __thread int forking_here __attribute__((tls_model("initial-exec")));

/* The check thread again after a fork. */
static int resume_poller(void *arg)
{
    (void)arg;
    if (forks_under_way > 0 || !poller_paused || poller_running)
        return 0;
    poller_paused = 0;
    return start_poller();
}

int mw_autocheck_fork_hook(void)
{
    forking_here = !forking_here;
    if (forking_here) {
        if (forks_under_way++ == 0 && poller_running) {
            stop_poller();
            poller_paused = 1;
        }
        return 0;
    }
    if (forks_under_way == 0 || --forks_under_way > 0 || !poller_paused)
        return 0;
    /* Python 3.13 looks at the process's threads after the after_in_parent functions (3.12
     * before them): from the main thread, the check thread comes back from the eval loop
     * (Py_AddPendingCall), which that thread is about to reach. A fork from another thread
     * gets it back at once: a pending call waits for the main thread, which may be blocked
     * for long, and a process with two Python threads is multi-threaded under python3 too. */
    if (syscall(SYS_gettid) != getpid() ||
        Py_AddPendingCall(resume_poller, NULL) != 0)
        return resume_poller(NULL);
    return 0;
}

void mw_autocheck_after_watch(void)
{
    if (mw_run.check_mode == MW_CHECK_LINE)
        mw_lines_watched_here();
}

int mw_autocheck_restart_in_child(void)
{
    if (!mw_channel_is_open() || mw_run.check_mode == MW_CHECK_MANUAL)
        return 0;
    /* Python's signal handlers are the parent's: the check signal still checks here, so a
     * write in code not armed yet is checked at the eval breaker, as in the parent, and
     * that check arms the code (a pool worker's function, on 3.12+). */
    check_signal = installed_signal;
#ifdef __SANITIZE_ADDRESS__
    /* A test build: AddressSanitizer's allocator takes no fork handlers, and a thread
     * started in the child can wait forever on an allocator lock another parent thread
     * held at the fork (tests/sanitize.sh). Its fork children check at their line
     * boundaries and at their end only. */
    return 0;
#endif
    if (poller_running)
        return 0;
    return start_poller();
}

void mw_autocheck_after_fork(void)
{
    /* The poller is gone, and may have held its lock at the fork. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_wake = PTHREAD_COND_INITIALIZER;
    poller_lock = fresh;
    poller_wake = fresh_wake;
    poller_running = 0;
    forks_under_way = poller_paused = forking_here = 0;
    check_signal = 0;
    mw_lines_after_fork();
}
