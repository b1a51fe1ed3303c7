/* Line events on CPython 3.11: a C trace function (line_source.h).
 *
 * DESIGN
 * - 3.11's eval loop looks at its thread's cframe->use_tracing before every instruction, so
 *   a trace function written into one thread's state (c_tracefunc, c_traceobj,
 *   cframe->use_tracing: what PyEval_SetTrace would store) takes effect at that thread's
 *   very next instruction. The fault handler writes them into the faulting thread's own
 *   state (only this thread reads it), which is async-signal-safe, and the trace function
 *   removes itself once its check is done: one event, in one thread.
 * - All lines (compare mode): the trace function goes into every thread of the interpreter;
 *   threads that start later are given it at the next check (thread ids the interpreter
 *   handed out since the last look).
 * - A thread with a trace or profile function of its own (a debugger, coverage) is left
 *   alone: its checks come from the eval breaker and the poller instead.
 * - Cost (shared/probes/line_trace_cost.c): a C trace function makes pure-Python code
 *   about 2.2 times slower while it is on; here it is on for one line after a trap, and in
 *   every thread only while pages are left open.
 * Uses 3.11's thread-state layout (Py_BUILD_CORE), as location.c does. */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>

#if PY_VERSION_HEX >= 0x030C0000
#error "lines_settrace.c is the line source of CPython 3.11; later versions use lines_monitoring.c"
#endif

#include "line_source.h"
#include "lines.h"

static int all_lines;                      /* GIL */
static uint64_t thread_id_seen;            /* GIL: interp's next thread id at the last adopt */

/* What runs in this thread from this event until its next one (lines.h), from the frame
 * the event is about. */
static int line_event(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    (void)arg;
    if (what != PyTrace_LINE && what != PyTrace_RETURN && what != PyTrace_CALL)
        return 0;
    PyFrameObject *at = frame;
    if (what == PyTrace_RETURN)
        at = PyFrame_GetBack(frame);   /* new reference, or NULL: back to C */
    else
        Py_XINCREF(at);
    PyCodeObject *code = at ? PyFrame_GetCode(at) : NULL;
    int line = !at ? 0 : what == PyTrace_CALL ? code->co_firstlineno : PyFrame_GetLineNumber(at);
    Py_XDECREF(code);   /* the running frame keeps it alive: borrowed from here on */
    Py_XDECREF(at);
    return mw_lines_event(code, line);
}

/* Is ts running our trace function, or free to run it? 0 when a debugger's or profiler's
 * function is in use. Async-signal-safe for the calling thread's own state. */
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

int mw_line_source_start(void)
{
    return 0;
}

int mw_line_source_arm_here(void)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    return ts && !ts->tracing && install_on(ts);
}

int mw_line_source_arm_in_event(PyCodeObject *next)
{
    /* The trace function is the thread's: it sees whatever Python code runs next. Back to
     * C (next NULL), the thread may never run Python again (its function returned). */
    PyThreadState *ts = PyGILState_GetThisThreadState();
    return next && ts && ts->c_tracefunc == line_event;
}

void mw_line_source_all_lines(int on)
{
    if (on && !all_lines)
        thread_id_seen = 0;
    all_lines = on;
}

/* Gives every thread of the interpreter the trace function while all lines are asked
 * for; cheap when no thread started since the last time. */
void mw_line_source_at_check(void)
{
    if (!all_lines)
        return;
    PyInterpreterState *interp = PyInterpreterState_Get();
    uint64_t next_id = interp->threads.next_unique_id;
    if (next_id == thread_id_seen)
        return;
    thread_id_seen = next_id;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts; ts = PyThreadState_Next(ts))
        install_on(ts);
}

void mw_line_source_watched_from_here(void)
{
    /* Nothing to prepare: a trap turns this thread's events on at once. */
}

void mw_line_source_done_here(void)
{
    PyThreadState *ts = PyThreadState_Get();
    if (ts->c_tracefunc == line_event)
        PyEval_SetTrace(NULL, NULL);
}

void mw_line_source_after_fork(void)
{
    all_lines = 0;
}
