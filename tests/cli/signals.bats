#!/bin/bash
# Signal etiquette (issue 9): the script's own SIGSEGV/SIGBUS handlers, installed with
# signal.signal, faulthandler or sigaction through ctypes, keep working for faults and
# signals that are not memwatch's, exactly as under python3 alone; and memwatch's handler
# survives faulthandler.enable() whenever it is called. (engine.bats already covers
# -X faulthandler, PYTHONFAULTHANDLER=1, one late enable() and a real segfault.)

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
bats_require_minimum_version 1.5.0

setup() {
    db="$BATS_TEST_TMPDIR/t.db"
    script="$BATS_TEST_TMPDIR/script.py"
    # Runs under memwatch and under python3 alone (where `memwatch` does not exist).
    cat > "$BATS_TEST_TMPDIR/common.py" <<'PY'
try:
    import memwatch
except ImportError:
    memwatch = None

data = bytearray(8192)

def watch():
    if memwatch:
        memwatch.watch(data, "data")

def write(i):
    data[i % len(data)] = i % 256 or 1
    if memwatch:
        memwatch.check()
PY
}

# Same exit status and output under memwatch as under python3 alone.
same_as_python() {
    run "$MEMWATCH_PYTHON" "$script" "$@"
    local want_status=$status want_output=$output
    run "$MEMWATCH" trace -q -f -o "$db" "$script" "$@"
    assert_equal "$status" "$want_status"
    assert_equal "$output" "$want_output"
}

@test "signal.signal handlers for SIGSEGV and SIGBUS get signals sent to the process" {
    cat > "$script" <<'PY'
import os, signal, sys
sys.path.insert(0, os.path.dirname(__file__))
from common import watch, write
got = []
watch()
write(1)
signal.signal(signal.SIGSEGV, lambda s, f: got.append("SEGV"))
signal.signal(signal.SIGBUS, lambda s, f: got.append("BUS"))
write(2)
os.kill(os.getpid(), signal.SIGSEGV)     # a signal, not a fault: the script's to handle
write(3)
os.kill(os.getpid(), signal.SIGBUS)
write(4)
print("handled", got, flush=True)
PY
    same_as_python
    assert_output "handled ['SEGV', 'BUS']"
    run sqlite3 "$db" "SELECT count(*) >= 1 FROM changes; PRAGMA integrity_check"
    assert_output $'1\nok'
}

@test "a sigaction handler installed through ctypes runs for a real fault, watched writes still work" {
    cat > "$script" <<'PY'
import ctypes, os, signal, sys
sys.path.insert(0, os.path.dirname(__file__))
from common import watch, write

class Sigaction(ctypes.Structure):       # glibc x86_64 struct sigaction
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

@HANDLER
def on_fault(sig, info, context):
    os.write(1, f"own handler: signal {sig}\n".encode())
    os._exit(42)

libc = ctypes.CDLL(None, use_errno=True)
watch()
write(1)
act, old = Sigaction(), Sigaction()
act.handler = ctypes.cast(on_fault, ctypes.c_void_p).value
act.flags = 4                            # SA_SIGINFO
for sig in (signal.SIGSEGV, signal.SIGBUS):
    if libc.sigaction(sig, ctypes.byref(act), ctypes.byref(old)) != 0:
        sys.exit(f"sigaction failed: {ctypes.get_errno()}")
for i in range(2, 200):
    write(i)                             # memwatch's faults: never the script's handler
print("writes done", flush=True)
if sys.argv[1] == "segv":
    ctypes.string_at(0)                  # a real fault, not memwatch's
else:
    import mmap, tempfile
    with tempfile.TemporaryFile() as f:   # the file shrinks under its mapping: SIGBUS
        f.truncate(4096)
        m = mmap.mmap(f.fileno(), 4096)
        f.truncate(0)
        m[100] = 1
print("not reached")
PY
    same_as_python segv
    assert_output $'writes done\nown handler: signal 11'
    assert_equal "$status" 42
    same_as_python bus
    assert_output $'writes done\nown handler: signal 7'
    assert_equal "$status" 42
    run sqlite3 "$db" "SELECT count(*) >= 100 FROM changes; PRAGMA integrity_check"
    assert_output $'1\nok'
}

@test "faulthandler.enable() at any time, again and again, from any thread: watched writes go on" {
    cat > "$script" <<'PY'
import faulthandler, os, sys, threading
sys.path.insert(0, os.path.dirname(__file__))
from common import watch, write
faulthandler.enable()                    # before watching
watch()
for i in range(1, 50):
    write(i)
    if i % 3 == 0:
        faulthandler.disable()
    faulthandler.enable(all_threads=bool(i % 2))
t = threading.Thread(target=lambda: (faulthandler.disable(), faulthandler.enable(), write(77)))
t.start()
t.join()
for i in range(50, 100):
    write(i)
print("writes done", faulthandler.is_enabled(), flush=True)
if sys.argv[1] == "crash":
    import ctypes
    ctypes.string_at(0)                  # faulthandler still reports real faults
PY
    same_as_python ok
    assert_output "writes done True"
    run sqlite3 "$db" "SELECT count(*) >= 90 FROM changes; PRAGMA integrity_check"
    assert_output $'1\nok'
    run -139 "$MEMWATCH" trace -q -f -o "$db" "$script" crash
    assert_output --partial "writes done True"
    assert_output --partial "Fatal Python error: Segmentation fault"
}

@test "faulthandler.register(SIGSEGV) is refused or chained as under python3, writes go on" {
    cat > "$script" <<'PY'
import faulthandler, os, signal, sys
sys.path.insert(0, os.path.dirname(__file__))
from common import watch, write
watch()
write(1)
try:
    faulthandler.register(signal.SIGSEGV)
    print("registered")
except RuntimeError as e:                # python3 refuses fatal signals here
    print("refused:", e)
for i in range(2, 50):
    write(i)
print("writes done", flush=True)
PY
    same_as_python
    assert_output --partial "writes done"
}
