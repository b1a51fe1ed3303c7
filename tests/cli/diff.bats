#!/usr/bin/env bats
# memwatch diff (issue 4, "Reading it"): one block per change, old above new, changed bytes
# marked; --from/--to net differences; color rules; bad input.
#
# Traces are made with the sqlite3 CLI from schemas/trace.sql (trace_fixtures.bash).
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
    unset NO_COLOR
}

@test "diff -h prints the usage on stdout and exits 0; the man page's SYNOPSIS matches" {
    assert_help diff
}

@test "diff shows one block per change, old above new, changed bytes marked" {
    run_memwatch -0 --separate-stderr diff --bytes -t t.db bias
    assert_equal "$stderr" ""
    assert_output - <<'OUT'
seq 2  0.002500s  bias  1 range, 4 bytes  train.py:11 step  thread MainThread
- 00000000  ?? ?? ?? ?? 00 00 80 3f  ?? ?? ?? ?? ?? ?? ?? ??  |    ...?        |
+ 00000000  ?? ?? ?? ?? 00 00 00 40  ?? ?? ?? ?? ?? ?? ?? ??  |    ...@        |
                              ^^ ^^
OUT
}

@test "diff rebuilds context from the rest of the history" {
    run_memwatch -0 diff -t t.db weights
    assert_output - <<'OUT'
seq 1  0.001500s  weights  2 ranges, 5 bytes  train.py:10 step  thread MainThread
- 00000000  00 00 00 00 ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |....            |
+ 00000000  01 02 03 04 ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |....            |
            ^^ ^^ ^^ ^^
- 00000010  ?? ?? ?? ?? 00 ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |    .           |
+ 00000010  ?? ?? ?? ?? 41 ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |    A           |
                        ^^

seq 3  0.003500s  weights  2 ranges, 26 bytes  train.py:20 update  thread worker
- 00000000  01 02 03 04 ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |....            |
+ 00000000  01 02 ff ff ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |....            |
                  ^^ ^^
  00000010  ?? ?? ?? ?? 41 ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |    A           |
- 00000020  ?? ?? ?? ?? ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |                |
+ 00000020  ?? ?? ?? ?? ?? ?? ?? ??  00 01 02 03 04 05 06 07  |        ........|
                                     ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^
- 00000030  ?? ?? ?? ?? ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |                |
+ 00000030  08 09 0a 0b 0c 0d 0e 0f  10 11 12 13 14 15 16 17  |................|
            ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^  ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^
OUT
}

@test "diff --from --to shows the net difference; restored bytes are not changes" {
    # change 4 puts bytes 2..3 back to what they were before change 3
    sqlite3 t.db "INSERT INTO change_rows (seq, time_ns, object_id) VALUES (4, 4500000, 1);
                  INSERT INTO ranges VALUES (4, 2, 2, x'ffff', x'0304', 1);"
    run_memwatch -0 diff -t t.db --from 1 --to 4 -C 0 weights
    assert_output - <<'OUT'
weights  from seq 1 to seq 4  2 changes (seq 3..4), 24 bytes differ
- 00000020  ?? ?? ?? ?? ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |                |
+ 00000020  ?? ?? ?? ?? ?? ?? ?? ??  00 01 02 03 04 05 06 07  |        ........|
                                     ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^
- 00000030  ?? ?? ?? ?? ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |                |
+ 00000030  08 09 0a 0b 0c 0d 0e 0f  10 11 12 13 14 15 16 17  |................|
            ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^  ^^ ^^ ^^ ^^ ^^ ^^ ^^ ^^
OUT
    run_memwatch -0 diff -t t.db --to 1 bias
    assert_output "bias  from seq 0 to seq 1  no changes"
    run_memwatch -0 diff --bytes -t t.db --from 0 bias
    assert_line --index 0 "bias  from seq 0 to seq 2  1 change (seq 2..2), 2 bytes differ"
}

@test "diff colors only on request or on a terminal, and honours NO_COLOR" {
    run_memwatch -0 diff --bytes -t t.db bias
    refute_output --partial $'\e['
    run_memwatch -0 diff --bytes -t t.db --color=always bias
    assert_output --partial $'\e[31m80\e[0m'
    assert_output --partial $'\e[32m40\e[0m'
    refute_output --partial '^^'
    run_memwatch -0 diff --bytes -t t.db --color bias
    assert_output --partial $'\e[31m'
    run_memwatch -0 diff --bytes -t t.db --color=never bias
    refute_output --partial $'\e['
    if command -v script >/dev/null; then
        run script -qec "$MEMWATCH diff --bytes -t t.db bias" /dev/null
        assert_output --partial $'\e[31m'
        run env NO_COLOR=1 script -qec "$MEMWATCH diff --bytes -t t.db bias" /dev/null
        refute_output --partial $'\e['
    fi
}

@test "diff: an unknown tag lists the tags there are, exit 2" {
    run_memwatch -2 --separate-stderr diff -t t.db nope
    assert_equal "$stderr" "memwatch: unknown tag 'nope'; the tags in 't.db' are: 'weights', 'bias'"
    assert_equal "$output" ""
}

@test "diff: an empty trace and an object that never changed say so" {
    make_empty_trace e.db
    run_memwatch -0 --separate-stderr diff -t e.db idle
    assert_equal "$stderr" "memwatch: 'idle' did not change in 'e.db'"
    assert_equal "$output" ""
    sqlite3 e.db "DELETE FROM objects"
    run_memwatch -2 --separate-stderr diff -t e.db idle
    assert_equal "$stderr" "memwatch: unknown tag 'idle': 'e.db' is an empty trace (no objects were watched)"
}

@test "diff: bad files, exit 2" {
    run_memwatch -2 --separate-stderr diff -t missing.db w
    assert_equal "$stderr" "memwatch: no trace file 'missing.db'"
    printf 'not a database, just text that is long enough for a header..........................\n' > text.db
    run_memwatch -2 --separate-stderr diff -t text.db w
    assert_equal "$stderr" "memwatch: 'text.db' is not an SQLite database"
    sqlite3 other.db "CREATE TABLE t (x)"
    run_memwatch -2 --separate-stderr diff -t other.db w
    assert_equal "$stderr" "memwatch: 'other.db' is an SQLite database but not a memwatch trace"
    sqlite3 t.db "PRAGMA user_version = 4; UPDATE meta SET value = '4' WHERE key = 'read_compat';"
    run_memwatch -2 --separate-stderr diff -t t.db bias
    assert_equal "$stderr" "memwatch: 't.db' was written with trace schema version 4, newer than this memwatch reads (3): use a newer memwatch"
}

@test "diff without -t reads the newest memwatch-*.db here and says which" {
    make_trace memwatch-a.1.db
    touch -d '2020-01-01' memwatch-a.1.db
    make_trace memwatch-b.2.db
    run_memwatch -0 --separate-stderr diff bias
    assert_equal "$stderr" "memwatch: reading 'memwatch-b.2.db'"
    assert_line --index 0 --partial "seq 2 "
}

@test "diff usage errors exit 2 with one line and the usage" {
    run_memwatch -2 --separate-stderr diff -t t.db
    assert_equal "${stderr_lines[0]}" "memwatch: no tag given"
    assert_equal "${stderr_lines[1]%% *}" "usage:"
    run_memwatch -2 --separate-stderr diff -t t.db a b
    assert_equal "${stderr_lines[0]}" "memwatch: give the traces with -t or after the tag, not both"
    run_memwatch -2 --separate-stderr diff -t t.db --from x bias
    assert_equal "${stderr_lines[0]}" "memwatch: '--from' needs a sequence number, not 'x'"
    run_memwatch -2 --separate-stderr diff -t t.db --from 3 --to 2 bias
    assert_equal "${stderr_lines[0]}" "memwatch: '--from 3' is after '--to 2'"
    run_memwatch -2 --separate-stderr diff -t t.db --color=sometimes bias
    assert_equal "${stderr_lines[0]}" "memwatch: '--color' takes auto, always or never, not 'sometimes'"
    run_memwatch -2 --separate-stderr diff --trace
    assert_equal "${stderr_lines[0]}" "memwatch: option '--trace' requires a value"
    run_memwatch -2 --separate-stderr diff -t
    assert_equal "${stderr_lines[0]}" "memwatch: option '-t' requires a value"
}
