#!/bin/bash
# System calls that write into the caller's memory, with their output buffers on watched
# pages, beside the watched bytes and inside them (issue 13): under each backend they
# behave exactly as under python3 alone, and what they write into watched bytes is
# recorded. The calls and their checks are in tests/fixtures/syscall_battery.py.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'helpers/uffd'
bats_require_minimum_version 1.5.0

battery="$MEMWATCH_SOURCE_DIR/tests/fixtures/syscall_battery.py"

same_as_python3() {
    local backend=$1
    cd "$BATS_TEST_TMPDIR"
    run -0 "$MEMWATCH_PYTHON" "$battery"
    expected=$output
    [[ "$expected" == *"python-level calls: 0 errors"* ]]
    run -0 --separate-stderr "$MEMWATCH" trace -q -f -o "$BATS_TEST_TMPDIR/s.db" \
        --backend "$backend" "$battery"
    assert_equal "$output" "$expected"
    refute [ -n "$stderr" ]
}

@test "mprotect: system calls writing beside and inside watched bytes behave as under python3" {
    same_as_python3 mprotect
}

@test "uffd: system calls writing beside and inside watched bytes behave as under python3" {
    if uffd_unavailable; then
        skip "this kernel has no userfaultfd write-protection (memwatch trace --backend uffd refuses)"
    fi
    same_as_python3 uffd
}
