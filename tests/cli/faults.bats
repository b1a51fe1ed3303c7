#!/bin/bash
# Fault injection beyond the ways a run ends (endings.bats): fork() without exec, a disk
# that fills up while tracing, an output directory that disappears, watched memory unmapped
# before a check. Each asserts the exit status and that what was written is a valid trace.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'helpers/uffd'
bats_require_minimum_version 1.5.0

setup() {
    db="$BATS_TEST_TMPDIR/t.db"
    script="$BATS_TEST_TMPDIR/script.py"
}

q() {
    sqlite3 "$db" "$1"
}

teardown() {
    if [ -n "${mnt:-}" ] && mountpoint -q "$mnt"; then
        umount "$mnt" || true
    fi
}

@test "os.fork() without exec: the child's copy of private memory is its own, the parent's trace stays whole" {
    cat > "$script" <<'PY'
import os, sys, memwatch
data = bytearray(64)
memwatch.watch(data, "data")
for i in range(1, 4):
    data[i] = i
memwatch.check()
pid = os.fork()
if pid == 0:
    # The forked child writes its private copy of the watched bytes (not the parent's
    # object: never in the trace), watches an object of its own, checks, then ends the way
    # argv[1] says.
    for i in range(1, 4):
        data[i] = 0xc0 + i
    extra = bytearray(8)
    memwatch.watch(extra, "child-only")
    extra[0] = 1
    memwatch.check()
    print("child watched", flush=True)
    if sys.argv[1] == "os_exit":
        os._exit(0)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child status", status, flush=True)
for i in range(4, 7):
    data[i] = i
PY
    for follow in --no-follow ""; do
        for how in os_exit exit; do
            run -0 "$MEMWATCH" trace -q -f $follow -o "$db" "$script" "$how"
            assert_output --partial "child watched"
            assert_output --partial "child status 0"
            run q "PRAGMA integrity_check"
            assert_output "ok"
            # The parent's object holds the parent's values only, in order.
            run q "SELECT min(offset), group_concat(new_hex, '') FROM
                   (SELECT offset, new_hex FROM change_ranges WHERE tag = 'data'
                    ORDER BY seq, offset)"
            assert_output "1|010203040506"
            run q "SELECT count(DISTINCT pid) FROM changes WHERE object_id IN
                   (SELECT id FROM objects WHERE tag = 'data')"
            assert_output "1"
            run q "SELECT ended_by, exit_status, changes_dropped FROM run"
            assert_output "exit|0|0"
            # Followed, the child's own object is in the trace, written by the child.
            run q "SELECT count(*) FROM change_ranges c JOIN changes USING (seq)
                   JOIN processes p ON p.pid = changes.pid
                   WHERE c.tag = 'child-only' AND p.forked = 1 AND c.new_hex = '01'"
            [ -n "$follow" ] && assert_output "0" || assert_output "1"
        done
    done
}

@test "the disk fills up while tracing: the script keeps running, a clear message, the trace stays valid" {
    mnt="$BATS_TEST_TMPDIR/small"
    mkdir -p "$mnt"
    if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
        mnt=""
        skip "mounting a 2 MiB tmpfs is not permitted here (needs root); disk-full case not run"
    fi
    db="$mnt/t.db"
    cat > "$script" <<'PY'
import os, time, memwatch
data = bytearray(64 * 1024)
memwatch.watch(data, "data")
# Random masks of nonzero bytes: every byte changes, into bytes no compression shrinks.
masks = [int.from_bytes(bytes(b | 1 for b in os.urandom(len(data))), "little") for _ in range(4)]
for i in range(120):                           # 120 changes of 64 KiB: 7.5 MiB of new bytes,
    x = int.from_bytes(data, "little") ^ masks[i % 4]   # paced so that batches commit
    data[:] = x.to_bytes(len(data), "little")  # before the disk is full
    memwatch.check()
    time.sleep(0.01)
print("script finished", flush=True)
PY
    run -0 "$MEMWATCH" trace -o "$db" "$script"
    assert_output --partial "script finished"
    assert_output --regexp "memwatch: trace '.*t.db' is incomplete: .*(full|space)"
    summary=$(printf '%s\n' "$output" | grep 'recorded in')
    run q "PRAGMA integrity_check"
    assert_output "ok"
    # Complete up to the fault: the changes kept are the first ones, with no gap, each
    # with its whole 64 KiB.
    run q "SELECT count(*) > 0, count(*) = max(seq), min(seq) FROM changes"
    assert_output "1|1|1"
    run q "SELECT sum(length) = 65536 * count(DISTINCT seq) FROM change_ranges"
    assert_output "1"
    run q "SELECT count(*) FROM objects WHERE tag = 'data'"
    assert_output "1"
    # The summary counts what the file holds, not what reached memwatch.
    saved=$(q "SELECT count(*) FROM changes")
    [[ "$summary" == *" $saved changes recorded in "* ]] || [[ "$summary" == *" $saved change recorded in "* ]]
    # The readers still work on what is there.
    run -0 "$MEMWATCH" query --summary "$db"
    assert_output --partial "data"
}

@test "the disk fills up under a --max-trace-size larger than it: the message says why, the trace stays valid" {
    mnt="$BATS_TEST_TMPDIR/small"
    mkdir -p "$mnt"
    if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
        mnt=""
        skip "mounting a 2 MiB tmpfs is not permitted here (needs root); disk-full case not run"
    fi
    db="$mnt/t.db"
    # Under a size limit the writer commits in the middle of a change to keep its -wal file
    # small: a commit the full disk refuses there is said as any other.
    cat > "$script" <<'PY'
import os, memwatch
data = bytearray(128 * 1024)
memwatch.watch(data, "data")
for i in range(100):
    data[:] = os.urandom(len(data))
    memwatch.check()
print("script finished", flush=True)
PY
    run -0 "$MEMWATCH" trace --max-trace-size 8M -o "$db" "$script"
    assert_output --partial "script finished"
    assert_output --regexp "memwatch: trace '.*t.db' is incomplete: .*(full|space)"
    refute_output --partial "no error"
    run q "PRAGMA integrity_check"
    assert_output "ok"
    run q "SELECT count(*) > 0, count(*) = max(seq), min(seq) FROM changes"
    assert_output "1|1|1"
}

@test "the output directory disappears mid-run: the script finishes, memwatch says the trace is gone" {
    dir="$BATS_TEST_TMPDIR/out"
    mkdir "$dir"
    cat > "$script" <<'PY'
import os, sys, time, memwatch
data = bytearray(64)
memwatch.watch(data, "data")
for i in range(1, 6):
    data[i] = i
print("ready", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
for i in range(6, 11):
    data[i] = i
print("script finished", flush=True)
sys.exit(4)
PY
    flag="$BATS_TEST_TMPDIR/flag"
    "$MEMWATCH" trace -q -o "$dir/t.db" "$script" "$flag" > "$BATS_TEST_TMPDIR/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        grep -q ready "$BATS_TEST_TMPDIR/log" && break
        sleep 0.05
    done
    rm -rf "$dir"
    touch "$flag"
    rc=0
    wait "$pid" || rc=$?
    # The script's own status, unchanged.
    [ "$rc" -eq 4 ]
    run cat "$BATS_TEST_TMPDIR/log"
    assert_output --partial "script finished"
    assert_output --partial "memwatch: trace '$dir/t.db' was removed while the script ran"
    [ ! -e "$dir" ]
}

@test "watched memory unmapped before a check: what was written is recorded first, then the watch ends" {
    cat > "$script" <<'PY'
import ctypes, mmap, memwatch
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
ps = mmap.PAGESIZE
base = libc.mmap(None, 2 * ps, 3, 0x22, -1, 0)          # READ|WRITE, PRIVATE|ANONYMOUS
memwatch.watch_buffer(base, 2 * ps, "mapped")
ctypes.memset(base, 1, 8)                               # page 0: unmapped before any check
ctypes.memset(base + ps + 5, 2, 3)                      # page 1: still mapped
libc.munmap(base, ps)                                   # a last check, and the watch ends
print("found", memwatch.check(), "watched", memwatch.stats()["tracked_objects"])
libc.munmap(base + ps, ps)
PY
    # Under each backend: mprotect fails on the vanished page, UFFDIO_WRITEPROTECT skips it.
    for backend in mprotect uffd; do
        if [ $backend = uffd ] && uffd_unavailable; then
            continue    # no userfaultfd here: backend.bats says so
        fi
        run -0 "$MEMWATCH" trace -q -f -o "$db" --backend $backend --check=manual "$script"
        assert_output "found 1 watched 0"
        run q "SELECT tag, offset, hex(new) FROM change_ranges ORDER BY offset"
        assert_output "$(printf 'mapped|0|0101010101010101\nmapped|4101|020202')"
        run q "PRAGMA integrity_check"
        assert_output "ok"
    done
}
