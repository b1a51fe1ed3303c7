#!/bin/sh
# Regenerates tests/fuzz/corpus/: small valid traces made with sqlite3 from
# schemas/trace.sql, truncated and corrupted copies of them, and "SQL\n" inputs (see
# fuzz_trace_readers.c) that hold hostile values in well-formed traces. Deterministic:
# running it again gives the same files. Usage: sh tests/fuzz/make_corpus.sh
set -eu
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The content every valid seed shares: a bytes object, a float32 array, a structure,
# several changes, one with its old bytes unavailable, numeric stats, a finished run.
content="
UPDATE run SET mode = 'script', target = 'seed.py', argv = '[\"seed.py\"]', cwd = '/tmp',
  python_version = '3.11.2', pid = 42, start_unix_ns = 1, end_unix_ns = 2000, duration_ns = 1999,
  exit_status = 0, ended_by = 'exit', faults = 3, checks = 4, changes = 5;
INSERT INTO meta VALUES ('memwatch_version', '0.1.0'), ('page_size', '4096'), ('backend', 'mprotect');
INSERT INTO objects (id, tag, type_name, address, size, format, itemsize, ndim, shape, strides, watched_ns)
  VALUES (1, 'data', 'bytearray', 4096, 16, 'B', 1, 1, '[16]', '[1]', 10),
         (2, 'weights', 'numpy.ndarray', 8192, 16, '<f', 4, 2, '[2, 2]', '[8, 4]', 11),
         (3, 'points', 'numpy.ndarray', 12288, 24, 'T{<i:x:<d:y:}', 12, 1, '[2]', '[12]', 12);
INSERT INTO objects (id, tag, type_name, address, size, watched_ns, unwatched_ns)
  VALUES (4, 'data', 'bytes', 16384, 8, 13, 900);
INSERT INTO sites (id, thread_id, thread_name, file, line, function, native_symbol,
                   native_library)
  VALUES (1, 7, 'MainThread', 'seed.py', 3, '<module>', NULL, NULL),
         (2, 7, 'MainThread', 'seed.py', 4, 'step', NULL, NULL),
         (3, 8, 'worker', NULL, NULL, NULL, 'memcpy+0x10', 'libc.so.6'),
         (4, 7, 'MainThread', 'seed.py', 6, 'move', NULL, NULL),
         (5, 7, 'MainThread', 'seed.py', 7, 'step', NULL, NULL);
INSERT INTO change_rows (seq, time_ns, object_id, site_id)
  VALUES (1, 100, 1, 1), (2, 200, 2, 2), (3, 300, 1, 3), (4, 400, 3, 4), (5, 500, 2, 5);
INSERT INTO ranges (seq, offset, length, old, new, complete)
  VALUES (1, 0, 2, x'0000', x'0102', 1),
         (1, 8, 1, x'00', x'ff', 1),
         (2, 0, 8, x'000000000000803f', x'0000803f0000c07f', 1),
         (3, 4, 4, NULL, x'deadbeef', 0),
         (4, 0, 12, x'010000000000000000000000', x'020000000000000000000040', 1),
         (5, 12, 4, x'00000000', x'0000807f', 1);
INSERT INTO change_stats (seq, elements, unknown, deltas, delta_min, delta_max, delta_mean,
                          nan_appeared, inf_appeared)
  VALUES (2, 2, 0, 1, 1.0, 1.0, 1.0, 1, 0), (5, 1, 0, 0, NULL, NULL, NULL, 0, 1);
"

make_db() {   # make_db FILE EXTRA_SQL
    { echo "PRAGMA page_size = 512;"; cat schemas/trace.sql; echo "$content"; echo "$2"; } |
        sqlite3 "$1"
}

# The same content as version 2 wrote it (schemas/trace-v2.sql: changes a table).
content_v2=$(printf '%s\n' "$content" | sed '/^INSERT INTO sites/,/(5, 500, 2, 5);$/d')"
INSERT INTO changes (seq, time_ns, object_id, thread_id, thread_name, file, line, function,
                     native_symbol, native_library)
  SELECT c.seq, c.time_ns, c.object_id, s.thread_id, s.thread_name, s.file, s.line,
         s.function, s.native_symbol, s.native_library
    FROM (SELECT 1 AS seq, 100 AS time_ns, 1 AS object_id, 1 AS site UNION ALL
          SELECT 2, 200, 2, 2 UNION ALL SELECT 3, 300, 1, 3 UNION ALL
          SELECT 4, 400, 3, 4 UNION ALL SELECT 5, 500, 2, 5) AS c
    JOIN (SELECT 1 AS id, 7 AS thread_id, 'MainThread' AS thread_name, 'seed.py' AS file,
                 3 AS line, '<module>' AS function, NULL AS native_symbol,
                 NULL AS native_library UNION ALL
          SELECT 2, 7, 'MainThread', 'seed.py', 4, 'step', NULL, NULL UNION ALL
          SELECT 3, 8, 'worker', NULL, NULL, NULL, 'memcpy+0x10', 'libc.so.6' UNION ALL
          SELECT 4, 7, 'MainThread', 'seed.py', 6, 'move', NULL, NULL UNION ALL
          SELECT 5, 7, 'MainThread', 'seed.py', 7, 'step', NULL, NULL) AS s ON s.id = c.site;
"

make_db "$tmp/valid.db" ""
cp "$tmp/valid.db" "$out/valid"
{ echo "PRAGMA page_size = 512;"; cat schemas/trace-v2.sql; echo "$content_v2"; } |
    sqlite3 "$out/valid-v2"
make_db "$out/empty-run" "DELETE FROM ranges; DELETE FROM change_stats; DELETE FROM change_rows; DELETE FROM sites; DELETE FROM objects;"
{ echo "PRAGMA page_size = 512;"; cat schemas/trace.sql; } | sqlite3 "$out/schema-only"
make_db "$out/newer-schema" "PRAGMA user_version = 99; UPDATE meta SET value = '99' WHERE key IN ('schema_version', 'read_compat');"
make_db "$out/killed-run" "UPDATE run SET ended_by = NULL, exit_status = NULL, faults = NULL, checks = NULL, changes = NULL;"
printf 'SQLite format 3\000' > "$out/header-only"
printf 'not a trace at all\n' > "$out/text"
echo "CREATE TABLE t (x); INSERT INTO t VALUES (1);" | sqlite3 "$out/other-sqlite"

# Truncated and corrupted copies of the valid trace.
python3 - "$tmp/valid.db" "$out" <<'PY'
import random, sys
data = open(sys.argv[1], "rb").read()
out = sys.argv[2]
for n in (0, 1, 99, 100, 512, 1024, len(data) // 2, len(data) - 1):
    open(f"{out}/truncated-{n}", "wb").write(data[:n])
rng = random.Random(9)
for k in range(8):
    b = bytearray(data)
    for _ in range(1 + k):
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256)
    open(f"{out}/flipped-{k}", "wb").write(bytes(b))
# a page of zeros in the middle; the header's page count larger than the file
b = bytearray(data); b[1024:1536] = bytes(512)
open(f"{out}/zeroed-page", "wb").write(bytes(b))
b = bytearray(data); b[28:32] = (100000).to_bytes(4, "big")
open(f"{out}/page-count-lies", "wb").write(bytes(b))
PY

# Well-formed SQLite, hostile values: applied to the valid content by the harness.
sql() {   # sql NAME STATEMENTS
    { printf 'SQL\n'; echo "$content"; echo "$2"; } > "$out/sql-$1"
}
sql valid ""
sql length-longer-than-blob "UPDATE ranges SET length = 100 WHERE seq = 1 AND offset = 0;"
sql length-shorter-than-blob "UPDATE ranges SET length = 1 WHERE seq = 2;"
sql old-new-lengths-differ "UPDATE ranges SET old = x'00' WHERE seq = 4;"
sql offset-past-end "UPDATE ranges SET offset = 1000 WHERE seq = 3;"
sql offset-negative "UPDATE ranges SET offset = -5 WHERE seq = 1 AND offset = 8;"
sql offset-huge "UPDATE ranges SET offset = 9223372036854775800 WHERE seq = 5;"
sql length-negative "UPDATE ranges SET length = -1 WHERE seq = 3;"
sql length-zero "UPDATE ranges SET length = 0, new = x'' WHERE seq = 2;"
sql size-zero "UPDATE objects SET size = 0;"
sql size-negative "UPDATE objects SET size = -16 WHERE id = 1;"
sql size-huge "UPDATE objects SET size = 1099511627776 WHERE id = 1;"
sql size-max "UPDATE objects SET size = 9223372036854775807 WHERE id = 2;"
sql missing-object "UPDATE change_rows SET object_id = 99 WHERE seq = 3;"
sql change-without-ranges "DELETE FROM ranges WHERE seq = 2;"
sql ranges-without-change "DELETE FROM change_rows WHERE seq = 4;"
sql overlapping-ranges "INSERT INTO ranges VALUES (1, 1, 4, x'00000000', x'01020304', 1);"
sql new-null "DROP TABLE ranges; CREATE TABLE ranges (seq, offset, length, old, new, complete, PRIMARY KEY (seq, offset)); INSERT INTO ranges VALUES (1, 0, 2, NULL, NULL, NULL), (2, 0, 'x', 'text', 3.5, 1);"
sql blobs-as-text "UPDATE ranges SET new = 'abc', old = 42;"
sql itemsize-zero "UPDATE objects SET itemsize = 0;"
sql itemsize-huge "UPDATE objects SET itemsize = 4294967296 WHERE id = 2;"
sql itemsize-disagrees "UPDATE objects SET itemsize = 3 WHERE id = 2;"
sql shape-bad-json "UPDATE objects SET shape = '[2, ', strides = 'nope' WHERE id = 2;"
sql shape-negative "UPDATE objects SET shape = '[-1, 2]', strides = '[-8, 4]' WHERE id = 2;"
sql shape-huge "UPDATE objects SET shape = '[4294967296, 4294967296]', strides = '[0, 0]' WHERE id = 2;"
sql shape-ndim-64 "UPDATE objects SET ndim = 64, shape = '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,16]' WHERE id = 1;"
sql strides-gaps "UPDATE objects SET shape = '[2]', strides = '[16]', ndim = 1 WHERE id = 2;"
sql format-odd "UPDATE objects SET format = 'T{T{T{<Zd:a:}:b:}:c:}' WHERE id = 3; UPDATE objects SET format = '(2,3)<f' WHERE id = 2; UPDATE objects SET format = '%%%' WHERE id = 1;"
sql format-long "UPDATE objects SET format = '<' || replace(hex(zeroblob(3000)), '0', 'f') WHERE id = 2;"
sql tag-odd "UPDATE objects SET tag = char(0x1b) || '[31m' || char(10) || 'x\"y' || char(0xfffd) || char(9) WHERE id = 1;"
sql tag-empty "UPDATE objects SET tag = '' WHERE id = 2;"
sql many-tags "WITH RECURSIVE n(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO objects (id, tag, size, watched_ns) SELECT i, 'tag' || i, 4, i FROM n;"
sql seq-negative "UPDATE ranges SET seq = -1 WHERE seq = 1; UPDATE change_rows SET seq = -1 WHERE seq = 1;"
sql time-negative "UPDATE change_rows SET time_ns = -9223372036854775808;"
sql meta-odd "DELETE FROM meta; INSERT INTO meta VALUES ('schema_version', 'abc'), ('read_compat', NULL);"
sql meta-missing "DROP TABLE meta;"
sql run-missing "DROP TABLE run;"
sql stats-missing "DROP VIEW change_numbers; DROP VIEW tag_numbers; DROP TABLE change_stats;"
sql views-missing "DROP VIEW change_ranges; DROP VIEW tag_summary;"
sql objects-wrong-columns "DROP TABLE objects; CREATE TABLE objects (id, tag); INSERT INTO objects VALUES (1, 'data');"
sql stats-odd "UPDATE change_stats SET delta_min = 1e308 * 10, delta_max = -1e308 * 10, delta_mean = NULL, elements = -3, nan_appeared = 9223372036854775807;"
sql location-odd "UPDATE sites SET file = '', line = -7, function = char(0xd800), thread_id = -1, thread_name = NULL;"
sql line-huge "UPDATE sites SET line = 9223372036854775807;"
sql site-missing "DELETE FROM sites WHERE id = 2; UPDATE change_rows SET site_id = 77 WHERE seq = 4;"
# Hostile schemas (issue 14, item 2): what a file puts in place of memwatch's tables.
sql view-recursive "DROP VIEW change_ranges; DROP VIEW tag_summary; DROP VIEW change_numbers; DROP VIEW tag_numbers; DROP TABLE objects; CREATE VIEW objects AS WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n) SELECT id, 'x' AS tag, NULL AS type_name, 0 AS address, 8 AS size, 0 AS readonly, NULL AS format, NULL AS itemsize, NULL AS ndim, NULL AS shape, NULL AS strides, 0 AS watched_ns, NULL AS unwatched_ns FROM n;"
sql view-zeroblob "DROP TABLE objects; CREATE VIEW objects AS WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < 100) SELECT id, hex(zeroblob(50000000)) || id AS tag, NULL AS type_name, 0 AS address, 8 AS size, 0 AS readonly, NULL AS format, NULL AS itemsize, NULL AS ndim, NULL AS shape, NULL AS strides, 0 AS watched_ns, NULL AS unwatched_ns FROM n;"
sql changes-view-missing "DROP VIEW changes;"
sql changes-view-redefined "DROP VIEW changes; CREATE VIEW changes AS WITH RECURSIVE n(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM n) SELECT seq, 0 AS time_ns, 1 AS object_id FROM n;"
sql changes-a-table "DROP VIEW changes; CREATE TABLE changes AS SELECT * FROM change_rows;"
sql view-redefined "DROP VIEW change_ranges; CREATE VIEW change_ranges AS WITH RECURSIVE n(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM n) SELECT seq FROM n;"
sql trigger "CREATE TRIGGER t AFTER INSERT ON objects BEGIN DELETE FROM change_rows; END;"
sql virtual-table "DROP TABLE ranges; CREATE VIRTUAL TABLE ranges USING fts4(seq, offset, length, old, new, complete);"
sql virtual-extra "CREATE VIRTUAL TABLE notes USING fts4(text);"
sql generated-column "DROP TABLE objects; CREATE TABLE objects (id INTEGER PRIMARY KEY, tag TEXT AS (hex(zeroblob(50000000))) VIRTUAL, type_name, address, size, readonly, format, itemsize, ndim, shape, strides, watched_ns, unwatched_ns); INSERT INTO objects (id, size, watched_ns) VALUES (1, 16, 0);"
sql fts3-tokenizer-view "DROP VIEW tag_summary; CREATE VIEW tag_summary AS SELECT fts3_tokenizer('simple') AS tag;"
sql extra-columns-and-views "ALTER TABLE objects ADD COLUMN later TEXT; CREATE TABLE later_table (x); CREATE VIEW later_view AS SELECT x FROM later_table;"
# The same through the harness's "SCHEMA\n" form: each kind of replacement (0-9, see
# schema_step) for objects (0), change_rows (1), ranges (2), meta (3) and change_ranges (6).
for target in 0 1 2 3 6; do
    for kind in 0 1 2 3 4 5 6 7 8 9; do
        printf "SCHEMA\n\\$(printf '%03o' "$target")\\$(printf '%03o' "$kind")" > "$out/schema-$target-$kind"
    done
done
echo "$(ls "$out" | wc -l) files in $out"
