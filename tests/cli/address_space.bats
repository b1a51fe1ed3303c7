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
