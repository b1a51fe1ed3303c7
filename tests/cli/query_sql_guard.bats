#!/usr/bin/env bats
# query --sql admits reads and safe functions only (issue 14, item 9): an authorizer on the
# reader's connection refuses unsafe functions (fts3_tokenizer printed a pointer, and its
# two-argument form installs one), extension loading, ATTACH, PRAGMAs that set something
# and every write, each with one line and exit status 2.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
}

# refused SQL MESSAGE: query --sql SQL prints nothing on stdout, MESSAGE as its one line on
# stderr, and exits 2.
refused() {
    run_memwatch -2 --separate-stderr query --sql "$1" t.db
    assert_equal "$output" ""
    assert_equal "$stderr" "$2"
}

FUNC_END="is not allowed on a trace (only SQLite's own functions that read their arguments are)"

@test "query --sql refuses fts3_tokenizer in both forms, and load_extension" {
    refused "SELECT fts3_tokenizer('simple')" \
        "memwatch: refusing the sql statement: the SQL function fts3_tokenizer() $FUNC_END"
    refused "SELECT hex(fts3_tokenizer('simple'))" \
        "memwatch: refusing the sql statement: the SQL function fts3_tokenizer() $FUNC_END"
    refused "SELECT fts3_tokenizer('mine', x'0000000000000000')" \
        "memwatch: refusing the sql statement: the SQL function fts3_tokenizer() $FUNC_END"
    refused "SELECT load_extension('/nonexistent/x.so')" \
        "memwatch: refusing the sql statement: the SQL function load_extension() $FUNC_END"
    refused "SELECT tag FROM objects WHERE highlight(tag, 0, '', '') IS NULL" \
        "memwatch: refusing the sql statement: the SQL function highlight() $FUNC_END"
}

@test "query --sql refuses ATTACH, PRAGMAs that set something, and writes" {
    run_memwatch -0 query -f csv --sql "PRAGMA user_version" t.db
    local version=${lines[1]}
    [[ $version =~ ^[0-9]+$ ]]
    refused "ATTACH 'x.db' AS x" \
        "memwatch: refusing the sql statement: ATTACH and DETACH are not allowed: memwatch reads one trace at a time"
    [ ! -e x.db ]
    refused "PRAGMA user_version = 5" \
        "memwatch: refusing the sql statement: PRAGMA user_version = 5 is not allowed on a trace"
    refused "PRAGMA writable_schema = 1" \
        "memwatch: refusing the sql statement: PRAGMA writable_schema = 1 is not allowed on a trace"
    refused "PRAGMA journal_mode = DELETE" \
        "memwatch: refusing the sql statement: PRAGMA journal_mode = DELETE is not allowed on a trace"
    refused "CREATE TEMP TABLE x (a)" \
        "memwatch: refusing a statement that would modify the trace: 'CREATE TEMP TABLE x (a)'"
    refused "UPDATE objects SET tag = 'x'" \
        "memwatch: refusing a statement that would modify the trace: 'UPDATE objects SET tag = 'x''"
    refused "VACUUM INTO 'copy.db'" \
        "memwatch: refusing a statement that would modify the trace: 'VACUUM INTO 'copy.db''"
    [ ! -e copy.db ]
    run_memwatch -0 query -f csv --sql "PRAGMA user_version" t.db
    assert_line --index 1 "$version"
}

@test "query --sql still reads: views, PRAGMAs that tell, JSON, dates, math, windows, recursion" {
    run_memwatch -0 query -f csv --sql "SELECT count(*) FROM change_ranges" t.db
    assert_line --index 1 "5"
    run_memwatch -0 query -f csv --sql "SELECT tag, changes FROM tag_summary ORDER BY tag" t.db
    assert_line --index 1 "bias,1"
    run_memwatch -0 query -f csv --sql "SELECT name FROM pragma_table_info('objects') LIMIT 2" t.db
    assert_output $'name\nid\ntag'
    run_memwatch -0 query -f csv --sql "PRAGMA table_info(meta)" t.db
    assert_line --index 1 --partial "0,key,TEXT"
    run_memwatch -0 query -f csv --sql \
        "SELECT json_extract(argv, '\$[0]'), (SELECT count(*) FROM json_each(argv)) FROM run" t.db
    assert_line --index 1 "train.py,1"
    run_memwatch -0 query -f csv --sql \
        "SELECT date(0, 'unixepoch'), round(sqrt(16)), abs(-2), upper('x'), printf('%03d', 7)" t.db
    assert_line --index 1 "1970-01-01,4,2,X,007"
    run_memwatch -0 query -f csv --sql \
        "SELECT seq, row_number() OVER (ORDER BY seq DESC) AS r FROM changes ORDER BY seq LIMIT 1" t.db
    assert_line --index 1 "1,3"
    run_memwatch -0 query -f csv --sql \
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
         SELECT group_concat(i) FROM n" t.db
    assert_line --index 1 '"1,2,3"'
}
