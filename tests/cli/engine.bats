#!/usr/bin/env bats
# Page-protection faults and the script's own crash handling.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
bats_require_minimum_version 1.5.0

fixtures="$MEMWATCH_SOURCE_DIR/tests/fixtures"

run_memwatch() {
    run "$MEMWATCH" "$@"
}

changes_of() {
    sqlite3 "$1" "SELECT count(*) FROM changes"
}

@test "watched writes survive -X faulthandler" {
    run_memwatch trace -q -o "$BATS_TEST_TMPDIR/t.db" -X faulthandler "$fixtures/watched_write.py"
    assert_success
    assert_output "faulthandler True writes done"
    [ "$(changes_of "$BATS_TEST_TMPDIR/t.db")" -ge 1 ]
}

@test "watched writes survive PYTHONFAULTHANDLER=1" {
    PYTHONFAULTHANDLER=1 run_memwatch trace -q -o "$BATS_TEST_TMPDIR/t.db" "$fixtures/watched_write.py"
    assert_success
    assert_output "faulthandler True writes done"
}

@test "watched writes survive faulthandler.enable() after watching" {
    run_memwatch trace -q -o "$BATS_TEST_TMPDIR/t.db" "$fixtures/watched_write.py" --enable-faulthandler-late
    assert_success
    assert_output "faulthandler True writes done"
}

@test "a real segfault dies by SIGSEGV with faulthandler's traceback, as under python3" {
    run -139 "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" -X faulthandler "$fixtures/real_segfault.py"
    assert_output --partial "before crash"
    assert_output --partial "Fatal Python error: Segmentation fault"
    assert_output --partial 'File "'"$fixtures/real_segfault.py"'", line 8 in <module>'
    refute_output --partial "not reached"
    # The change made before the crash is in the trace, and the trace says how it ended.
    [ "$(changes_of "$BATS_TEST_TMPDIR/t.db")" -ge 1 ]
    run sqlite3 "$BATS_TEST_TMPDIR/t.db" "PRAGMA integrity_check"
    assert_output "ok"
}

@test "a real segfault without faulthandler dies by SIGSEGV silently" {
    run -139 "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" "$fixtures/real_segfault.py"
    assert_output "before crash"
}
