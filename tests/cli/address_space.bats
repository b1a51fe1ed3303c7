#!/bin/bash
# A lowered address-space limit (issue 14, item 7): a script that runs under
# `ulimit -v` with python3 runs the same under memwatch, and its watched writes are traced.
# memwatch maps its page copies in segments as watches need them, not one large reservation
# up front, so a limit that leaves python3 room leaves memwatch room too.
#
# Skipped in a sanitized build (MEMWATCH_SANITIZE: tests/sanitize.sh), which reserves
# terabytes of shadow memory at start and cannot run under any such limit.

load common
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    local cache="${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}/CMakeCache.txt"
    if grep -qx 'MEMWATCH_SANITIZE:BOOL=ON' "$cache" 2>/dev/null; then
        skip "a sanitized build cannot run under ulimit -v (its shadow memory is reserved at start)"
    fi
    cat > "$BATS_TEST_TMPDIR/many.py" <<'PY'
import memwatch

buffers = [bytearray(200) for _ in range(2000)]
for i, b in enumerate(buffers):
    memwatch.watch(b, f"b{i}")
for step in range(3):
    for b in buffers[::10]:
        b[step] = step + 1
    memwatch.check()
print("done", sum(b[0] for b in buffers))
PY
}

@test "under ulimit -v 1000000 a script python3 can run is traced in full" {
    cd "$BATS_TEST_TMPDIR"
    run -0 bash -c 'ulimit -v 1000000 && /usr/bin/python3 -c "print(1)"'
    run -0 bash -c "ulimit -v 1000000 && exec \"\$MEMWATCH\" trace -q -o many.db many.py"
    assert_output "done 200"
    run -0 bash -c '"$MEMWATCH" query -f jsonl many.db | wc -l'
    assert_output 600
}

# Memory that runs out after the watch (issue 14, item 7): the script lowers RLIMIT_AS to
# just above what it uses, takes the rest, then writes watched memory. Checks then cannot
# build whole values; they must degrade, not fail: no MemoryError reaches the script, every
# write is still recorded (the trace's last value of each element is the one the script
# ended with), and the shortfall (the callback's Changes that could not be made) is counted
# in the trace and stated at the end of the run.
@test "memory runs out mid-run: changes are still recorded, the shortfall is counted and stated" {
    cd "$BATS_TEST_TMPDIR"
    cat > short.py <<'PY'
import array, resource, struct, memwatch

values = array.array("d", [0.5] * (64 * 512))       # 64 pages, one element written per page
# A callback sees whole values: each check then needs buffers the object's size.
seen = []
watcher = memwatch.MemoryWatcher()
watcher.set_callback(lambda change: seen.append(change.seq))
watcher.watch_object(values, "values")
values[0] = 1.5
watcher.check_changes()

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

resource.setrlimit(resource.RLIMIT_AS, (vm_size() + (1 << 20), resource.RLIM_INFINITY))
hog = []
try:
    while True:
        hog.append(bytearray(16 << 10))
except MemoryError:
    pass
for i in range(0, len(values), 512):
    values[i] = 2.5
watcher.check_changes()
hog.clear()
print("final", struct.pack("<d", 2.5).hex(), len(values) // 512)
PY
    run -0 --separate-stderr "$MEMWATCH" trace --check=line -o short.db short.py
    refute_output --partial "Error"
    [[ $stderr != *MemoryError* && $stderr != *Traceback* ]] || fail "a check failed in the script: $stderr"
    [[ $stderr =~ "memory ran out while tracing: "[1-9][0-9]*" changes recorded with less than usual" ]] ||
        fail "the end-of-run line does not state the shortfall: $stderr"
    read -r _ final written <<<"$output"
    # The newest value the trace holds for every element written is the script's own,
    # whole elements as the readers decode them.
    run -0 sqlite3 short.db "SELECT count(*) FROM
        (SELECT offset, new_hex, max(seq) FROM change_ranges GROUP BY offset) WHERE new_hex = '$final'"
    assert_output "$written"
    run -0 bash -c '"$MEMWATCH" query -e -f jsonl short.db | grep -c "\"new_value\": 2.5,"'
    assert_output "$written"
    run -0 sqlite3 short.db "SELECT CAST(value AS INTEGER) > 0 FROM meta WHERE key = 'changes_short_of_memory'"
    assert_output 1
    run -0 "$MEMWATCH" query --summary short.db
    assert_output --regexp "incomplete: [1-9][0-9]* changes? recorded with less than usual for lack of memory"
}
