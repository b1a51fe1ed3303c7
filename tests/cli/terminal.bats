#!/usr/bin/env bats
# Terminal-safe output (issue 14, item 3): tags, file, function and thread names come from
# the traced program and can hold escape sequences (retitle, recolour), BEL, CR, newlines
# that forge rows, or invalid UTF-8. Human-readable output shows them as git shows odd
# path names: a plain string as it is, any other in double quotes with C escapes. JSON,
# JSONL and CSV keep the exact bytes.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
    # Tag 'weights' becomes ESC ] 0 ; x BEL LF forged, a title change and a forged row;
    # change 3's function recolours, its thread name returns the carriage.
    sqlite3 t.db "UPDATE objects SET tag = char(27) || ']0;x' || char(7) || char(10) ||
                    'forged' WHERE id = 1;
                  UPDATE sites SET function = 'f' || char(27) || '[31m',
                                   thread_name = 'w' || char(13) || 'X' WHERE id = 3;"
    BAD_TAG=$'\e]0;x\a\nforged'
    SHOWN_TAG='"\033]0;x\a\nforged"'
}

# assert_no_controls: the last output holds no control character but newlines (and no
# invalid UTF-8).
assert_no_controls() {
    local n
    n=$(printf '%s' "$output" | LC_ALL=C tr -d '\n' | LC_ALL=C grep -c $'[\x01-\x1f\x7f]' || true)
    assert_equal "$n" 0
    printf '%s' "$output" | iconv -f UTF-8 -t UTF-8 >/dev/null || fail "output is not valid UTF-8"
}

@test "query's table escapes control characters: no forged row, no escape sequence" {
    run_memwatch -0 --separate-stderr query t.db
    assert_no_controls
    assert_equal "${#lines[@]}" 6   # the header and 5 ranges: nothing forged
    assert_line --index 1 --partial "  $SHOWN_TAG  "
    assert_line --index 4 --partial '"train.py:20 f\033[31m"  "w\rX"'
    assert_equal "$stderr" ""
}

@test "query --summary, --elements and --sql tables escape too" {
    run_memwatch -0 query --summary t.db
    assert_no_controls
    assert_equal "${#lines[@]}" 3
    assert_line --index 1 --partial "$SHOWN_TAG "
    run_memwatch -0 query --elements --tag "$BAD_TAG" t.db
    assert_no_controls
    assert_line --index 1 --partial '"\033]0;x\a\nforged[0]"'
    run_memwatch -0 query --sql "SELECT tag, char(27) || '[2J' AS \"x$(printf '\r')y\" FROM objects" t.db
    assert_no_controls
    assert_line --index 0 --regexp '^tag +"x\\ry"$'
    assert_line --index 1 "$SHOWN_TAG  \"\\033[2J\""
}

@test "diff escapes the tag, the location and the thread in its headings and elements" {
    run_memwatch -0 diff -t t.db "$BAD_TAG"
    assert_no_controls
    assert_line --index 0 --partial "seq 1  0.001500s  $SHOWN_TAG  "
    assert_output --partial '"train.py:20 f\033[31m"  thread "w\rX"'
    # A typed object's element lines: the name made from the tag is quoted as a whole.
    sqlite3 t.db "UPDATE objects SET tag = 'b' || char(27) || '[1m' WHERE id = 2"
    run_memwatch -0 diff -t t.db $'b\e[1m'
    assert_no_controls
    assert_output --partial '  "b\033[1m[1]": 1.0 -> 2.0'
}

@test "the unknown-tag message is one line, every tag in it escaped" {
    run_memwatch -2 --separate-stderr query --tag $'nope\n' t.db
    assert_equal "${#stderr_lines[@]}" 1
    assert_equal "$stderr" "memwatch: unknown tag \"nope\\n\"; the tags in 't.db' are: $SHOWN_TAG, 'bias'"
    run_memwatch -2 --separate-stderr diff -t t.db nope
    assert_equal "$stderr" "memwatch: unknown tag 'nope'; the tags in 't.db' are: $SHOWN_TAG, 'bias'"
}

@test "invalid UTF-8, C1 controls and bidirectional overrides are escaped; other UTF-8 is shown" {
    sqlite3 t.db "UPDATE objects SET tag = CAST(x'6162ff63' AS TEXT) WHERE id = 1;
                  UPDATE objects SET tag = 'Gewichte_' || char(228) || '_' || char(0x65e5)
                                           || char(0x9b) || '2J' || char(0x202e) WHERE id = 2;"
    run_memwatch -0 query --summary t.db
    assert_no_controls
    assert_line --index 1 --partial '"ab\377c"'
    assert_line --index 2 --partial '"Gewichte_ä_日\302\2332J\342\200\256"'
    # Plain names stay bare, and a name with a quote or a backslash is quoted, so a
    # quoted name is never mistaken for a plain one.
    sqlite3 t.db "UPDATE objects SET tag = 'Gewichte_' || char(228) WHERE id = 2;
                  UPDATE objects SET tag = 'a\"b\\c' WHERE id = 1;"
    run_memwatch -0 query --summary t.db
    assert_line --index 1 --partial '"a\"b\\c"'
    assert_line --index 2 --regexp '^Gewichte_ä +1 '
}

@test "JSON, JSONL and CSV keep the exact bytes" {
    run_memwatch -0 query -f json --tag "$BAD_TAG" t.db
    /usr/bin/python3 - "$output" <<'PY'
import json, sys
rows = json.loads(sys.argv[1])
assert rows[0]["tag"] == "\x1b]0;x\x07\nforged", rows[0]["tag"]
assert rows[-1]["function"] == "f\x1b[31m" and rows[-1]["thread"] == "w\rX", rows[-1]
PY
    run_memwatch -0 query -f jsonl --summary t.db
    /usr/bin/python3 -c 'import json, sys; assert json.loads(sys.argv[1].split("\n")[0])["tag"] == "\x1b]0;x\x07\nforged"' "$output"
    "$MEMWATCH" query -f csv --since 3 t.db > out.csv
    /usr/bin/python3 - <<'PY'
import csv
rows = list(csv.reader(open("out.csv", newline="", encoding="utf-8")))
assert rows[1][2] == "\x1b]0;x\x07\nforged", rows[1][2]
assert rows[1][11] == "f\x1b[31m" and rows[1][12] == "w\rX", rows[1]
assert len(rows) == 3, rows
PY
}

@test "the end-of-run line of memwatch trace escapes the tags and file names it names" {
    cat > $'nan\e[5m.py' <<'PY'
import array, memwatch
a = array.array("f", [1.0, 2.0])
memwatch.watch(a, "w\x1b]0;t\x07")
a[1] = float("nan")
PY
    run_memwatch -0 --separate-stderr trace -o run.db $'nan\e[5m.py'
    assert_equal "$output" ""
    output=$stderr
    assert_no_controls
    [[ ${stderr_lines[1]} == 'memwatch: "w\033]0;t\a": 1 NaN appeared at seq '*', "'*'nan\033[5m.py":4' ]] ||
        fail "got: ${stderr_lines[1]}"
}
