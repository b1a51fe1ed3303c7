#!/bin/bash
# Concurrency soak (issues 5, 6, 9): 8 threads write watched numpy arrays (the GIL released
# while numpy writes) and bytearrays under --check=line, while the main thread watches and
# unwatches other objects, under each backend. No deadlock (bounded by a timeout), no crash, a
# valid trace, and the last recorded value of each object equals its content at the end.
# MEMWATCH_SOAK_SECONDS sets the length of each run (default 8; 30 or more for a real soak).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'helpers/uffd'
bats_require_minimum_version 1.5.0

soak() {
    local backend=$1
    seconds=${MEMWATCH_SOAK_SECONDS:-8}
    db="$BATS_TEST_TMPDIR/soak.db"
    script="$BATS_TEST_TMPDIR/soak.py"
    cat > "$script" <<'PY'
import sys, threading, time
import numpy as np
import memwatch

seconds = float(sys.argv[1])
arrays = [np.zeros(16384, dtype=np.float64) for _ in range(4)]   # 128 KiB each
blobs = [bytearray(4096 + 17 * i) for i in range(4)]             # odd sizes, page-crossing
for i, a in enumerate(arrays):
    memwatch.watch(a, f"array{i}")
for i, b in enumerate(blobs):
    memwatch.watch(b, f"bytes{i}")
stop = time.monotonic() + seconds
counts = [0] * 8

def array_writer(i, a):
    k = 0
    while time.monotonic() < stop:
        k += 1
        start = (k * 1024) % a.size
        np.add(a[start:start + 2048], 1.0, out=a[start:start + 2048])   # GIL released
        a[(k * 7) % a.size] = k
        if k % 8 == 0:
            time.sleep(0.001)
    counts[i] = k

def bytes_writer(i, b):
    k = 0
    while time.monotonic() < stop:
        k += 1
        b[(k * 31) % len(b)] = k % 256
        b[k % 64:k % 64 + 8] = bytes([(k + i) % 256]) * 8
        if k % 64 == 0:
            time.sleep(0.001)
    counts[4 + i] = k

threads = [threading.Thread(target=array_writer, args=(i, a), name=f"aw{i}")
           for i, a in enumerate(arrays)]
threads += [threading.Thread(target=bytes_writer, args=(i, b), name=f"bw{i}")
            for i, b in enumerate(blobs)]
for t in threads:
    t.start()
churn = 0
while time.monotonic() < stop:
    extra = bytearray(256)
    memwatch.watch(extra, f"churn{churn % 4}")
    extra[churn % 256] = 1
    memwatch.unwatch(f"churn{churn % 4}")
    churn += 1
    time.sleep(0.002)
for t in threads:
    t.join()
assert all(counts), f"a writer made no progress: {counts}"
print("churn", churn, "writes", sum(counts), file=sys.stderr)
for i, a in enumerate(arrays):
    print(f"array{i}", a.tobytes().hex())
for i, b in enumerate(blobs):
    print(f"bytes{i}", bytes(b).hex())
PY
    # Deadlock guard: the run must end well within twice its length plus start-up.
    run -0 timeout -k 5 $((seconds * 3 + 60)) "$MEMWATCH" trace -q -o "$db" --check=line \
        --backend "$backend" "$script" "$seconds"
    printf '%s\n' "$output" | grep -E '^(array|bytes)[0-9] ' > "$BATS_TEST_TMPDIR/final"
    [ "$(wc -l < "$BATS_TEST_TMPDIR/final")" -eq 8 ]
    run sqlite3 "$db" "PRAGMA integrity_check"
    assert_output "ok"
    run sqlite3 "$db" "SELECT ended_by, exit_status, changes_dropped FROM run"
    assert_output "exit|0|0"
    # Replay every recorded range of each object over zeros, in seq order: the result
    # must be the object's content at the end of the script. The new bytes come through
    # memwatch query --sql's mw_new, however the trace keeps them (schemas/trace.sql).
    "$MEMWATCH" query -f jsonl --sql "SELECT tag, offset, hex(mw_new(seq, offset)) AS new
        FROM change_ranges ORDER BY seq, offset" "$db" > "$BATS_TEST_TMPDIR/ranges"
    run "$MEMWATCH_PYTHON" - "$db" "$BATS_TEST_TMPDIR/final" "$BATS_TEST_TMPDIR/ranges" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
ranges = [json.loads(line) for line in open(sys.argv[3])]
bad = 0
for line in open(sys.argv[2]):
    tag, hexed = line.split()
    final = bytes.fromhex(hexed)
    (size,) = db.execute("SELECT size FROM objects WHERE tag = ?", (tag,)).fetchone()
    state = bytearray(size)
    n = 0
    for r in ranges:
        if r["tag"] != tag:
            continue
        new = bytes.fromhex(r["new"])
        state[r["offset"]:r["offset"] + len(new)] = new
        n += 1
    if bytes(state) != final:
        first = next(i for i in range(size) if state[i] != final[i])
        print(f"{tag}: replayed trace differs from the final content at byte {first} "
              f"({n} ranges)")
        bad += 1
    elif n == 0:
        print(f"{tag}: no changes recorded")
        bad += 1
churn = db.execute("SELECT count(*), count(unwatched_ns) FROM objects "
                   "WHERE tag LIKE 'churn%'").fetchone()
if churn[0] == 0 or churn[0] != churn[1]:
    print("churn objects watched/unwatched:", churn)
    bad += 1
print("checked", "bad" if bad else "ok")
PY
    assert_output --partial "checked ok"
}

@test "mprotect: 8 writer threads, watch/unwatch churn, --check=line: no deadlock, final values recorded" {
    soak mprotect
}

@test "uffd: 8 writer threads, watch/unwatch churn, --check=line: no deadlock, final values recorded" {
    if uffd_unavailable; then
        skip "this kernel has no userfaultfd write-protection (memwatch trace --backend uffd refuses)"
    fi
    soak uffd
}
