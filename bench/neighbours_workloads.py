"""Issue 13's workloads: watched bytes that share pages with the rest of the program.

usage: neighbours_workloads.py WORKLOAD HOW [N]

WORKLOAD
  idle       a 24-byte bytearray, never written, inside a pure-Python loop (recursion,
             dict and str work): what watching costs the rest of the program
  bytes      N byte writes to a 64-byte bytearray (default 100,000), one per line
  elements   N single-element writes to a 1 MiB float64 numpy array (default 20,000)
  pages      N byte writes to a 1 MiB bytearray (default 20,000), each on another page
             than the last: every change is found by a trap (no numpy needed)
  watches    N 64-byte bytearrays watched one by one (default 100,000), then one check
             with nothing written
  shared     N checks (default 1,000) of a 64-byte numpy array (which cannot move) on a
             page of busy numpy temporaries, nothing written to it
HOW
  plain      nothing watched (python3 alone, or memwatch with nothing watched)
  watch      memwatch.watch (under `memwatch trace`)
  snapshot   a hand-written copy-and-compare after every write (python3 alone): the
             baseline memwatch has to beat

Prints "SECONDS CHANGES [EXTRA]" for the timed part (wall time, or CPU time with
BENCH_CLOCK=cpu): CHANGES is what was recorded (memwatch) or detected (snapshot); EXTRA is
the check time in seconds for `watches`, and the time of one check (or one compare, for
snapshot) for `shared`.
"""
import os
import sys
import time

# Wall time by default; CPU time of this process with BENCH_CLOCK=cpu (bench/neighbours.sh
# -c), steadier on a loaded machine and blind to what the trace writer's process does.
clock = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter

workload, how = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else None
if how == "watch":
    import memwatch


def changes_recorded():
    memwatch.check()
    return memwatch.stats()["changes"]


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def idle():
    buf = bytearray(b"x" * 24)
    if how == "watch":
        memwatch.watch(buf, "idle")
    snapshot = bytes(buf)
    start = clock()
    found = 0
    for i in range(count or 30):
        fib(18)
        d = {}
        for k in range(2000):
            d["k%d" % k] = str(k) * 3
        "".join(d.values()).upper()
        if how == "snapshot" and bytes(buf) != snapshot:
            found += 1
    elapsed = clock() - start
    return elapsed, changes_recorded() if how == "watch" else found


def byte_writes():
    n = count or 100_000
    buf = bytearray(64)
    if how == "watch":
        memwatch.watch(buf, "bytes")
    start = clock()
    found = 0
    if how == "snapshot":
        snapshot = bytes(buf)
        for i in range(n):
            buf[i % 64] = (i + 1) & 0xFF
            if buf != snapshot:
                found += 1
                snapshot = bytes(buf)
    else:
        for i in range(n):
            buf[i % 64] = (i + 1) & 0xFF
    elapsed = clock() - start
    return elapsed, changes_recorded() if how == "watch" else found


def element_writes():
    import numpy as np
    n = count or 20_000
    arr = np.zeros(1 << 17, dtype=np.float64)
    if how == "watch":
        memwatch.watch(arr, "arr")
    step = 37                       # a different page most of the time
    start = clock()
    found = 0
    if how == "snapshot":
        snapshot = arr.copy()
        for i in range(n):
            arr[(i * step) % arr.size] = i + 1
            if not np.array_equal(arr, snapshot):
                found += 1
                snapshot[:] = arr
    else:
        for i in range(n):
            arr[(i * step) % arr.size] = i + 1
    elapsed = clock() - start
    return elapsed, changes_recorded() if how == "watch" else found


def page_writes():
    n = count or 20_000
    buf = bytearray(1 << 20)
    if how == "watch":
        memwatch.watch(buf, "pages")
    step = 37 * 8                   # as elements: a different page most of the time
    start = clock()
    found = 0
    if how == "snapshot":
        snapshot = bytes(buf)
        for i in range(n):
            buf[(i * step) % len(buf)] = (i + 1) & 0xFF
            if buf != snapshot:
                found += 1
                snapshot = bytes(buf)
    else:
        for i in range(n):
            buf[(i * step) % len(buf)] = (i + 1) & 0xFF
    elapsed = clock() - start
    return elapsed, changes_recorded() if how == "watch" else found


def many_watches():
    n = count or 100_000
    bufs = [bytearray(64) for _ in range(n)]
    start = clock()
    if how == "watch":
        for i, b in enumerate(bufs):
            memwatch.watch(b, "b%d" % i)
    elif how == "snapshot":
        snapshots = [bytes(b) for b in bufs]
    elapsed = clock() - start
    t = clock()
    if how == "watch":
        memwatch.check()
    elif how == "snapshot":
        sum(1 for b, s in zip(bufs, snapshots) if b != s)
    check = clock() - t
    return elapsed, 0, check


def shared_check():
    import numpy as np
    n = count or 1000
    arr = np.zeros(8, dtype=np.float64)      # 64 bytes among numpy's small allocations
    if how == "watch":
        memwatch.watch(arr, "arr")
    snapshot = arr.copy()
    found, checking = 0, 0.0
    start = clock()
    for i in range(n):
        tmp = [np.ones(8) for _ in range(10)]     # busy neighbours
        del tmp
        t = clock()
        if how == "watch":
            memwatch.check()
        elif how == "snapshot" and not np.array_equal(arr, snapshot):
            found += 1
        checking += clock() - t
    elapsed = clock() - start
    return elapsed, changes_recorded() if how == "watch" else found, checking / n


WORKLOADS = {"idle": idle, "bytes": byte_writes, "elements": element_writes,
             "pages": page_writes, "watches": many_watches, "shared": shared_check}
print(" ".join("%.6f" % v if isinstance(v, float) else str(v) for v in WORKLOADS[workload]()))
