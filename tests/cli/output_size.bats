#!/usr/bin/env bats
# Output size (issue 14, item 10): a table padded every row to its widest cell (a 12 MB
# trace with one 4 MB tag printed 204 MB), and query -e cut element names at 1,023
# characters, in JSONL too, losing the index. Table cells are now shortened visibly, with
# a note on how to see them whole; JSON, JSONL and CSV have no fixed-size limit.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
    NOTE="memwatch: values longer than 80 characters are shortened in this table (their middle is …); --format json, jsonl or csv shows them whole"
}

# big_tag N: tag 'weights' becomes "w" + N hex zeros + "end" (N + 4 characters).
big_tag() {
    sqlite3 t.db "UPDATE objects SET tag = 'w' || hex(zeroblob($1 / 2)) || 'end' WHERE id = 1"
}

@test "a 4 MB tag: the table stays narrow, the cell keeps its start and end, a note says so" {
    big_tag 4000000
    run_memwatch -0 --separate-stderr query t.db
    assert_equal "$stderr" "$NOTE"
    local widest
    widest=$(printf '%s\n' "$output" | awk '{ if (length($0) > w) w = length($0) } END { print w }')
    ((widest < 300)) || fail "the widest line has $widest characters"
    assert_equal "${#lines[@]}" 6
    assert_line --index 1 --regexp '^  1  0\.001500  w0{38}…0{37}end  +0  '
    # --summary and diff's headings too
    run_memwatch -0 --separate-stderr query --summary t.db
    assert_equal "$stderr" "$NOTE"
    assert_line --index 1 --regexp '^w0+…0+end +1 '
    # (an argument is at most 128 KiB: diff's tag is shorter)
    big_tag 100000
    run_memwatch -0 --separate-stderr diff -t t.db "w$(printf '0%.0s' $(seq 100000))end"
    widest=$(printf '%s\n' "$output" | awk '{ if (length($0) > w) w = length($0) } END { print w }')
    ((widest < 300)) || fail "the widest line has $widest characters"
    assert_line --index 0 --regexp '^seq 1  0\.001500s  w0+…0+end  2 ranges'
}

@test "the whole value is in JSON, JSONL and CSV" {
    big_tag 4000000
    "$MEMWATCH" query -f json --until 1 t.db > out.json 2> err
    [ ! -s err ]
    /usr/bin/python3 -c '
import json
rows = json.load(open("out.json"))
assert rows[0]["tag"] == "w" + "0" * 4000000 + "end", len(rows[0]["tag"])'
    "$MEMWATCH" query -f csv --until 1 t.db > out.csv
    /usr/bin/python3 -c '
import csv
csv.field_size_limit(1 << 30)
rows = list(csv.reader(open("out.csv", newline="")))
assert rows[1][2] == "w" + "0" * 4000000 + "end", len(rows[1][2])'
    run_memwatch -0 query -f jsonl --summary t.db
    [[ ${lines[0]} == '{"tag": "w'*'end", "objects": 1,'* ]] || fail "summary row cut"
    (( ${#lines[0]} > 4000000 ))
}

@test "query -e keeps whole element names in JSONL and CSV: a 3000-character tag and its index" {
    sqlite3 t.db "UPDATE objects SET tag = 'b' || hex(zeroblob(1500)) || 'end' WHERE id = 2"
    local tag
    tag="b$(printf '0%.0s' $(seq 3000))end"
    run_memwatch -0 query -e -f jsonl --tag "$tag" t.db
    /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
tag = "b" + "0" * 3000 + "end"
assert [r["element"] for r in rows] == [tag + "[1]"], [len(r["element"]) for r in rows]
assert rows[0]["tag"] == tag and rows[0]["index"] == [1]' "$output"
    "$MEMWATCH" query -e -f csv --tag "$tag" t.db > out.csv
    /usr/bin/python3 -c '
import csv
rows = list(csv.reader(open("out.csv", newline="")))
assert rows[1][4] == "b" + "0" * 3000 + "end[1]", len(rows[1][4])'
    # The table shortens it in the middle: the index at its end stays visible.
    run_memwatch -0 --separate-stderr query -e --tag "$tag" t.db
    assert_equal "$stderr" "$NOTE"
    assert_line --index 1 --regexp '^  2  0\.002500  b0+…0+end\[1\]  1\.0  2\.0 '
}

@test "a short value is never shortened, and no note is printed" {
    sqlite3 t.db "UPDATE objects SET tag = 'w' || hex(zeroblob(39)) || 'e' WHERE id = 1"
    run_memwatch -0 --separate-stderr query --summary t.db
    assert_equal "$stderr" ""
    assert_line --index 1 --regexp "^w0{78}e +1 "
}
