/* Line boundaries: the checks that run between two lines of a thread, in line mode.
 *
 * DESIGN
 * - After a trap (autocheck.c's fault hook), the writing thread must check before its next
 *   line writes again: a page, once written, does not trap again until checked. The fault
 *   hook sets this thread's check_pending and turns on, for this thread only, the trace
 *   function below, which checks at the very next line (or return) and, its work done,
 *   removes itself. What PyEval_SetTrace() would store is written directly into the
 *   faulting thread's own state (only this thread reads it), which is async-signal-safe.
 * - While the engine has pages left open (shadowed because their neighbours are busy:
 *   src/core/shadow.c), a write to them does not trap. Then every Python thread runs the
 *   trace function at each line boundary (compare mode): it asks the engine whether an open
 *   page's watched bytes changed (a few memcmp, mw_engine_shadows_changed) and if so checks,
 *   naming as the writer the line this thread has just run. For that the trace function
 *   remembers, per thread, what runs until its next event: the new line (LINE), the
 *   callee's first line (CALL), the caller's current line (RETURN).
 * - A thread's remembered code object is borrowed: at the thread's next event it is still
 *   running (a RETURN event moves it to the caller first). compare_generation discards what
 *   a thread remembered before compare mode was last turned on.
 * - Threads that start later are given the trace function at the next check (adopt). A
 *   thread with a trace or profile function of its own (a debugger, coverage) is left alone:
 *   its checks come from the eval breaker and the poller instead.
 * - Tracing makes pure-Python code about twice as slow while it is on; compare mode is on
 *   only while pages are open (a second at a time, shadow.c).
 * - A line's writes are one change: while a thread's line check is pending, no other check
 *   runs (autocheck.c asks mw_lines_pending), since a check harvests every page: one
 *   running in the middle of that line (the poller during a long numpy operation that
 *   paused, the main thread's eval breaker inside a call on the same line) would split it.
 * Needs the GIL, but for mw_lines_check_here (async-signal-safe). CPython 3.11's thread
 * state layout (Py_BUILD_CORE), as location.c. */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>

#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lines.h"
#include "location.h"

struct line_state {
    int check_pending;        /* a trap asked this thread to check at its next line */
    unsigned generation;      /* compare_generation when code/line were remembered */
    PyCodeObject *code;       /* what runs until the next event (borrowed), or NULL */
    int line;
    pid_t tid;
};

static __thread struct line_state state __attribute__((tls_model("initial-exec")));

static mw_lines_check_fn check_fn;
static _Atomic int threads_pending;        /* threads whose check_pending is set */
static int compare_on;                     /* GIL */
static unsigned compare_generation;        /* GIL */
static uint64_t thread_id_seen;            /* GIL: interp's next thread id at the last adopt */
static _Atomic uint64_t last_event_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int line_event(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

/* Is ts running our trace function, or free to run it? 0 when a debugger's or profiler's
 * function is in use. */
static int install_on(PyThreadState *ts)
{
    if (ts->c_tracefunc == line_event)
        return 1;
    if (ts->c_tracefunc || ts->c_profilefunc || !ts->cframe)
        return 0;
    ts->c_traceobj = NULL;
    ts->c_tracefunc = line_event;
    ts->cframe->use_tracing = 255;
    return 1;
}

static void uninstall_here(void)
{
    PyThreadState *ts = PyThreadState_Get();
    if (ts->c_tracefunc == line_event)
        PyEval_SetTrace(NULL, NULL);
}

/* Gives every thread of the interpreter the trace function (compare mode); cheap when no
 * thread started since the last time. */
static void adopt_threads(void)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    uint64_t next_id = interp->threads.next_unique_id;
    if (next_id == thread_id_seen)
        return;
    thread_id_seen = next_id;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts; ts = PyThreadState_Next(ts))
        install_on(ts);
}

/* What runs in this thread until its next event (see DESIGN). */
static void remember(PyFrameObject *frame, int what)
{
    PyFrameObject *at = frame;
    if (what == PyTrace_RETURN)
        at = PyFrame_GetBack(frame);   /* new reference, or NULL: back to C */
    else
        Py_XINCREF(at);
    PyCodeObject *code = at ? PyFrame_GetCode(at) : NULL;
    state.code = code;
    state.line = !at ? 0 : what == PyTrace_CALL ? code->co_firstlineno : PyFrame_GetLineNumber(at);
    state.generation = compare_generation;
    Py_XDECREF(code);   /* the running frame keeps it alive: borrowed from here on */
    Py_XDECREF(at);
}

/* The writer of what this thread ran since its last event. */
static void last_line(struct mw_writer *w)
{
    memset(w, 0, sizeof *w);
    if (!state.tid)
        state.tid = (pid_t)syscall(SYS_gettid);
    w->tid = state.tid;
    if (state.generation == compare_generation && state.code)
        mw_location_of_code(w, state.code, state.line);
}

static int line_event(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    (void)arg;
    if (what != PyTrace_LINE && what != PyTrace_RETURN && what != PyTrace_CALL)
        return 0;
    int failed = 0;
    if (state.check_pending || (compare_on && mw_engine_shadows_changed())) {
        if (state.check_pending) {
            state.check_pending = 0;
            threads_pending--;
        }
        struct mw_writer w;
        last_line(&w);
        failed = check_fn(&w) < 0;
    }
    if (compare_on) {
        remember(frame, what);
        last_event_ns = now_ns();
    } else if (!state.check_pending) {
        uninstall_here();   /* the one check it was set for is done */
    }
    return failed ? -1 : 0;
}

void mw_lines_init(mw_lines_check_fn fn)
{
    check_fn = fn;
}

int mw_lines_check_here(void)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (!ts || ts->tracing || !install_on(ts))
        return 0;
    if (!state.check_pending) {
        state.check_pending = 1;
        threads_pending++;
    }
    return 1;
}

int mw_lines_pending(void)
{
    return threads_pending;
}

void mw_lines_set_compare(int on)
{
    if (on && !compare_on) {
        compare_generation++;
        thread_id_seen = 0;
    }
    compare_on = on;
    if (on)
        adopt_threads();
}

int mw_lines_comparing(void)
{
    return compare_on;
}

uint64_t mw_lines_quiet_ns(void)
{
    uint64_t last = last_event_ns;
    uint64_t now = now_ns();
    return last && now > last ? now - last : UINT64_MAX;
}

void mw_lines_after_fork(void)
{
    compare_on = 0;
    state.check_pending = 0;
    threads_pending = 0;
}
