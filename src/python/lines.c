/* Line boundaries: the checks that run between two lines of a thread, in line mode.
 *
 * DESIGN
 * - After a trap (autocheck.c's fault hook), the writing thread must check before its next
 *   line writes again: a page, once written, does not trap again until checked. The fault
 *   hook sets this thread's check_pending and asks the line source (line_source.h: the
 *   interpreter's own line events, which differ by CPython version) for an event at this
 *   thread's very next line (or when its frame returns), async-signal-safely; that event
 *   runs the check. When the source cannot promise one, the hook asks for a check another
 *   way (autocheck.c) and nothing is pending here.
 * - While the engine has pages left open (shadowed because their neighbours are busy:
 *   src/core/shadow.c), a write to them does not trap. Then every line boundary of every
 *   Python thread has an event (compare mode): it asks the engine whether an open page's
 *   watched bytes changed (a few memcmp, mw_engine_shadows_changed) and if so checks,
 *   naming as the writer the line this thread has just run. For that each event tells what
 *   runs until the thread's next event (the source works it out: the new line; the callee's
 *   first line at a call; the caller's current line at a return), and lines.c remembers it
 *   per thread.
 * - A thread's remembered code object is borrowed: at the thread's next event it is still
 *   running (a return event moves it to the caller first). compare_generation discards what
 *   a thread remembered before compare mode was last turned on.
 * - Events cost while they are on (lines_settrace.c and lines_monitoring.c say how much);
 *   compare mode is on only while pages are open (a second at a time, shadow.c).
 * - One change per line: while a thread's line check is pending, no other check runs
 *   (autocheck.c asks mw_lines_pending), since a check harvests every page: one running in
 *   the middle of that line (the poller during a long numpy operation that paused, the main
 *   thread's eval breaker inside a call on the same line) would split it.
 * - A trap in the middle of a line check (memwatch's own work next to watched bytes, or a
 *   page past its neighbour budget: fault_path.c) sets check_pending again: the thread
 *   checks at its next line too, so a write it makes there is its own change, with its own
 *   line, never merged into a later check of another thread.
 * Needs the GIL, but for mw_lines_check_here (async-signal-safe). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "line_source.h"
#include "lines.h"
#include "threads.h"
#include "location.h"

struct line_state {
    int check_pending;        /* a trap asked this thread to check at its next line */
    unsigned generation;      /* compare_generation when code/line were remembered */
    PyCodeObject *code;       /* what runs until the next event (borrowed), or NULL */
    int line;
    pid_t tid;
    int in_event;             /* mw_lines_event is running its check */
    PyCodeObject *next_code;  /* while it does: what runs after the event */
};

static __thread struct line_state state __attribute__((tls_model("initial-exec")));

static mw_lines_check_fn check_fn;
static _Atomic int threads_pending;        /* threads whose check_pending is set */
static int compare_on;                     /* GIL */
static unsigned compare_generation;        /* GIL */
static _Atomic uint64_t last_event_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

int mw_lines_running_here(struct mw_writer *w)
{
    if (!compare_on || state.generation != compare_generation || !state.code)
        return 0;
    last_line(w);
    return 1;
}

int mw_lines_event(PyCodeObject *code, int line)
{
    int failed = 0;
    /* While pages are open, a second thread ends them (after_check): at once, before it
     * can write one unseen. */
    if (state.check_pending ||
        (compare_on && (mw_engine_shadows_changed() || mw_threads_program_has_several()))) {
        if (state.check_pending) {
            state.check_pending = 0;
            threads_pending--;
        }
        struct mw_writer w;
        last_line(&w);
        state.in_event = 1;
        state.next_code = code;
        failed = check_fn(&w) < 0;
        state.in_event = 0;
    }
    if (compare_on) {
        state.code = code;
        state.line = line;
        state.generation = compare_generation;
        last_event_ns = now_ns();
    } else if (!state.check_pending) {
        mw_line_source_done_here();   /* the one check it was set for is done */
    }
    return failed ? -1 : 0;
}

int mw_lines_init(mw_lines_check_fn fn)
{
    check_fn = fn;
    return mw_line_source_start();
}

int mw_lines_check_here(void)
{
    /* A trap in this thread's own check at an event: the source keeps this thread's events
     * on past it while a check is pending (see mw_lines_event). */
    if (state.in_event ? !mw_line_source_arm_in_event(state.next_code)
                       : !mw_line_source_arm_here())
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

int mw_lines_pending_here(void)
{
    return state.check_pending;
}

void mw_lines_set_compare(int on)
{
    if (on && !compare_on)
        compare_generation++;
    compare_on = on;
    mw_line_source_all_lines(on);
    mw_line_source_at_check();
}

int mw_lines_comparing(void)
{
    return compare_on;
}

void mw_lines_watched_here(void)
{
    mw_line_source_watched_from_here();
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
    mw_line_source_after_fork();
}
