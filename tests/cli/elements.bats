#!/usr/bin/env bats
# Typed changes (issue 7): elements, not bytes, for numpy, torch, array.array and ctypes
# objects, in `memwatch query --elements` (every format), `memwatch query --summary` and
# `memwatch diff` (elements by default, --bytes for hexdumps), NaN and Inf flagged.
#
# The traces come from real runs of tests/fixtures/elements.py under `memwatch trace`.
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup_file() {
    : "${MEMWATCH:?set MEMWATCH to the memwatch binary}"
    : "${MEMWATCH_SOURCE_DIR:?set MEMWATCH_SOURCE_DIR to the source tree}"
    cd "$BATS_FILE_TMPDIR"
    # --check=manual: the fixture calls memwatch.check() where it wants a change to end, so
    # the sequence numbers below are the fixture's own.
    "$MEMWATCH" trace -q -f --check=manual -o np.db "$MEMWATCH_SOURCE_DIR/tests/fixtures/elements.py"
    if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
        "$MEMWATCH" trace -q -f --check=manual -o torch.db "$MEMWATCH_SOURCE_DIR/tests/fixtures/elements.py" torch
    fi
}

setup() {
    load common
    load trace_fixtures
    common_setup
    cd "$BATS_FILE_TMPDIR"
    unset NO_COLOR
}

# writer_re RE UNKNOWN: the regexp of a change's writer columns, RE; in a sanitized build
# (MEMWATCH_SANITIZE: tests/sanitize.sh asan) RE or UNKNOWN, with the reason printed. There the
# traced python3 allocates through ASan's allocator, which stores a dozen times into chunk
# headers on every malloc and free; the fixture's small arrays share their page with such
# chunks (memwatch's own check allocates some), so between two checks the page can use up the
# engine's neighbour budget (MW_BUSY_TRAPS, src/core/detector.h) and is left open until
# the next check, as designed: the next write to the array is found, its writer is not.
# Everything else is checked the same way in both builds; attribution.bats checks writers.
writer_re() {
    local cache="${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}/CMakeCache.txt"
    if grep -qx 'MEMWATCH_SANITIZE:BOOL=ON' "$cache" 2>/dev/null; then
        echo "# sanitized build: a writer may be unknown (ASan's allocator spends the page's neighbour budget)" >&3
        printf '(%s|%s)' "$1" "$2"
    else
        printf '%s' "$1"
    fi
}

# elements TRACE TAG: the tag's changed elements from `query -e -f jsonl`, one line each:
# seq element index field old new note
elements() {
    "$MEMWATCH" query -e -f jsonl --tag "$2" "$1" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(r["seq"], r["element"], json.dumps(r["index"]), r["field"], r["old"], r["new"], r["note"])'
}

@test "query -e: float32, float64 3-D, int8, complex64 and bool arrays" {
    run elements np.db f32
    assert_output - <<'OUT'
1 f32[1, 2] [1, 2] None 0.0 0.1234 None
14 f32[0, 0] [0, 0] None 0.0 inf Inf appeared
14 f32[1, 2] [1, 2] None 0.1234 0.1334 None
14 f32[2, 3] [2, 3] None 0.0 nan NaN appeared
16 f32[2, 3] [2, 3] None nan 1.0 NaN gone
OUT
    run elements np.db f64
    assert_output "2 f64[1, 2, 3] [1, 2, 3] None 0.0 -2.5 None"
    run elements np.db i8
    assert_output "3 i8[5] [5] None 0 -7 None"
    run elements np.db c64
    assert_output "4 c64[2] [2] None (0+0j) (1.5-2j) None"
    run elements np.db b
    assert_output "5 b[3] [3] None False True None"
}

@test "query -e: structured arrays and ctypes structures name their fields" {
    run elements np.db st
    assert_output - <<'OUT'
6 st[1].y [1] y 0.0 2.5 None
6 st[2].x [2] x 0 9 None
OUT
    run elements np.db pt
    assert_line --index 0 --regexp '^[0-9]+ pt.y \[\] y 0.0 0.75 None$'
    assert_line --index 1 --regexp '^[0-9]+ pt.x \[\] x 0 -1 None$'
    run elements np.db ci
    assert_output "12 ci[7] [7] None 0 123 None"
    run elements np.db ad
    assert_output "11 ad[2] [2] None 0.0 1.25 None"
}

@test "query -e: Fortran order maps memory to indices through the strides" {
    run elements np.db fo
    assert_output "7 fo[2, 1] [2, 1] None 0.0 7.0 None"
    run elements np.db fo3
    assert_output "8 fo3[1, 2, 3] [1, 2, 3] None 0.0 0.25 None"
}

@test "query -e: a view with steps reports its own elements in its own coordinates" {
    # base[1, 2] is view[1, 1]; base[1, 3] lies between the view's elements
    run elements np.db view
    assert_output "9 view[1, 1] [1, 1] None 0.0 3.0 None"
    run elements np.db view1
    assert_output "10 view1[2] [2] None 0 42 None"
}

@test "query -e: torch float32 and int64 tensors" {
    [[ -f torch.db ]] || skip "python3-torch is not installed"
    run elements torch.db t32
    assert_output - <<'OUT'
1 t32[1, 0] [1, 0] None 0.0 0.5 None
3 t32[0, 2] [0, 2] None 0.0 inf Inf appeared
OUT
    run elements torch.db t64
    assert_output "2 t64[4] [4] None 0 -3 None"
}

@test "query -e in every format, numbers as numbers, with --limit counting elements" {
    run_memwatch -0 query -e --tag f32 -n 2 np.db
    local writer
    writer=$(writer_re '.*elements\.py:[0-9]+ <module> +MainThread' '- +-')
    assert_output - <<OUT --regexp
^seq +time +element +old +new +delta +note +where +thread
 +1 +[0-9.]+ +f32\[1, 2\] +0\.0 +0\.1234 +0\.1234 +- +$writer
 +14 +[0-9.]+ +f32\[0, 0\] +0\.0 +inf +- +Inf appeared +.*$
OUT
    run_memwatch -0 query -e -f csv --tag view1 np.db
    assert_line --index 0 "seq,time_ns,tag,object_id,element,index,field,offset,old,new,old_value,new_value,delta,note,file,line,function,thread,thread_id"
    # (The writer may be unknown here: under --check=manual a small array on a busy heap page
    # can be opened by a neighbour's write first; attribution.bats covers writers.)
    assert_line --index 1 --regexp '^10,[0-9]+,view1,[0-9]+,view1\[2\],\[2\],,16,0,42,0,42,42,,(.*elements\.py,[0-9]+,<module>,MainThread,[0-9]+|,,,,)$'
    run_memwatch -0 query -e -f json --tag i8 np.db
    /usr/bin/python3 -c '
import json, sys
rows = json.loads(sys.argv[1])
assert len(rows) == 1, rows
r = rows[0]
assert (r["index"], r["old_value"], r["new_value"], r["delta"], r["offset"]) == ([5], 0, -7, -7, 5), r' "$output"
    run_memwatch -0 query -e -f jsonl --tag f32 --since 14 --until 14 np.db
    /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
nan = [r for r in rows if r["note"] == "NaN appeared"][0]
assert nan["new"] == "nan" and nan["new_value"] is None and nan["delta"] is None, nan
assert abs(rows[1]["delta"] - 0.01) < 1e-6, rows[1]' "$output"
    # A complex element is not one number: its real part alone is not its value.
    run_memwatch -0 query -e -f jsonl --tag c64 np.db
    /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert (r["old"], r["new"], r["old_value"], r["new_value"], r["delta"]) == \
    ("(0+0j)", "(1.5-2j)", None, None, None), r' "$output"
    # Nor is Inf a finite number, in CSV as in JSON.
    run_memwatch -0 query -e -f csv --tag f32 --since 14 --until 14 -n 1 np.db
    assert_line --index 1 --regexp '^14,[0-9]+,f32,[0-9]+,"?f32\[0, 0\]"?,"?\[0, 0\]"?,,0,0.0,inf,0,,,Inf appeared,'
}

@test "query -s adds the numeric summary per tag" {
    run_memwatch -0 query -s -f jsonl --tag f32 np.db
    /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
want = {"elements_changed": 5, "nan_appeared": 1, "nan_gone": 1, "inf_appeared": 1,
        "inf_gone": 0, "first_nonfinite_seq": 14}
assert {k: r[k] for k in want} == want, r
assert abs(r["delta_min"] - 0.01) < 1e-6 and abs(r["delta_max"] - 0.1234) < 1e-6, r' "$output"
    # bytes get no numeric summary; the sqlite3 CLI sees the same numbers
    run sqlite3 np.db "SELECT tag, elements, nan_appeared, inf_appeared, first_nonfinite_seq FROM tag_numbers WHERE tag = 'f32'"
    assert_output "f32|5|1|1|14"
}

@test "diff shows elements by default and flags NaN and Inf; --bytes shows hexdumps" {
    run_memwatch -0 diff -t np.db f32
    local writer
    writer=$(writer_re '  .*elements\.py:[0-9]+ <module>  thread MainThread' '')
    # (a traced run names the process that wrote)
    assert_output --regexp "seq 14  [0-9.]+s  f32  3 elements$writer  process [0-9]+
!! 1 NaN and 1 Inf appeared
  f32\[0, 0\]: 0\.0 -> inf  !! Inf appeared
  f32\[1, 2\]: 0\.1234 -> 0\.1334
  f32\[2, 3\]: 0\.0 -> nan  !! NaN appeared"
    assert_output --partial "  f32[2, 3]: nan -> 1.0  NaN gone"
    run_memwatch -0 diff -t np.db st
    assert_line --index 1 "  st[1].y: 0.0 -> 2.5"
    assert_line --index 2 "  st[2].x: 0 -> 9"
    run_memwatch -0 diff -t np.db --bytes fo
    assert_line --index 0 --regexp '^seq 7  [0-9.]+s  fo  1 range, 8 bytes  '
    # Its bytes around the change are known: the trace keeps the object's value (--values=full).
    assert_line --index 2 '- 00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|'
    assert_line --index 3 '+ 00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 1c 40  |...............@|'
    run_memwatch -0 diff -t np.db --color=always f32
    assert_output --partial $'\e[1m\e[31m!! 1 NaN and 1 Inf appeared\e[0m'
    assert_output --partial $'f32[1, 2]: \e[31m0.1234\e[0m -> \e[32m0.1334\e[0m'
}

@test "diff --from --to gives the net change of each element" {
    run_memwatch -0 diff -t np.db --from 1 --to 16 f32
    assert_output - <<'OUT'
f32  from seq 1 to seq 16  2 changes (seq 14..16), 3 elements differ
!! 1 Inf appeared
  f32[0, 0]: 0.0 -> inf  !! Inf appeared
  f32[1, 2]: 0.1234 -> 0.1334
  f32[2, 3]: 0.0 -> 1.0
OUT
}

@test "bytes objects stay hexdumps; ranges that cover an element in part are completed from the history" {
    # A hand-made trace whose ranges are the exact changed bytes: seq 1 changes all four
    # bytes of bias[1], seq 2 only its two top bytes (known from seq 1), seq 3 only the top
    # byte of bias[2], whose other bytes the trace never saw.
    make_trace t.db
    sqlite3 t.db "INSERT INTO change_rows (seq, time_ns, object_id) VALUES (4, 4000000, 2), (5, 5000000, 2);
                  INSERT INTO ranges VALUES (4, 6, 2, x'0040', x'2040', 1), (5, 11, 1, x'3f', x'40', 1);"
    run_memwatch -0 diff -t t.db bias
    assert_output - <<'OUT'
seq 2  0.002500s  bias  1 element  train.py:11 step  thread MainThread
  bias[1]: 1.0 -> 2.0

seq 4  0.004000s  bias  1 element
  bias[1]: 2.0 -> 2.5

seq 5  0.005000s  bias  1 element
  bias[2]: ? -> ?
OUT
    run_memwatch -0 query -e -f csv --tag bias t.db
    assert_line --index 2 --regexp '^4,4000000,bias,2,bias\[1\],\[1\],,4,,,,,,,'
    run_memwatch -0 diff -t t.db weights
    assert_line --index 1 '- 00000000  00 00 00 00 ?? ?? ?? ??  ?? ?? ?? ?? ?? ?? ?? ??  |....            |'
}

@test "query --elements with --summary or --sql is a usage error" {
    run_memwatch -2 --separate-stderr query -e -s np.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--summary' and '--elements' cannot be combined"
    assert_equal "${stderr_lines[1]}" "usage: memwatch query [-s | -e] [-f format] [-n limit] [--since seq] [--until seq] [--tag tag] [--pid pid] [trace ...]"
    run_memwatch -2 --separate-stderr query --elements --sql "SELECT 1" np.db
    assert_equal "${stderr_lines[0]}" "memwatch: '--sql' cannot be combined with '--elements'"
}
