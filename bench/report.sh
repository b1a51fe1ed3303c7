#!/usr/bin/env bash
# How long `memwatch report` takes on a trace of 1,000,000 changes, and how big the page is
# (issue 8, Performance; targets: under 10 s, under 20 MB). A benchmark, not a test.
#
# usage: bench/report.sh [-r rounds] [-n changes] [-m memwatch] [-k]
#
# Builds the trace with the sqlite3 CLI from schemas/trace.sql (a recursive CTE: seconds,
# not the minutes a traced script would take): 50 % of the changes to a 1000 x 1000 float32
# array (with a NaN every 100,003 changes), 20 % to a float64 vector, 20 % to a 1 MiB
# bytearray with ranges of 1 to 16 bytes, 10 % spread over 50 small buffers; 37 writing
# lines. Then, for each round, times `memwatch report -f` and, as a baseline measured in the
# same run, one sqlite3 scan that reads every changed range's bytes (what any report must at
# least do), and prints the medians, their ratio and the page's size. When Debian's chromium
# is installed, it also loads the page once headless and prints how long the page's own
# script took to draw it (data-render-ms), the responsiveness figure.
#
# Defaults: 5 rounds, 1,000,000 changes, memwatch from ./build/memwatch (or $MEMWATCH).
# -k keeps the trace and the page in the printed directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"
src=$here/..
rounds=5
changes=1000000
keep=0

usage() {
    echo "usage: bench/report.sh [-r rounds] [-n changes] [-m memwatch] [-k]" >&2
    exit 2
}
while getopts "r:n:m:kh" opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    n) changes=$OPTARG ;;
    k) keep=1 ;;
    *) bench_option "$opt" || usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $rounds =~ ^[1-9][0-9]*$ && $changes =~ ^[1-9][0-9]*$ ]] || usage
need_memwatch
command -v sqlite3 >/dev/null || { echo "bench: sqlite3 is missing (Debian package sqlite3)" >&2; exit 2; }

if ((keep)); then scratch_dir "the trace and the page"; else scratch_dir; fi
work=$tmp
db=$work/big.db
page=$work/big.html

now() { echo "${EPOCHREALTIME/./}"; }   # microseconds

t0=$(now)
sqlite3 "$db" <"$src/schemas/trace.sql"
sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
INSERT INTO meta (key, value) VALUES ('memwatch_version', 'bench'), ('backend', 'bench');
UPDATE run SET mode = 'script', target = 'train.py', argv = '["train.py", "--epochs", "3"]',
               cwd = '/bench', python_version = '3.11.2', pid = 4242,
               start_unix_ns = 1790000000000000000, duration_ns = ${changes} * 1000 + 5000000,
               exit_status = 0, ended_by = 'exit', faults = ${changes}, checks = ${changes},
               changes = ${changes}, old_unavailable = 0, tracked_objects_peak = 53;
INSERT INTO objects (id, tag, type_name, address, size, format, itemsize, ndim, shape,
                     strides, watched_ns) VALUES
  (1, 'weights', 'numpy.ndarray', 1048576, 4000000, '<f', 4, 2, '[1000, 1000]', '[4000, 4]', 1000),
  (2, 'bias', 'numpy.ndarray', 8388608, 8000, '<d', 8, 1, '[1000]', '[8]', 1000),
  (3, 'buffer', 'bytearray', 16777216, 1048576, 'B', 1, 1, '[1048576]', '[1]', 1000);
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 49)
INSERT INTO objects (id, tag, type_name, address, size, format, itemsize, ndim, shape,
                     strides, watched_ns)
SELECT 4 + i, 'layer' || i, 'bytearray', 33554432 + i * 4096, 4096, 'B', 1, 1, '[4096]', '[1]', 1000
  FROM k;
BEGIN;
WITH RECURSIVE j(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM j WHERE i < 184)
INSERT INTO sites (id, thread_id, thread_name, file, line, function)
SELECT 1 + i, 4242, 'MainThread', 'train.py', 10 + i % 37, 'step' || (i % 5) FROM j;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${changes})
INSERT INTO change_rows (seq, time_ns, object_id, site_id)
SELECT i, 2000000 + i * 1000,
       CASE WHEN i % 10 < 5 THEN 1 WHEN i % 10 < 7 THEN 2 WHEN i % 10 < 9 THEN 3
            ELSE 4 + (i / 10) % 50 END,
       1 + i % 185
  FROM n;
INSERT INTO ranges (seq, offset, length, old, new, complete)
SELECT seq,
       CASE object_id WHEN 1 THEN ((seq * 7919) % 1000000) * 4 WHEN 2 THEN (seq % 1000) * 8
            WHEN 3 THEN (seq * 31) % 1048560 ELSE seq % 4080 END,
       CASE object_id WHEN 1 THEN 4 WHEN 2 THEN 8 WHEN 3 THEN 1 + seq % 16 ELSE 8 END,
       CASE object_id WHEN 1 THEN x'00000000' WHEN 2 THEN x'0000000000000000'
            WHEN 3 THEN zeroblob(1 + seq % 16) ELSE zeroblob(8) END,
       CASE object_id WHEN 1 THEN (CASE WHEN seq % 100003 = 0 THEN x'0000c07f' ELSE x'0000803f' END)
            WHEN 2 THEN x'000000000000f03f'
            WHEN 3 THEN randomblob(1 + seq % 16) ELSE randomblob(8) END,
       1
  FROM changes;
COMMIT;
SQL
t1=$(now)
n=$(sqlite3 "$db" "SELECT count(*) FROM changes")
printf 'trace: %s changes, %s ranges, %.1f MB, made in %.1f s\n' "$n" \
    "$(sqlite3 "$db" "SELECT count(*) FROM ranges")" \
    "$(awk -v b="$(stat -c %s "$db")" 'BEGIN { print b / 1e6 }')" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e6 }')"

report_times=()
scan_times=()
for ((r = 0; r < rounds; r++)); do
    a=$(now)
    sqlite3 "$db" "SELECT count(*), sum(length(r.new)), sum(length(r.old)), count(DISTINCT c.line)
                   FROM changes AS c JOIN ranges AS r ON r.seq = c.seq" >/dev/null
    b=$(now)
    "$memwatch" report -f -o "$page" "$db" >/dev/null
    c=$(now)
    scan_times+=($((b - a)))
    report_times+=($((c - b)))
done
report=$(printf '%s\n' "${report_times[@]}" | median)
scan=$(printf '%s\n' "${scan_times[@]}" | median)
size=$(stat -c %s "$page")
awk -v r="$report" -v s="$scan" -v z="$size" -v n="$rounds" 'BEGIN {
    printf "memwatch report: median %.2f s of %d runs (target < 10 s)\n", r / 1e6, n
    printf "baseline sqlite3 scan of every range: median %.2f s; report / scan = %.2fx\n", s / 1e6, r / s
    printf "page size: %.2f MB (target < 20 MB)\n", z / 1e6
}'

if command -v chromium >/dev/null; then
    profile=$(mktemp -d)
    dom=$(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --window-size=1400,1000 --virtual-time-budget=10000 \
        --dump-dom "file://$page" 2>/dev/null || true)
    rm -rf "$profile"
    ms=$(grep -o 'data-render-ms="[0-9]*"' <<<"$dom" | head -1 | tr -dc 0-9)
    errs=$(grep -o 'data-console-errors="[0-9]*"' <<<"$dom" | head -1 | tr -dc 0-9)
    marks=$(grep -o 'data-mark-count="[0-9]*"' <<<"$dom" | tr -dc '0-9\n' | awk '{ s += $1 } END { print s + 0 }')
    echo "chromium: page drawn by its script in ${ms:-?} ms; ${marks} marks drawn; ${errs:-?} console errors"
else
    echo "chromium: not installed, page load not measured"
fi
