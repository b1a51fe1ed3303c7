#!/usr/bin/env bats
# --backend: which detection mechanism a trace uses, what its meta records, and the
# fallback where the kernel lacks userfaultfd (simulated with MEMWATCH_DISABLE_UFFD=1).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'helpers/uffd'
bats_require_minimum_version 1.5.0

fixture="$MEMWATCH_SOURCE_DIR/tests/fixtures/watched_write.py"

backend_of() {
    sqlite3 "$BATS_TEST_TMPDIR/t.db" "SELECT value FROM meta WHERE key = 'backend'"
}

@test "--backend mprotect is recorded in the trace's meta" {
    run "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --backend mprotect "$fixture"
    assert_success
    run backend_of
    assert_output "mprotect"
}

@test "--backend uffd is recorded in the trace's meta, and auto picks it" {
    uffd_unavailable && skip "this kernel lacks userfaultfd write-protection"
    run "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --backend uffd "$fixture"
    assert_success
    run backend_of
    assert_output "uffd"
    run "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" -f "$fixture"
    assert_success
    run backend_of
    assert_output "uffd"
}

@test "without userfaultfd, auto falls back to mprotect" {
    MEMWATCH_DISABLE_UFFD=1 run "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" "$fixture"
    assert_success
    run backend_of
    assert_output "mprotect"
}

@test "without userfaultfd, --backend uffd exits 2 with one line" {
    MEMWATCH_DISABLE_UFFD=1 run -2 --separate-stderr "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --backend uffd "$fixture"
    assert_output ""
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "memwatch: backend 'uffd' is not available on this system"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/t.db" ]
}

@test "an unknown backend is a usage error" {
    run -2 "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" --backend bogus "$fixture"
    assert_output --partial "memwatch: invalid --backend 'bogus'"
}
