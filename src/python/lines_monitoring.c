/* Line events on CPython 3.12 and later: sys.monitoring (PEP 669) (line_source.h).
 *
 * DESIGN
 * - 3.12 removed what 3.11's source relies on (a per-thread flag the eval loop looks at
 *   before every instruction). Line events now exist only where a code object's bytecode
 *   has been instrumented for them, and instrumenting needs the GIL and allocates: it can
 *   never be done from the fault handler. So the code that writes watched memory is armed
 *   in advance, with local events of memwatch's own tool (sys.monitoring.set_local_events:
 *   LINE, PY_RETURN, PY_YIELD), and the fault handler only reads whether the faulting
 *   frame's code is armed (its _co_monitoring->active_monitors, a plain read) and sets the
 *   thread's check_pending (lines.c). The armed code's next event in that thread checks.
 * - What gets armed: the code that calls watch() (it usually writes next), and the code of
 *   every frame that traps while not armed. That first trap cannot be promised a check at
 *   the next line; the fault hook asks for one at the main thread's next safe point (the
 *   eval breaker: calls and loop back-edges) instead, and the faulting code is queued
 *   (to_arm, a fixed array the handler fills with compare-and-swap) and armed at the next
 *   check. A queued code object may die before that check: a code watcher
 *   (PyCode_AddWatcher) removes it from the queue as it is destroyed, so only live code is
 *   ever armed.
 * - Armed code that stops writing stops paying: each armed code object counts (in its
 *   co_extra slot) the line events it ran since it last checked a write; after QUIET_LINES
 *   of them it is disarmed, from the main thread's next safe point (a pending call: never
 *   inside its own callback). A later write arms it again, as a first write. So a function
 *   that called watch() and then runs pure-Python work of its own pays for QUIET_LINES
 *   events only, and a loop that writes watched memory stays armed.
 * - PY_UNWIND (a global event: exceptions leaving a frame) is on once anything is armed, so
 *   a line that writes and then raises still checks as its frame unwinds.
 * - All lines (compare mode): LINE, PY_START, PY_RETURN, PY_YIELD and PY_UNWIND as global
 *   events of the tool, for every thread, while pages are left open.
 * - Measured (bench: pure-Python recursion and dict work, this machine kind): a C callback
 *   on every LINE event costs 1.16-1.22x on 3.12 and 3.13; a C trace function through
 *   PyEval_SetTrace (which 3.12 runs on top of sys.monitoring) 1.18-1.37x, and it
 *   instruments every code object of every thread. Only armed code pays here; code that
 *   never wrote watched memory runs as under python3 (PY_UNWIND costs nothing until an
 *   exception unwinds).
 * - The tool id is taken only when something is first watched, so a script that watches
 *   nothing can use every id; ids 3 and 4 are tried (0-2 and 5 have names other tools
 *   use). When both are taken, line mode checks at the eval breaker, with a warning.
 * Callbacks run with the GIL; mw_line_source_arm_here is async-signal-safe. */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_instruments.h>

#if PY_VERSION_HEX < 0x030C0000
#error "lines_monitoring.c needs sys.monitoring (CPython 3.12 and later)"
#endif

#include <stdarg.h>
#include <stdatomic.h>

#include "line_source.h"
#include "lines.h"
#include "location.h"

#define EV(name) (1 << PY_MONITORING_EVENT_##name)
#define ARMED_EVENTS (EV(LINE) | EV(PY_RETURN) | EV(PY_YIELD))
#define BASE_EVENTS EV(PY_UNWIND)
#define ALL_LINE_EVENTS (EV(LINE) | EV(PY_START) | EV(PY_RETURN) | EV(PY_YIELD) | EV(PY_UNWIND))
#define TO_ARM 64
#define QUIET_LINES 8192
#define TO_DISARM 64

static int tool = -1;                 /* GIL writes once; the fault handler reads */
static int unavailable;               /* GIL: no tool id to be had */
static PyObject *monitoring;          /* sys.monitoring */
static int global_events;             /* GIL: what the tool has switched on globally */
static int all_lines;                 /* GIL */
static int code_watcher = -1;
static _Atomic(PyCodeObject *) to_arm[TO_ARM];
static atomic_int queued;             /* entries of to_arm that may be set */
static Py_ssize_t quiet_index = -1;   /* co_extra slot: line events since a checked write */
static PyCodeObject *to_disarm[TO_DISARM];   /* GIL; strong references */
static int disarm_count;              /* GIL */
static int disarm_scheduled;          /* GIL: the pending call is queued */

/* ---- events ----------------------------------------------------------------------------- */

static PyObject *event_result(int status)
{
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static void count_quiet_line(PyCodeObject *code, int checked);

/* LINE(code, line_number): the new line runs until the next event. */
static PyObject *on_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 2 || !PyCode_Check(args[0]))
        Py_RETURN_NONE;
    PyCodeObject *code = (PyCodeObject *)args[0];
    int checks = mw_lines_pending_here();
    int status = mw_lines_event(code, (int)PyLong_AsLong(args[1]));
    if (!all_lines)
        count_quiet_line(code, checks);
    return event_result(status);
}

/* PY_START(code, offset): the callee, from its first line. */
static PyObject *on_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1 || !PyCode_Check(args[0]))
        Py_RETURN_NONE;
    PyCodeObject *code = (PyCodeObject *)args[0];
    return event_result(mw_lines_event(code, code->co_firstlineno));
}

/* PY_RETURN, PY_YIELD, PY_UNWIND: the frame leaves; its caller's line runs on (NULL when
 * the caller is C). The frame is still the innermost one while the event runs. */
static PyObject *on_leave(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    PyCodeObject *code;
    int line;
    mw_location_caller(&code, &line);
    return event_result(mw_lines_event(code, line));
}

static PyMethodDef on_line_def = {"_line", (PyCFunction)(void (*)(void))on_line, METH_FASTCALL, NULL};
static PyMethodDef on_start_def = {"_start", (PyCFunction)(void (*)(void))on_start, METH_FASTCALL, NULL};
static PyMethodDef on_leave_def = {"_leave", (PyCFunction)(void (*)(void))on_leave, METH_FASTCALL, NULL};

/* ---- the tool --------------------------------------------------------------------------- */

static int call_monitoring(const char *method, const char *format, ...)
{
    va_list va;
    va_start(va, format);
    PyObject *fn = PyObject_GetAttrString(monitoring, method);
    PyObject *args = fn ? Py_VaBuildValue(format, va) : NULL;
    va_end(va);
    PyObject *r = args ? PyObject_CallObject(fn, args) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(fn);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int register_callback(int events, PyMethodDef *def)
{
    PyObject *fn = PyCFunction_New(def, NULL);
    if (!fn)
        return -1;
    int rc = 0;
    for (int e = 0; e <= PY_MONITORING_EVENT_PY_UNWIND && rc == 0; e++)
        if (events & (1 << e))
            rc = call_monitoring("register_callback", "iiO", tool, 1 << e, fn);
    Py_DECREF(fn);
    return rc;
}

static int forget_destroyed(PyCodeEvent event, PyCodeObject *code);

/* Takes a tool id (3, then 4) and registers the callbacks. 0 when done or impossible (a
 * warning says so), -1 with an exception. */
static int take_tool(void)
{
    if (tool >= 0 || unavailable)
        return 0;
    PyObject *sys = PyImport_ImportModule("sys");
    monitoring = sys ? PyObject_GetAttrString(sys, "monitoring") : NULL;
    Py_XDECREF(sys);
    if (!monitoring)
        return -1;
    for (int id = 3; id <= 4 && tool < 0; id++) {
        if (call_monitoring("use_tool_id", "is", id, "memwatch") == 0)
            tool = id;
        else if (PyErr_ExceptionMatches(PyExc_ValueError))
            PyErr_Clear();   /* in use */
        else
            return -1;
    }
    code_watcher = tool >= 0 ? PyCode_AddWatcher(forget_destroyed) : -1;
    quiet_index = code_watcher >= 0 ? PyUnstable_Eval_RequestCodeExtraIndex(NULL) : -1;
    if (tool < 0 || code_watcher < 0 || quiet_index < 0) {
        PyErr_Clear();
        unavailable = 1;
        if (tool >= 0)
            call_monitoring("free_tool_id", "i", tool);
        PyErr_Clear();
        tool = -1;
        return PyErr_WarnEx(PyExc_RuntimeWarning,
                            "memwatch: sys.monitoring tool ids 3 and 4 are in use (or no code "
                            "watcher or code extra slot is free): --check=line checks at calls "
                            "and loops only",
                            1);
    }
    if (register_callback(EV(LINE), &on_line_def) < 0 ||
        register_callback(EV(PY_START), &on_start_def) < 0 ||
        register_callback(EV(PY_RETURN) | EV(PY_YIELD) | EV(PY_UNWIND), &on_leave_def) < 0)
        return -1;
    return 0;
}

static int set_global(int events)
{
    if (events == global_events)
        return 0;
    if (call_monitoring("set_events", "ii", tool, events) < 0)
        return -1;
    global_events = events;
    return 0;
}

/* Do code's line events reach the tool? A plain read of the code's instrumentation state:
 * async-signal-safe. */
static int fires_lines(PyCodeObject *code)
{
    _PyCoMonitoringData *m = code->_co_monitoring;
    return m && (m->active_monitors.tools[PY_MONITORING_EVENT_LINE] & (1u << tool));
}

static int is_armed(PyCodeObject *code)
{
    _PyCoMonitoringData *m = code->_co_monitoring;
    return m && (m->local_monitors.tools[PY_MONITORING_EVENT_LINE] & (1u << tool));
}

/* Gives code its local events. Failures are reported, never raised into the script. */
static void arm(PyCodeObject *code)
{
    if (tool < 0 || is_armed(code))
        return;
    if (set_global(global_events | BASE_EVENTS) < 0 ||
        call_monitoring("set_local_events", "iOi", tool, (PyObject *)code, ARMED_EVENTS) < 0 ||
        PyUnstable_Code_SetExtra((PyObject *)code, quiet_index, NULL) < 0)
        PyErr_WriteUnraisable(NULL);
}

/* ---- disarming code that stopped writing -------------------------------------------- */

/* The pending call (main thread, at a safe point): disarms what is still quiet. */
static int disarm_quiet(void *unused)
{
    (void)unused;
    disarm_scheduled = 0;
    for (int i = 0; i < disarm_count; i++) {
        PyCodeObject *code = to_disarm[i];
        void *quiet = NULL;
        if (PyUnstable_Code_GetExtra((PyObject *)code, quiet_index, &quiet) == 0 &&
            (uintptr_t)quiet >= QUIET_LINES && is_armed(code) &&
            call_monitoring("set_local_events", "iOi", tool, (PyObject *)code, 0) < 0)
            PyErr_WriteUnraisable(NULL);
        PyErr_Clear();
        Py_DECREF(code);
    }
    disarm_count = 0;
    return 0;
}

/* After a LINE event of armed code (GIL): checked says whether it ran a write's check. */
static void count_quiet_line(PyCodeObject *code, int checked)
{
    void *quiet = NULL;
    if (PyUnstable_Code_GetExtra((PyObject *)code, quiet_index, &quiet) < 0) {
        PyErr_Clear();
        return;
    }
    uintptr_t n = checked ? 0 : (uintptr_t)quiet + 1;
    if (PyUnstable_Code_SetExtra((PyObject *)code, quiet_index, (void *)n) < 0) {
        PyErr_Clear();
        return;
    }
    if (n != QUIET_LINES || disarm_count == TO_DISARM)
        return;
    to_disarm[disarm_count++] = (PyCodeObject *)Py_NewRef(code);
    if (!disarm_scheduled)
        disarm_scheduled = Py_AddPendingCall(disarm_quiet, NULL) == 0;
}

/* ---- the queue of code to arm ----------------------------------------------------------- */

/* Async-signal-safe. Full: the code is armed at a later trap. */
static void queue_to_arm(PyCodeObject *code)
{
    for (int i = 0; i < TO_ARM; i++)
        if (atomic_load(&to_arm[i]) == code)
            return;
    for (int i = 0; i < TO_ARM; i++) {
        PyCodeObject *none = NULL;
        if (atomic_compare_exchange_strong(&to_arm[i], &none, code)) {
            atomic_fetch_add(&queued, 1);
            return;
        }
    }
}

/* The code watcher (GIL): a code object about to be destroyed leaves the queue. */
static int forget_destroyed(PyCodeEvent event, PyCodeObject *code)
{
    if (event != PY_CODE_EVENT_DESTROY || atomic_load(&queued) == 0)
        return 0;
    for (int i = 0; i < TO_ARM; i++) {
        PyCodeObject *expected = code;
        if (atomic_compare_exchange_strong(&to_arm[i], &expected, NULL))
            atomic_fetch_sub(&queued, 1);
    }
    return 0;
}

/* ---- line_source.h ---------------------------------------------------------------------- */

int mw_line_source_start(void)
{
    return 0;   /* the tool is taken when something is first watched */
}

int mw_line_source_arm_here(void)
{
    if (tool < 0)
        return 0;
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (!ts || ts->tracing)   /* inside a callback: events are off until it returns */
        return 0;
    PyCodeObject *code = mw_location_current_code();
    if (!code)
        return 0;
    if (fires_lines(code))
        return 1;
    queue_to_arm(code);
    return 0;
}

int mw_line_source_arm_in_event(PyCodeObject *next)
{
    if (tool < 0 || !next)
        return 0;
    if (fires_lines(next))
        return 1;
    queue_to_arm(next);
    return 0;
}

void mw_line_source_all_lines(int on)
{
    if (tool < 0 || on == all_lines)
        return;
    all_lines = on;
    int events = on ? ALL_LINE_EVENTS : (global_events & BASE_EVENTS);
    if (set_global(events) < 0)
        PyErr_WriteUnraisable(NULL);
}

void mw_line_source_at_check(void)
{
    if (atomic_load(&queued) == 0)
        return;
    for (int i = 0; i < TO_ARM; i++) {
        PyCodeObject *code = atomic_exchange(&to_arm[i], NULL);
        if (code) {
            atomic_fetch_sub(&queued, 1);
            arm(code);
        }
    }
}

void mw_line_source_watched_from_here(void)
{
    if (take_tool() < 0) {
        PyErr_WriteUnraisable(NULL);
        return;
    }
    PyCodeObject *code = mw_location_current_code();
    if (code)
        arm(code);
}

void mw_line_source_done_here(void)
{
    /* Armed code stays armed: the next trap there checks at its next line again. */
}

void mw_line_source_after_fork(void)
{
    for (int i = 0; i < TO_ARM; i++)
        atomic_store(&to_arm[i], NULL);
    atomic_store(&queued, 0);
    all_lines = 0;
}
