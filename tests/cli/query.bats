#!/usr/bin/env bats
# memwatch query (issue 4, "Reading it"): formats, filters, --summary, --sql, the choice of
# trace, and one line with a documented exit status for each kind of bad input.
#
# Traces are made with the sqlite3 CLI from schemas/trace.sql (trace_fixtures.bash).
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
}

@test "query -h prints the usage on stdout and exits 0; the man page's SYNOPSIS matches" {
    assert_help query
}

@test "query prints a table of changed ranges in sequence order" {
    run_memwatch -0 --separate-stderr query t.db
    assert_equal "$stderr" ""
    assert_output - <<'OUT'
seq      time  tag      offset  length  old       new                 where               thread      pid
  1  0.001500  weights       0       4  00000000  01020304            train.py:10 step    MainThread  -
  1  0.001500  weights      20       1  00        41                  train.py:10 step    MainThread  -
  2  0.002500  bias          4       4  0000803f  00000040            train.py:11 step    MainThread  -
  3  0.003500  weights       2       2  0304      ffff                train.py:20 update  worker      -
  3  0.003500  weights      40      24  ?         000102030405..1617  train.py:20 update  worker      -
OUT
}

@test "query --format json gives every field, with full bytes and nulls" {
    run_memwatch -0 --separate-stderr query --format json t.db
    /usr/bin/python3 - "$output" <<'PY'
import json, sys
rows = json.loads(sys.argv[1])
assert len(rows) == 5, rows
need = {"seq", "time_ns", "tag", "offset", "length", "old_hex", "new_hex", "file", "line",
        "function", "thread"}
assert all(need <= set(r) for r in rows), rows[0].keys()
last = rows[-1]
assert last["seq"] == 3 and last["time_ns"] == 3500000 and last["tag"] == "weights"
assert last["old_hex"] is None and last["complete"] == 0
assert last["new_hex"] == bytes(range(24)).hex()
assert rows[0]["file"] == "train.py" and rows[0]["line"] == 10 and rows[0]["thread"] == "MainThread"
PY
}

@test "query --format jsonl gives one object per line" {
    run_memwatch -0 query -f jsonl --tag bias t.db
    assert_output '{"seq": 2, "time_ns": 2500000, "tag": "bias", "object_id": 2, "offset": 4, "length": 4, "old_hex": "0000803f", "new_hex": "00000040", "complete": 1, "file": "train.py", "line": 11, "function": "step", "thread": "MainThread", "thread_id": 101, "kept": "rows", "pid": null}'
}

@test "query --format csv has a header and quotes what needs quoting" {
    sqlite3 t.db "UPDATE sites SET function = 'f, \"g\"' WHERE id = 2"
    run_memwatch -0 query -f csv --since 2 --until 2 t.db
    assert_output - <<'OUT'
seq,time_ns,tag,object_id,offset,length,old_hex,new_hex,complete,file,line,function,thread,thread_id,kept,pid
2,2500000,bias,2,4,4,0000803f,00000040,1,train.py,11,"f, ""g""",MainThread,101,rows,
OUT
}

@test "query filters: --tag, --since, --until, --limit" {
    run_memwatch -0 query -f jsonl --tag weights t.db
    assert_equal "${#lines[@]}" 4
    run_memwatch -0 query -f jsonl --since 2 t.db
    assert_equal "${#lines[@]}" 3
    run_memwatch -0 query -f jsonl --until 1 t.db
    assert_equal "${#lines[@]}" 2
    run_memwatch -0 query -f jsonl -n 3 t.db
    assert_equal "${#lines[@]}" 3
    assert_line --index 2 --partial '"seq": 2,'
    run_memwatch -0 --separate-stderr query -f json --since 9 t.db
    assert_output "[]"
    assert_equal "$stderr" ""
}

@test "query --summary gives one row per tag" {
    run_memwatch -0 query --summary t.db
    assert_output - <<'OUT'
tag      objects  changes  ranges  bytes_changed  first_seq  last_seq  elements_changed  delta_min  delta_max  delta_mean  nan_appeared  nan_gone  inf_appeared  inf_gone  first_nonfinite_seq
weights        1        2       4             31          1         3  -                 -          -          -           -             -         -             -         -
bias           1        1       1              4          2         2  -                 -          -          -           -             -         -             -         -
OUT
    run_memwatch -0 query -s -f csv --tag bias t.db
    assert_line --index 1 "bias,1,1,1,4,2,2,,,,,,,,,"
}

@test "query --summary says what the run left out, and blames memory only for what memory did" {
    # A change cut off by its process's death is counted in run.changes_dropped, as one
    # lost for memory is; only changes_short_of_memory is memory's alone.
    sqlite3 t.db "UPDATE run SET changes_dropped = 1"
    run_memwatch -0 query --summary t.db
    assert_line --index 0 "incomplete: 1 change lost, for lack of memory or cut off by the end of the process sending it"
    refute_output --partial "recorded with less than usual"
    sqlite3 t.db "INSERT INTO meta VALUES ('changes_short_of_memory', '3'), ('changes_not_recorded', '7'), ('max_trace_size', '1048576')"
    run_memwatch -0 query --summary t.db
    assert_line --index 0 "incomplete: 3 changes recorded with less than usual for lack of memory"
    assert_line --index 1 "incomplete: 1 change lost, for lack of memory or cut off by the end of the process sending it"
    assert_line --index 2 "incomplete: 7 changes were not recorded: the trace reached --max-trace-size 1MiB"
}

@test "query --sql runs a read-only statement in any format" {
    run_memwatch -0 query --sql "SELECT tag, count(*) AS n FROM change_ranges GROUP BY tag ORDER BY tag" t.db
    assert_output - <<'OUT'
tag      n
bias     1
weights  4
OUT
    run_memwatch -0 query -f jsonl --sql "SELECT new FROM ranges WHERE seq = 2" t.db
    assert_output '{"new": "00000040"}'
}

@test "query --sql refuses a statement that would write, exit 2" {
    run_memwatch -2 --separate-stderr query --sql "DELETE FROM change_rows" t.db
    assert_equal "$stderr" "memwatch: refusing a statement that would modify the trace: 'DELETE FROM change_rows'"
    run_memwatch -2 --separate-stderr query --sql "DELETE FROM changes" t.db
    assert_equal "$stderr" "memwatch: bad sql statement: cannot modify changes because it is a view"
    assert_equal "$output" ""
    run_memwatch -2 query --sql "ATTACH 'x.db' AS x" t.db
    run_memwatch -0 query -f csv --sql "SELECT count(*) FROM changes" t.db
    assert_line --index 1 "3"
    [[ ! -e x.db ]]
}

@test "query --sql with bad SQL says why, exit 2" {
    run_memwatch -2 --separate-stderr query --sql "SELEKT 1" t.db
    assert_equal "$stderr" 'memwatch: bad sql statement: near "SELEKT": syntax error'
    run_memwatch -2 --separate-stderr query --sql "SELECT * FROM no_such_table" t.db
    assert_equal "$stderr" "memwatch: bad sql statement: no such table: no_such_table"
    run_memwatch -2 --separate-stderr query --sql "SELECT 1; SELECT 2" t.db
    assert_equal "$stderr" "memwatch: one sql statement at a time: 'SELECT 2' follows the first"
}

@test "query: an unknown tag lists the tags there are, exit 2" {
    run_memwatch -2 --separate-stderr query --tag nope t.db
    assert_equal "$stderr" "memwatch: unknown tag 'nope'; the tags in 't.db' are: 'weights', 'bias'"
    assert_equal "$output" ""
}

@test "query: a missing file, exit 2" {
    run_memwatch -2 --separate-stderr query missing.db
    assert_equal "$stderr" "memwatch: no trace file 'missing.db'"
}

@test "query: a file that is not SQLite, exit 2" {
    head -c 4096 /dev/urandom > noise.db
    printf 'not a database, just text that is long enough for a header..........................\n' > text.db
    run_memwatch -2 --separate-stderr query text.db
    assert_equal "$stderr" "memwatch: 'text.db' is not an SQLite database"
}

@test "query: an SQLite database that is not a trace, exit 2" {
    sqlite3 other.db "CREATE TABLE t (x); INSERT INTO t VALUES (1);"
    run_memwatch -2 --separate-stderr query other.db
    assert_equal "$stderr" "memwatch: 'other.db' is an SQLite database but not a memwatch trace"
}

@test "query: a trace with a newer schema, exit 2" {
    sqlite3 t.db "PRAGMA user_version = 7; UPDATE meta SET value = '7' WHERE key IN ('schema_version', 'read_compat');"
    run_memwatch -2 --separate-stderr query t.db
    assert_equal "$stderr" "memwatch: 't.db' was written with trace schema version 7, newer than this memwatch reads (3): use a newer memwatch"
}

@test "query: a newer schema that old readers may still read is read" {
    sqlite3 t.db "PRAGMA user_version = 4; UPDATE meta SET value = '4' WHERE key = 'schema_version'; CREATE TABLE elements (x);"
    run_memwatch -0 query -f jsonl --tag bias t.db
    assert_output --partial '"seq": 2,'
}

@test "query: an empty trace says so and exits 0" {
    make_empty_trace e.db
    run_memwatch -0 --separate-stderr query e.db
    assert_equal "$output" ""
    assert_equal "$stderr" "memwatch: 'e.db' is an empty trace: no changes were recorded (1 object watched)"
    run_memwatch -0 --separate-stderr query -f json e.db
    assert_output "[]"
}

@test "query without a trace reads the newest memwatch-*.db here and says which" {
    make_trace memwatch-old.1.db
    make_trace memwatch-new.2.db
    sqlite3 memwatch-new.2.db "DELETE FROM ranges WHERE seq = 3; DELETE FROM change_rows WHERE seq = 3;"
    touch -d '2020-01-01' memwatch-old.1.db
    run_memwatch -0 --separate-stderr query -f jsonl
    assert_equal "$stderr" "memwatch: reading 'memwatch-new.2.db'"
    assert_equal "${#lines[@]}" 3
}

@test "query without a trace and none here, exit 2" {
    rm -f ./*.db
    run_memwatch -2 --separate-stderr query
    assert_equal "$stderr" "memwatch: no trace given, and no memwatch-*.db in the current directory"
}

@test "query usage errors exit 2 with one line and the usage" {
    run_memwatch -2 --separate-stderr query --format xml t.db
    assert_equal "${stderr_lines[0]}" "memwatch: unknown format 'xml' (use table, csv, json or jsonl)"
    assert_equal "${stderr_lines[1]%% *}" "usage:"
    run_memwatch -2 --separate-stderr query --since abc t.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--since' needs a sequence number, not 'abc'"
    local pid
    for pid in -1 0 abc 2147483648 99999999999999999999; do
        run_memwatch -2 --separate-stderr query --pid "$pid" t.db
        assert_equal "${stderr_lines[0]}" "memwatch: '--pid' needs a process id, not '$pid'"
        assert_equal "${stderr_lines[1]%% *}" "usage:"
    done
    run_memwatch -2 --separate-stderr query --limit 0 t.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--limit' needs a positive number, not '0'"
    run_memwatch -2 --separate-stderr query --bogus t.db
    assert_equal "${stderr_lines[0]}" "memwatch: unknown option '--bogus'"
    run_memwatch -2 --separate-stderr query --tag
    assert_equal "${stderr_lines[0]}" "memwatch: option '--tag' requires a value"
    run_memwatch -2 --separate-stderr query t.db t.db
    assert_equal "${stderr_lines[0]}" "memwatch: 't.db' is the same file as 't.db': give each trace once"
    run_memwatch -2 --separate-stderr query --sql "SELECT 1" --tag bias t.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--sql' cannot be combined with '--summary', '--tag', '--since', '--until' or '--limit'"
    run_memwatch -2 --separate-stderr query --since 3 --until 2 t.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--since 3' is after '--until 2'"
}

@test "query escapes JSON strings: quotes, control characters, invalid UTF-8" {
    sqlite3 t.db "UPDATE objects SET tag = 'a \"b\" \\ c' || char(10) || 'd' WHERE id = 2;
                  UPDATE sites SET file = CAST(x'6669ff6c652e7079' AS TEXT) WHERE id = 2;"
    run_memwatch -0 query -f jsonl --since 2 --until 2 t.db
    assert_output --partial '"tag": "a \"b\" \\ c\nd"'
    /usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["file"] == "fi\ufffdle.py", r' "$output"
}

@test "a trace reads with the sqlite3 CLI, as the schema's comments say" {
    run sqlite3 t.db "SELECT seq, time_ns, offset, length, old_hex, new_hex, location FROM change_ranges WHERE tag = 'weights' ORDER BY seq, offset;"
    assert_success
    assert_output - <<'OUT'
1|1500000|0|4|00000000|01020304|train.py:10 step
1|1500000|20|1|00|41|train.py:10 step
3|3500000|2|2|0304|ffff|train.py:20 update
3|3500000|40|24||000102030405060708090a0b0c0d0e0f1011121314151617|train.py:20 update
OUT
    run sqlite3 t.db "SELECT * FROM tag_summary ORDER BY tag"
    assert_output - <<'OUT'
bias|1|1|4|2|2
weights|2|4|31|1|3
OUT
}

@test "a trace reads with Python's sqlite3 module, as the schema's comments say" {
    run /usr/bin/python3 - <<'PY'
import sqlite3
db = sqlite3.connect("file:t.db?mode=ro", uri=True)
for seq, off, old, new in db.execute(
        "SELECT seq, offset, old, new FROM change_ranges WHERE tag = ? ORDER BY seq, offset",
        ("bias",)):
    print(seq, off, old.hex(), new.hex())
print(db.execute("PRAGMA user_version").fetchone()[0])
PY
    assert_success
    assert_output - <<'OUT'
2 4 0000803f 00000040
3
OUT
}

@test "a version 2 trace (changes a table) reads as the same trace of version 3" {
    make_trace_v2 v2.db
    [ "$(sqlite3 v2.db 'PRAGMA user_version')" = 2 ] || fail "the fixture should be version 2"
    local cases=("query" "query -f json" "query --summary" "query --elements")
    local c
    for c in "${cases[@]}"; do
        # shellcheck disable=SC2086
        run_memwatch -0 $c t.db
        local want=$output
        # shellcheck disable=SC2086
        run_memwatch -0 $c v2.db
        assert_equal "$output" "$want"
    done
    local sql
    for sql in "SELECT * FROM changes ORDER BY seq" \
               "SELECT seq, hex(mw_old(seq, offset)), hex(mw_new(seq, offset)) FROM change_ranges" \
               "SELECT * FROM tag_summary ORDER BY tag"; do
        run_memwatch -0 query -f csv --sql "$sql" t.db
        local want=$output
        [ "${#lines[@]}" -gt 2 ] || fail "'$sql' gave too little: $output"
        run_memwatch -0 query -f csv --sql "$sql" v2.db
        assert_equal "$output" "$want"
    done
    run_memwatch -0 diff -t t.db weights
    local want=$output
    run_memwatch -0 diff -t v2.db weights
    assert_equal "$output" "$want"
    run_memwatch -0 report -o v2.html v2.db
}

@test "changes written from one line share one site; the view shows each change whole" {
    cat > many.py <<'PY'
import memwatch
bufs = [bytearray(4) for _ in range(50)]
for i, b in enumerate(bufs):
    memwatch.watch(b, f"b{i}")
for r in range(1, 4):
    for b in bufs:
        b[1] = r
    memwatch.check()
PY
    run_memwatch -0 trace -q --check=manual -o m.db many.py
    assert_equal "$(sqlite3 m.db 'SELECT count(*) FROM changes')" 150
    assert_equal "$(sqlite3 m.db 'SELECT count(*) FROM sites')" 1
    assert_equal "$(sqlite3 m.db "SELECT count(*) FROM changes WHERE file LIKE '%many.py'
                                    AND line > 0 AND thread_name = 'MainThread'
                                    AND pid = (SELECT pid FROM processes WHERE root = 1)
                                    AND offset = 1 AND length = 1 AND hex(new) = printf('%02X', 1 + (seq - 1) / 50)
                                    AND hex(old) = printf('%02X', (seq - 1) / 50)")" 150
    run_memwatch -0 query -f csv --tag b7 m.db
    assert_equal "${#lines[@]}" 4
    assert_line --index 3 --partial ",b7,8,1,1,02,03,1,"
}

@test "changes written from more places than the writer keeps in mind keep their own lines" {
    # 1,100 lines, each writing its own buffer, run twice: more places than the writer's
    # cache of sites holds, so places come back after theirs was put aside.
    cat > places.py <<'PY'
import memwatch
n = 1100
bufs = [bytearray(1) for _ in range(n)]
for i, b in enumerate(bufs):
    memwatch.watch(b, f"b{i}")
code = compile("\n".join(f"bufs[{i}][0] = r" for i in range(n)), "places.py", "exec")
for r in (1, 2):
    exec(code, {"bufs": bufs, "r": r})
PY
    run_memwatch -0 trace -q -o p.db places.py
    assert_equal "$(sqlite3 p.db "SELECT count(*) FROM changes AS c JOIN objects AS o ON o.id = c.object_id
                                   WHERE c.file = 'places.py'
                                     AND c.line = CAST(substr(o.tag, 2) AS INTEGER) + 1
                                     AND hex(c.new) = printf('%02X', 1 + (c.seq > 1100))")" 2200
    (($(sqlite3 p.db "SELECT count(*) FROM sites") >= 1100)) || fail "fewer sites than places"
}
