#!/usr/bin/env bats
# Hostile traces (issue 14, item 2): a trace is a file anyone can hand to memwatch, and
# SQLite runs what a database's schema says. Every reader refuses, with one line and exit
# status 2, a file whose schema puts a query, code or computed values in place of the
# trace's tables, and anything that is not a regular file; what it runs on a trace is
# bounded in work and memory. Each reader is run under `timeout` only so that a hang fails
# the test instead of blocking the suite; no test measures time.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
}

# readers_refuse FILE MESSAGE: each reader (query, query --summary, query --elements, diff,
# report) refuses FILE with the one line MESSAGE on stderr, exit 2, and writes nothing.
readers_refuse() {
    local file=$1 want=$2 args
    for args in "query" "query --summary" "query --elements" "diff -t $file weights" \
                "report -o page.html"; do
        # shellcheck disable=SC2086
        if [[ $args == diff* ]]; then
            run -2 --separate-stderr timeout 60 "$MEMWATCH" $args
        else
            run -2 --separate-stderr timeout 60 "$MEMWATCH" $args "$file"
        fi
        assert_equal "$stderr" "$want"
        assert_equal "$output" ""
    done
    [ ! -e page.html ]
}

# The columns of memwatch's objects table, each as "<expr> AS name".
objects_columns() {
    local expr=$1
    sqlite3 t.db "SELECT group_concat(replace('$expr', 'ID', 'id') || ' AS ' || name, ', ')
                  FROM pragma_table_info('objects')"
}

@test "objects as a view over a recursive CTE: every reader refuses it at once, exit 2" {
    local cols
    cols=$(objects_columns "ID")
    sqlite3 t.db "DROP VIEW change_ranges; DROP VIEW tag_summary; DROP VIEW change_numbers;
                  DROP VIEW tag_numbers; DROP TABLE objects;
                  CREATE VIEW objects AS WITH RECURSIVE n(id) AS
                    (SELECT 1 UNION ALL SELECT id + 1 FROM n) SELECT $cols FROM n;"
    readers_refuse t.db \
        "memwatch: 't.db' is not a trace memwatch can read safely: 'objects' is a view, not a table"
}

@test "a view that builds 100 MB tags from zeroblob: refused, memory stays small" {
    sqlite3 t.db "DROP TABLE objects;
                  CREATE VIEW objects AS WITH RECURSIVE n(i) AS
                    (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
                  SELECT i AS id, hex(zeroblob(50000000)) || i AS tag, NULL AS type_name,
                         0 AS address, 8 AS size, 0 AS readonly, NULL AS format,
                         NULL AS itemsize, NULL AS ndim, NULL AS shape, NULL AS strides,
                         0 AS watched_ns, NULL AS unwatched_ns FROM n;"
    (($(stat -c %s t.db) < 100000)) || fail "the fixture should be a small file"
    # Reading that view takes gigabytes; each reader's peak resident memory (in KiB, as
    # getrusage gives it; not ulimit -v, which a sanitized build cannot run under) stays
    # far below.
    local args
    for args in "query -s t.db" "diff -t t.db 1" "report -o page.html t.db"; do
        # shellcheck disable=SC2086
        run -0 --separate-stderr /usr/bin/python3 -c '
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
sys.stderr.write(p.stderr.decode())
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$MEMWATCH" $args
        assert_equal "$stderr" \
            "memwatch: 't.db' is not a trace memwatch can read safely: 'objects' is a view, not a table"
        local rc=${output% *} kib=${output#* }
        assert_equal "$rc" 2
        ((kib < 500000)) || fail "memwatch $args took $kib KiB"
    done
}

@test "triggers, virtual tables, computed columns, a view that is not memwatch's: refused" {
    cp t.db orig.db
    sqlite3 t.db "CREATE TRIGGER t AFTER INSERT ON objects BEGIN DELETE FROM change_rows; END;"
    readers_refuse t.db "memwatch: 't.db' is not a trace memwatch can read safely: it has a trigger ('t')"
    cp orig.db t.db
    sqlite3 t.db "DROP TABLE ranges;
                  CREATE VIRTUAL TABLE ranges USING fts4(seq, offset, length, old, new, complete);"
    readers_refuse t.db "memwatch: 't.db' is not a trace memwatch can read safely: 'ranges' is a virtual table"
    cp orig.db t.db
    sqlite3 t.db "ALTER TABLE objects ADD COLUMN big TEXT AS (hex(zeroblob(50000000))) VIRTUAL;"
    readers_refuse t.db \
        "memwatch: 't.db' is not a trace memwatch can read safely: column 'big' of table 'objects' is computed, not stored"
    cp orig.db t.db
    sqlite3 t.db "DROP VIEW change_ranges;
                  CREATE VIEW change_ranges AS SELECT fts3_tokenizer('simple') AS seq;"
    readers_refuse t.db \
        "memwatch: 't.db' is not a trace memwatch can read safely: its view 'change_ranges' is not the one memwatch writes"
}

@test "changes, the view readers read, missing or not memwatch's: refused" {
    cp t.db orig.db
    sqlite3 t.db "DROP VIEW changes;"
    readers_refuse t.db "memwatch: 't.db' is not a trace memwatch can read safely: it has no view 'changes'"
    cp orig.db t.db
    sqlite3 t.db "DROP VIEW changes;
                  CREATE VIEW changes AS WITH RECURSIVE n(seq) AS
                    (SELECT 1 UNION ALL SELECT seq + 1 FROM n)
                  SELECT c.*, 0 AS pid FROM n JOIN change_rows AS c;"
    readers_refuse t.db \
        "memwatch: 't.db' is not a trace memwatch can read safely: its view 'changes' is not the one memwatch writes"
}

@test "what a later schema version may add (columns, tables, views) is still read" {
    sqlite3 t.db "ALTER TABLE objects ADD COLUMN later TEXT; CREATE TABLE later_t (x);
                  CREATE VIEW later_v AS SELECT x FROM later_t;"
    run_memwatch -0 query -f csv --tag bias t.db
    assert_line --index 1 --partial "2,2500000,bias,2,4,4,0000803f,00000040,1"
    run_memwatch -0 report -o page.html t.db
}

@test "a FIFO, a device, or a FIFO as the trace's -wal: refused without blocking, exit 2" {
    mkfifo fifo.db
    run -2 --separate-stderr timeout 60 "$MEMWATCH" query fifo.db
    assert_equal "$stderr" \
        "memwatch: 'fifo.db' is not a regular file (memwatch reads traces only from regular files)"
    run -2 --separate-stderr timeout 60 "$MEMWATCH" report -o - fifo.db
    assert_equal "$stderr" \
        "memwatch: 'fifo.db' is not a regular file (memwatch reads traces only from regular files)"
    run -2 --separate-stderr timeout 60 "$MEMWATCH" diff -t /dev/zero weights
    assert_equal "$stderr" \
        "memwatch: '/dev/zero' is not a regular file (memwatch reads traces only from regular files)"
    sqlite3 t.db "PRAGMA journal_mode = WAL" >/dev/null
    mkfifo t.db-wal
    run -2 --separate-stderr timeout 60 "$MEMWATCH" query t.db
    assert_equal "$stderr" "memwatch: 't.db-wal' next to the trace is not a regular file"
}

@test "query --sql is bounded: a statement that never ends stops with one line, exit 1" {
    run -1 --separate-stderr timeout 60 "$MEMWATCH" query --sql \
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n" t.db
    [[ $stderr == "memwatch: cannot run the sql statement: it took more than the "*" million steps memwatch allows for a trace of this size" ]] ||
        fail "got: $stderr"
    run -1 --separate-stderr timeout 60 "$MEMWATCH" query --sql \
        "SELECT length(group_concat(hex(zeroblob(1000000)))) FROM (WITH RECURSIVE n(i) AS
           (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) SELECT i FROM n)" t.db
    assert_equal "$stderr" "memwatch: cannot run the sql statement: a value is longer than the 64 MiB memwatch reads"
    # The same kind of statement within the bounds runs.
    run_memwatch -0 query -f csv --sql \
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         SELECT count(*) AS n FROM n" t.db
    assert_line --index 1 "100000"
}
