#!/usr/bin/env bats
# Every way a traced run can end leaves a valid trace holding every change made before.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
bats_require_minimum_version 1.5.0

fixture="$MEMWATCH_SOURCE_DIR/tests/fixtures/endings.py"

setup() {
    db="$BATS_TEST_TMPDIR/t.db"
}

q() {
    sqlite3 "$db" "$1"
}

assert_valid_with_steps() {
    run q "PRAGMA integrity_check"
    assert_output "ok"
    # The five steps, in order, each its own change.
    run q "SELECT group_concat(new_hex, ' ') FROM (SELECT new_hex FROM change_ranges
           WHERE tag = 'data' AND offset BETWEEN 1 AND 5 ORDER BY seq)"
    assert_output "01 02 03 04 05"
}

# Waits for the background run started by start_traced; its exit status in $status.
wait_traced() {
    status=0
    wait "$pid" || status=$?
}

# Starts a traced run in the background and waits until it printed "ready".
start_traced() {
    # A background job of a non-interactive shell starts with SIGINT ignored, and python3
    # keeps it ignored; give the run the default action, as a terminal's job would have.
    "$MEMWATCH_PYTHON" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$MEMWATCH" trace -q -o "$db" "$fixture" "$1" \
        > "$BATS_TEST_TMPDIR/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

@test "sys.exit(3): status 3, trace complete" {
    run -3 "$MEMWATCH" trace -q -o "$db" "$fixture" exit
    assert_valid_with_steps
    run q "SELECT ended_by, exit_status, end_signal IS NULL FROM run"
    assert_output "exit|3|1"
}

@test "an uncaught exception: status 1, trace complete" {
    run -1 "$MEMWATCH" trace -q -o "$db" "$fixture" exception
    assert_output --partial "RuntimeError: boom"
    assert_valid_with_steps
    run q "SELECT exit_status FROM run"
    assert_output "1"
}

@test "os._exit(5): status 5, changes made before it are kept, even unchecked ones" {
    run -5 "$MEMWATCH" trace -q -o "$db" "$fixture" os_exit
    assert_valid_with_steps
    run q "SELECT new_hex FROM change_ranges WHERE tag = 'data' AND offset = 10"
    assert_output "0a"
}

@test "SIGTERM: the final check runs, then the run dies by SIGTERM" {
    start_traced wait
    kill -TERM "$pid"
    wait_traced
    [ "$status" -eq 143 ]
    assert_valid_with_steps
    run q "SELECT new_hex FROM change_ranges WHERE tag = 'data' AND offset = 11"
    assert_output "0b"
    run q "SELECT ended_by, end_signal FROM run"
    assert_output "signal|15"
}

@test "SIGTERM: the script's own handler still runs" {
    start_traced own-term-handler
    kill -TERM "$pid"
    wait_traced
    [ "$status" -eq 7 ]
    run cat "$BATS_TEST_TMPDIR/out"
    assert_output --partial "script's own SIGTERM handler ran"
    assert_valid_with_steps
}

@test "SIGINT: KeyboardInterrupt ends the run as under python3, trace complete" {
    start_traced wait
    # A terminal sends SIGINT to the whole foreground job: memwatch ignores it, the
    # script's process gets KeyboardInterrupt.
    kill -INT "$pid"
    pkill -INT -P "$pid"
    wait_traced
    [ "$status" -eq 130 ]
    assert_valid_with_steps
    run q "SELECT ended_by, end_signal FROM run"
    assert_output "signal|2"
}

@test "SIGKILL of memwatch mid-run: the trace opens, is intact, and holds what was committed" {
    start_traced forever
    sleep 0.5
    kill -KILL "$pid"
    wait "$pid" || true
    sleep 0.2
    run q "PRAGMA integrity_check"
    assert_output "ok"
    run q "SELECT count(*) >= 5, min(seq) = 1, max(seq) = count(*) FROM changes"
    assert_output "1|1|1"
    # The script was killed with memwatch: nothing is left running.
    run pgrep -P "$pid"
    assert_failure
}
