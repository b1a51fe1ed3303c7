#!/usr/bin/env bats
# Who wrote it: each change's Python line, function, thread and native writer, under each
# --check mode. The fixture's line numbers are part of these tests.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load common
bats_require_minimum_version 1.5.0

fixture="$MEMWATCH_SOURCE_DIR/tests/fixtures/attribution.py"

trace() {
    run "$MEMWATCH" trace -q -o "$BATS_TEST_TMPDIR/t.db" "$@" "$fixture"
    assert_success
}

q() {
    sqlite3 -separator '|' "$BATS_TEST_TMPDIR/t.db" "$1"
}

@test "line: a straight-line write is attributed to its own line" {
    trace
    run q "SELECT offset, new_hex, line, function, thread_name FROM change_ranges
           WHERE tag = 'buf' ORDER BY seq, offset LIMIT 1"
    assert_output "3|07|5|<module>|MainThread"
}

@test "line: a write in a function called in a loop gives one change per call" {
    trace
    run q "SELECT old_hex, new_hex, line, function FROM change_ranges
           WHERE tag = 'buf' AND offset = 10 ORDER BY seq"
    assert_output "$(printf '00|01|9|bump\n01|02|9|bump\n02|03|9|bump')"
}

@test "line: a numpy in-place op has its Python line and a native symbol from numpy" {
    require_module numpy python3-numpy
    trace
    run q "SELECT count(*), min(c.line), max(c.native_library LIKE '%numpy%'),
                  max(c.native_symbol IS NOT NULL)
           FROM changes c JOIN objects o ON o.id = c.object_id WHERE o.tag = 'arr'"
    assert_output "1|14|1|1"
}

@test "line: a write in another thread is attributed to that thread while main is in join()" {
    trace
    run q "SELECT new_hex, line, function, thread_name FROM change_ranges
           WHERE tag = 'buf' AND offset = 20"
    assert_output "63|16|worker|writer"
}

@test "line: ctypes.memmove into a watched buffer is caught, with its line" {
    trace
    run q "SELECT offset, length, new_hex, line FROM change_ranges
           WHERE tag = 'buf' AND offset = 0"
    assert_output "0|8|$(printf 'memmove!' | od -An -tx1 | tr -d ' \n')|21"
}

@test "manual: writes between checks are coalesced into one change, attributed to the first write" {
    trace --check=manual
    run q "SELECT count(DISTINCT seq), min(line) FROM change_ranges WHERE tag = 'buf'"
    assert_output "1|5"
    # ...and the change still holds every byte written.
    run q "SELECT group_concat(offset || ':' || new_hex, ' ') FROM
           (SELECT offset, new_hex FROM change_ranges WHERE tag = 'buf' ORDER BY offset)"
    assert_output "0:$(printf 'memmove!' | od -An -tx1 | tr -d ' \n') 10:03 20:63"
}

@test "interval: writes within one period coalesce, writes further apart do not" {
    PAUSE=1 trace --check=interval:50
    # Before the pause everything happens within a few ms: one or two changes at most;
    # the memmove after the 300 ms pause is a change of its own.
    run q "SELECT count(DISTINCT seq) <= 3 FROM change_ranges WHERE tag = 'buf' AND line <> 21"
    assert_output "1"
    run q "SELECT count(*) FROM change_ranges WHERE tag = 'buf' AND line = 21"
    assert_output "1"
}
