#!/usr/bin/env bats
# memwatch report (issue 8): where the page goes, overwriting, the choice of trace, one line
# with a documented exit status for each kind of bad input, and what the page's embedded
# data says about known traces (aggregation of large ones, NaN/Inf found from bytes).
# The page in a real browser is tests/cli/report_browser.bats.
#
# Traces are made with the sqlite3 CLI from schemas/trace.sql (trace_fixtures.bash).
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
}

# page_check PAGE PYTHON-CODE: runs the code with `data` bound to the page's embedded JSON
# and `html` to the whole page; an assertion error fails the test with its message.
page_check() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, re, sys
html = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<script id="mw-data" type="application/json">(.*?)</script>', html, re.S)
assert m, "no mw-data element in the page"
data = json.loads(m.group(1))
exec(sys.argv[2])
PY
}

@test "report -h prints the usage on stdout and exits 0; the man page's SYNOPSIS matches" {
    assert_help report
    run_memwatch -0 report -h
    assert_line --index 0 "usage: memwatch report [-fh] [-o file.html] [--marks n] [trace ...]"
}

@test "report writes the page next to the trace, with .html for .db, and prints its name" {
    run_memwatch -0 --separate-stderr report t.db
    assert_output "t.html"
    assert_equal "$stderr" ""
    [ -s t.html ]
    head -c 15 t.html | grep -q '<!DOCTYPE html>'
    mkdir sub
    cp t.db sub/run.1.db
    cp t.db sub/trace.sqlite
    run_memwatch -0 report sub/run.1.db
    assert_output "sub/run.1.html"
    run_memwatch -0 report sub/trace.sqlite
    assert_output "sub/trace.sqlite.html"
    [ -s sub/run.1.html ] && [ -s sub/trace.sqlite.html ]
    # No temporary file is left behind.
    run ls -A sub
    assert_output - <<'OUT'
run.1.db
run.1.html
trace.sqlite
trace.sqlite.html
OUT
}

@test "report -o FILE writes there; -o - writes to standard output" {
    run_memwatch -0 report -o page.html t.db
    assert_output "page.html"
    mkdir out
    run_memwatch -0 report -o out/p.html t.db
    assert_output "out/p.html"
    [ -s page.html ] && [ -s out/p.html ]
    [ ! -e t.html ]
    run_memwatch -0 --separate-stderr report --output - t.db
    assert_equal "$stderr" ""
    assert_line --index 0 '<!DOCTYPE html>'
    cmp <(printf '%s\n' "$output") page.html
}

@test "report refuses to overwrite without -f, and never overwrites the trace" {
    echo keep >t.html
    run_memwatch -2 --separate-stderr report t.db
    assert_equal "$stderr" "memwatch: 't.html' already exists (use -f to overwrite it)"
    assert_output ""
    assert_equal "$(cat t.html)" keep
    run_memwatch -0 report -f t.db
    assert_output "t.html"
    head -c 15 t.html | grep -q '<!DOCTYPE html>'
    run_memwatch -2 report -f -o t.db t.db
    assert_output "memwatch: refusing to overwrite the trace 't.db' with its report"
    ln -s t.db link.db
    run_memwatch -2 report -f -o link.db t.db
    assert_output "memwatch: refusing to overwrite the trace 't.db' with its report"
    run_memwatch -0 query -s t.db
}

@test "report: unusable input exits 2 with one line" {
    run_memwatch -2 --separate-stderr report missing.db
    assert_equal "$stderr" "memwatch: no trace file 'missing.db'"
    : >zero.db
    run_memwatch -2 report zero.db
    assert_output "memwatch: 'zero.db' is an SQLite database but not a memwatch trace"
    echo "not a database" >text.db
    run_memwatch -2 report text.db
    assert_output "memwatch: 'text.db' is not an SQLite database"
    sqlite3 other.db "CREATE TABLE x (a)"
    run_memwatch -2 report other.db
    assert_output "memwatch: 'other.db' is an SQLite database but not a memwatch trace"
    sqlite3 t.db "UPDATE meta SET value = '99' WHERE key = 'read_compat'; PRAGMA user_version = 99"
    run_memwatch -2 report t.db
    assert_output --partial "newer than this memwatch reads"
    run_memwatch -2 report -o no/such/dir/page.html zero.db
    run_memwatch -2 report -o no/such/dir/page.html other.db
    make_trace u.db
    run_memwatch -2 report -o no/such/dir/page.html u.db
    assert_output "memwatch: cannot write 'no/such/dir/page.html': No such file or directory"
    # Nothing was written for any of them.
    run ls *.html
    assert_failure
}

@test "report: usage errors exit 2 with the usage" {
    run_memwatch -2 report --bogus t.db
    assert_line --index 0 "memwatch: unknown option '--bogus'"
    assert_line --index 1 --partial "usage: memwatch report "
    run_memwatch -2 report -o
    assert_line --index 0 "memwatch: option '-o' requires a value"
    run_memwatch -2 report t.db t.db
    assert_line --index 0 "memwatch: several traces make one page: name it with -o file.html"
    run_memwatch -2 report --marks 0 t.db
    assert_line --index 0 "memwatch: '--marks' needs a positive number, not '0'"
    run_memwatch -2 report --marks 12x t.db
    assert_line --index 0 "memwatch: '--marks' needs a positive number, not '12x'"
    run_memwatch -2 report -o '' t.db
    assert_line --index 0 "memwatch: '--output' needs a file name"
}

@test "report: a failed write exits 1" {
    [ -w /dev/full ] || skip "no /dev/full"
    run bash -c '"$MEMWATCH" report -o - t.db >/dev/full'
    assert_failure 1
    assert_output "memwatch: cannot write the report: No space left on device"
}

@test "report without a trace reads the newest memwatch-*.db here" {
    mkdir empty && cd empty
    run_memwatch -2 report
    assert_output "memwatch: no trace given, and no memwatch-*.db in the current directory"
    cd ..
    mkdir pick && cd pick
    make_trace memwatch-old.1.db
    make_trace memwatch-new.2.db
    touch -d '2 hours ago' memwatch-old.1.db
    run_memwatch -0 --separate-stderr report
    assert_equal "$stderr" "memwatch: reading 'memwatch-new.2.db'"
    assert_output "memwatch-new.2.html"
    [ -s memwatch-new.2.html ] && [ ! -e memwatch-old.1.html ]
}

@test "report of an empty trace is written, and says so on stderr" {
    make_empty_trace e.db
    run_memwatch -0 --separate-stderr report e.db
    assert_output "e.html"
    assert_equal "$stderr" "memwatch: 'e.db' is an empty trace: no changes were recorded (1 object watched)"
    page_check e.html '
assert data["totals"]["changes"] == 0 and data["totals"]["marks"] == 0
assert [t["name"] for t in data["tags"]] == ["idle"]
assert data["writers"] == []'
}

@test "the page is self-contained and its data describes the trace" {
    run_memwatch -0 report t.db
    # Nothing from the network: no URL at all, and a policy that forbids loading anything.
    run grep -Eio '(https?:)?//[a-z0-9.-]+\.[a-z]{2,}' t.html
    assert_failure
    grep -q "content=\"default-src 'none';" t.html
    page_check t.html '
assert data["report"]["trace"] == "t.db"
assert data["run"]["target"] == "train.py" and data["run"]["exit_status"] == 0
assert data["meta"]["backend"] == "test"
tags = {t["name"]: t for t in data["tags"]}
assert list(tags) == ["weights", "bias"], list(tags)
w, b = tags["weights"], tags["bias"]
assert (w["changes"], w["ranges"], w["bytes"], w["marks"]) == (2, 4, 31, 2), w
assert (b["changes"], b["ranges"], b["bytes"], b["marks"]) == (1, 1, 4, 1), b
assert (w["first_seq"], w["last_seq"]) == (1, 3)
# every change is a mark: seq order, with its location and first range
m = data["marks"]
assert m["seq"] == [1, 2, 3] and m["t"] == [1500000, 2500000, 3500000], m
assert m["ranges"] == [2, 1, 2] and m["bytes"] == [5, 4, 26] and m["off"] == [0, 4, 2]
assert m["new"] == ["01020304", "00000040", "ffff"] and m["old"] == ["00000000", "0000803f", "0304"]
locs = [data["locations"][i] for i in m["loc"]]
assert locs == [["train.py", 10, "step", None], ["train.py", 11, "step", None], ["train.py", 20, "update", None]], locs
# writers by changes
ws = [(data["locations"][x["loc"]][1], x["changes"], x["bytes"]) for x in data["writers"]]
assert sorted(ws) == [(10, 1, 5), (11, 1, 4), (20, 1, 26)], ws
# lanes: one per tag, and the density counts every change
assert [l["tag"] for l in data["lanes"]] == [0, 1]
assert [sum(l["density"]) for l in data["lanes"]] == [2, 1]
# heatmaps: bytes of the bytearray (one cell per byte), elements of the float array
h = {data["tags"][x["tag"]]["name"]: x for x in data["heat"]}
assert h["weights"]["kind"] == "elements" and h["weights"]["units"] == 64
cells = h["weights"]["cells"]
assert cells[0:4] == [1, 1, 2, 2] and cells[20] == 1 and cells[40:64] == [1] * 24 and sum(cells) == 1+1+2+2+1+24, cells
assert h["bias"]["cells"] == [0, 1, 0, 0], h["bias"]
assert data["nonfinite"]["total"] == 0 and data["nonfinite"]["events"] == []
assert data["totals"] == {"objects": 2, "tags": 2, "changes": 3, "marks": 3, "nonfinite_marks": 0, "changes_without_ranges": 0}, data["totals"]'
}

@test "report: a 2-D array heatmap is by element row and column: C, Fortran, a view with gaps" {
    sqlite3 t.db <<'SQL'
INSERT INTO objects (id, tag, type_name, size, format, itemsize, ndim, shape, strides, watched_ns)
VALUES (3, 'c2d', 'numpy.ndarray', 48, '<f', 4, 2, '[3, 4]', '[16, 4]', 0),
       (4, 'f2d', 'numpy.ndarray', 48, '<f', 4, 2, '[3, 4]', '[4, 12]', 0),
       (5, 'gaps', 'numpy.ndarray', 44, '<f', 4, 2, '[2, 3]', '[24, 8]', 0);
INSERT INTO sites (id, file, line, function) VALUES
  (4, 'm.py', 1, 'f'), (5, 'm.py', 2, 'f'), (6, 'm.py', 3, 'f');
INSERT INTO change_rows (seq, time_ns, object_id, site_id) VALUES
  (4, 4000000, 3, 4), (5, 4100000, 4, 5), (6, 4200000, 5, 6);
-- element 6 in C order is [1, 2]; in Fortran order element 6 is [0, 2]; the view's
-- offsets count bytes of its value in C order: item 4 is [1, 1].
INSERT INTO ranges (seq, offset, length, old, new) VALUES
  (4, 24, 4, x'00000000', x'0000803f'), (5, 24, 4, x'00000000', x'0000803f'),
  (6, 16, 4, x'00000000', x'0000c07f');
SQL
    run_memwatch -0 report t.db
    page_check t.html '
h = {data["tags"][x["tag"]]["name"]: x for x in data["heat"]}
c, f = h["c2d"], h["f2d"]
assert (c["dims"], c["transpose"], c["major_n"], c["minor_n"]) == (2, False, 3, 4), c
# C: rows are major: row 1, column 2
assert c["cells"] == [0,0,0,0, 0,0,1,0, 0,0,0,0], c["cells"]
# Fortran: columns are major (4 of 3 rows each); cell [major=2][minor=0] = row 0, column 2
assert (f["dims"], f["transpose"], f["major_n"], f["minor_n"]) == (2, True, 4, 3), f
assert f["cells"] == [0,0,0, 0,0,0, 1,0,0, 0,0,0], f["cells"]
g = h["gaps"]
assert (g["dims"], g["units"], g["cells"]) == (2, 6, [0,0,0, 0,1,0]), g
assert data["tags"][g["tag"]]["order"] == "V"
assert [(e["seq"], e["element"], e["kind"]) for e in data["nonfinite"]["events"]] == [(6, 4, "NaN")]'
}

@test "report finds NaN and Inf from the changed bytes of float arrays" {
    sqlite3 t.db <<'SQL'
INSERT INTO objects (id, tag, type_name, size, format, itemsize, ndim, shape, strides, watched_ns)
VALUES (3, 'f32', 'numpy.ndarray', 16, '<f', 4, 1, '[4]', '[4]', 0),
       (4, 'f64be', 'numpy.ndarray', 16, '>d', 8, 1, '[2]', '[8]', 0);
INSERT INTO sites (id, file, line, function) VALUES
  (4, 'nan.py', 1, 'f'),
  (5, 'nan.py', 2, 'f'),
  (6, 'nan.py', 3, 'f'),
  (7, 'nan.py', 4, 'f'),
  (8, 'nan.py', 5, 'f'),
  (9, 'nan.py', 6, 'f');
INSERT INTO change_rows (seq, time_ns, object_id, site_id) VALUES
  (4, 4000000, 3, 4),   -- element 1: 1.0 -> NaN, only its top two bytes changed
  (5, 4100000, 3, 5),   -- element 2: 0 -> +Inf, all four bytes known
  (6, 4200000, 3, 6),   -- element 3: only the top byte changed, 0x3f -> 0x7f
  (7, 4300000, 3, 7),   -- element 1: NaN -> 1.0: one disappeared
  (8, 4400000, 4, 8),   -- big-endian double element 1: 0 -> NaN
  (9, 4500000, 3, 9);   -- element 0: 1.0 -> 2.0: nothing
INSERT INTO ranges (seq, offset, length, old, new) VALUES
  (4, 6, 2, x'803f', x'c07f'),
  (5, 8, 4, x'00000000', x'0000807f'),
  (6, 15, 1, x'3f', x'7f'),
  (7, 6, 2, x'c07f', x'803f'),
  (8, 8, 2, x'0000', x'7ff8'),
  (9, 0, 4, x'0000803f', x'00000040');
SQL
    run_memwatch -0 report t.db
    page_check t.html '
nf = data["nonfinite"]
ev = [(e["seq"], data["tags"][e["tag"]]["name"], e["element"], e["kind"]) for e in nf["events"]]
assert ev == [(4, "f32", 1, "NaN"), (5, "f32", 2, "Inf"), (6, "f32", 3, "possibly NaN or Inf"),
              (8, "f64be", 1, "NaN")], ev
assert (nf["total"], nf["possible"], nf["gone"]) == (3, 1, 1), nf
tags = {t["name"]: t for t in data["tags"]}
assert tags["f32"]["float_checked"] and not tags["weights"]["float_checked"]
assert (tags["f32"]["nonfinite"], tags["f32"]["nonfinite_possible"], tags["f32"]["nonfinite_gone"]) == (2, 1, 1)
m = data["marks"]
assert [m["nf"][m["seq"].index(s)] for s in (4, 5, 6, 7, 8, 9)] == [1, 2, 4, 0, 1, 0], m["nf"]'
}

# big_trace FILE N: a trace of N changes over three tags (half, a third, the rest).
big_trace() {
    make_empty_trace "$1"
    sqlite3 "$1" <<SQL
INSERT INTO objects (id, tag, size, format, itemsize, ndim, shape, strides, watched_ns) VALUES
  (2, 'busy', 4096, 'B', 1, 1, '[4096]', '[1]', 0), (3, 'some', 4096, 'B', 1, 1, '[4096]', '[1]', 0),
  (4, 'rare', 64, 'B', 1, 1, '[64]', '[1]', 0);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO change_rows (seq, time_ns, object_id, site_id)
SELECT i, i * 1000, CASE WHEN i % 100 = 0 THEN 4 WHEN i % 3 = 0 THEN 3 ELSE 2 END,
       1 + i % 7 FROM n;
INSERT INTO sites (id, file, line, function)
SELECT id, 'big.py', id, 'f' FROM (SELECT DISTINCT site_id AS id FROM change_rows);
INSERT INTO ranges (seq, offset, length, old, new)
SELECT seq, seq % 60, 2, x'0000', x'0101' FROM changes;
SQL
}

@test "report of a large trace draws at most --marks marks, evenly shared, and counts all" {
    big_trace big.db 30000
    run_memwatch -0 report big.db
    page_check big.html '
t = data["totals"]
assert t["changes"] == 30000 and t["marks"] == 20000, t
tags = {x["name"]: x for x in data["tags"]}
assert tags["rare"]["changes"] == 300 and tags["rare"]["marks"] == 300
assert sum(x["marks"] for x in data["tags"]) == 20000
assert sum(x["changes"] for x in data["tags"]) == 30000
assert sum(sum(l["density"]) for l in data["lanes"]) == 30000
assert len(data["marks"]["seq"]) == 20000'
    run_memwatch -0 report -f --marks 1000 big.db
    page_check big.html '
tags = {x["name"]: x for x in data["tags"]}
assert [tags[n]["marks"] for n in ("idle", "busy", "some", "rare")] == [0, 350, 350, 300], tags
seqs = [s for s, g in zip(data["marks"]["seq"], data["marks"]["tag"]) if data["tags"][g]["name"] == "busy"]
gaps = [b - a for a, b in zip(seqs, seqs[1:])]
# 350 of 19,800 changes, which are two thirds of all: one every ~86 seqs
assert min(gaps) >= 60 and max(gaps) <= 110, (min(gaps), max(gaps))'
}

@test "report takes NaN/Inf counts from change_stats when the writer decoded every element" {
    sqlite3 t.db <<'SQL'
INSERT INTO objects (id, tag, type_name, size, format, itemsize, ndim, shape, strides, watched_ns)
VALUES (3, 'f32', 'numpy.ndarray', 16, '<f', 4, 1, '[4]', '[4]', 0);
INSERT INTO sites (id, file, line, function) VALUES
  (4, 's.py', 1, 'f'),
  (5, 's.py', 2, 'f'),
  (6, 's.py', 3, 'f'),
  (7, 's.py', 4, 'f');
INSERT INTO change_rows (seq, time_ns, object_id, site_id) VALUES
  (4, 4000000, 3, 4),   -- bytes: NaN; writer (all known): none -> none
  (5, 4100000, 3, 5),   -- bytes: nothing; writer: one Inf -> Inf, element unknown
  (6, 4200000, 3, 6),   -- bytes: NaN; writer could not decode -> the bytes' NaN
  (7, 4300000, 3, 7);   -- no change_stats row -> the bytes' NaN
INSERT INTO ranges (seq, offset, length, old, new) VALUES
  (4, 4, 4, x'0000803f', x'0000c07f'), (5, 8, 4, x'00000000', x'0000803f'),
  (6, 6, 2, x'803f', x'c07f'), (7, 12, 4, x'00000000', x'0000c07f');
INSERT INTO change_stats (seq, elements, unknown, nan_appeared, inf_appeared) VALUES
  (4, 1, 0, 0, 0), (5, 1, 0, 0, 1), (6, 1, 1, 0, 0);
SQL
    run_memwatch -0 report t.db
    page_check t.html '
nf = data["nonfinite"]
ev = [(e["seq"], e["element"], e["kind"]) for e in nf["events"]]
assert ev == [(5, -1, "Inf"), (6, 1, "NaN"), (7, 3, "NaN")], ev
assert (nf["total"], nf["source"]) == (3, "change_stats"), nf
m = data["marks"]
assert [m["nf"][m["seq"].index(s)] for s in (4, 5, 6, 7)] == [0, 2, 1, 1], m["nf"]
assert [m["elements"][m["seq"].index(s)] for s in (3, 4, 5, 7)] == [-1, 1, 1, -1]'
}
