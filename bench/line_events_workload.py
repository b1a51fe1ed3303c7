"""One measurement for bench/line_events.sh: usage: line_events_workload.py MODE

Runs pure-Python work (recursion, dict and str work) with one kind of line event on and
prints the CPU seconds it took. MODE: base (none), settrace (a C trace function, all
threads), monitoring (sys.monitoring LINE, PY_START, PY_RETURN, PY_YIELD and PY_UNWIND with
a C callback, global: memwatch's compare mode on 3.12+), local (the same events but
PY_START/PY_UNWIND as local events on the work's code only: what code memwatch has
armed pays), unwind (PY_UNWIND alone, global: what all other code pays on 3.12+ once
anything is armed), python (sys.monitoring LINE with a Python callback, for reference)."""
import sys
import time

import line_events_probe


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work():
    d = {}
    for i in range(1_200_000):
        k = "k" + str(i % 997)
        d[k] = d.get(k, 0) + i
    fib(25)


mode = sys.argv[1]
if mode == "settrace":
    line_events_probe.settrace(True)
elif mode != "base":
    mon = sys.monitoring
    ev = mon.events
    tool = 4
    mon.use_tool_id(tool, "bench")
    cb = line_events_probe.callback() if mode != "python" else (lambda *args: None)
    for e in (ev.LINE, ev.PY_START, ev.PY_RETURN, ev.PY_YIELD, ev.PY_UNWIND):
        mon.register_callback(tool, e, cb)
    if mode == "monitoring":
        mon.set_events(tool, ev.LINE | ev.PY_START | ev.PY_RETURN | ev.PY_YIELD | ev.PY_UNWIND)
    elif mode == "local":
        mon.set_events(tool, ev.PY_UNWIND)
        for code in (work.__code__, fib.__code__):
            mon.set_local_events(tool, code, ev.LINE | ev.PY_RETURN | ev.PY_YIELD)
    elif mode == "unwind":
        mon.set_events(tool, ev.PY_UNWIND)
    elif mode == "python":
        mon.set_events(tool, ev.LINE)
start = time.process_time()
work()
print("%.6f" % (time.process_time() - start))
