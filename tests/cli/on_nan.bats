#!/usr/bin/env bats
# --on-nan: a NaN or Inf appearing in a watched float array, told to the script at the line
# after the write, naming the tag, the element and the line that wrote it.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
bats_require_minimum_version 1.5.0

fixture="$MEMWATCH_SOURCE_DIR/tests/fixtures/on_nan.py"
message="NaN appeared in watched 'weights' at weights[3, 1] (change 2)"
writer=", written by $fixture:6 in <module>"
at_line=", $fixture:6"

# In a sanitized build (MEMWATCH_SANITIZE: tests/sanitize.sh asan) the writer of the NaN may
# be unknown, and then the message does not name it; the reason is printed. There the traced
# python3 allocates through ASan's allocator, which stores a dozen times into chunk headers on
# every malloc and free; the 64-byte array shares its page with such chunks (memwatch's own
# check after line 5 allocates some), so the page can use up the engine's neighbour budget
# (MW_BUSY_TRAPS, src/core/detector.h) and is left open until the next check, as
# designed: the NaN is found, its writer is not. Everything else is checked in both builds.
setup() {
    local cache="${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}/CMakeCache.txt"
    if grep -qx 'MEMWATCH_SANITIZE:BOOL=ON' "$cache" 2>/dev/null; then
        echo "# sanitized build: the writer may be unknown (ASan's allocator spends the page's neighbour budget)" >&3
        writer="" at_line=""
    fi
}

@test "--on-nan=raise: FloatingPointError at the next line, naming element and writer" {
    run -1 "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --on-nan=raise "$fixture"
    assert_output --partial "File \"$fixture\", line 7, in <module>"
    assert_output --partial "FloatingPointError: $message$writer"
    refute_line "after the NaN"
}

@test "--on-nan=warn: a RuntimeWarning, and the script goes on" {
    run -0 "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --on-nan=warn "$fixture"
    assert_output --partial "$fixture:7: RuntimeWarning: $message$writer"
    assert_output --partial "after the NaN"
}

@test "default (off): recorded and flagged in the end-of-run line only" {
    run -0 "$MEMWATCH" trace -o "$BATS_TEST_TMPDIR/t.db" "$fixture"
    refute_output --partial "RuntimeWarning"
    assert_output --partial "memwatch: weights: 1 NaN appeared at seq 2$at_line"
}

@test "an invalid --on-nan is a usage error" {
    run -2 "$MEMWATCH" trace --on-nan=explode "$fixture"
    assert_line --index 0 "memwatch: invalid --on-nan 'explode': use off, warn or raise"
}
