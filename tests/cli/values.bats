#!/usr/bin/env bats
# Large objects and long runs (issue 15): what each --values policy keeps, read back
# through memwatch query --sql (mw_old, mw_new, mw_value) and compared with the values the
# traced script itself saved; --max-trace-size held on a long run; a torch model's
# parameters through real optimizer steps; the readers working under every policy.
#
# Fixtures: tests/fixtures/values.py (objects of float, int and byte data, large and
# small), check_values.py (the comparison), long_run.py, torch_train.py, held_values.py.
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    cd "$BATS_TEST_TMPDIR"
    fixtures="$MEMWATCH_SOURCE_DIR/tests/fixtures"
}

# round_trip POLICY: trace values.py under it, then compare the trace with its values.
round_trip() {
    run -0 "$MEMWATCH" trace -q -f --check=manual --values="$1" -o t.db \
        "$fixtures/values.py" . 15
    run -0 /usr/bin/python3 "$fixtures/check_values.py" "$MEMWATCH" t.db . "$1"
    assert_output --partial "ok "
}

# readers_work: query, its elements and summary, diff of each tag and report all read the
# trace. (The whole history of f32_large is millions of element lines: its net difference
# stands for it.)
readers_work() {
    run_memwatch -0 query t.db
    run_memwatch -0 query -e -n 20000 t.db
    run_memwatch -0 query -s t.db
    for tag in f64_small i64 i8 bytes_small bytes_large; do
        run_memwatch -0 diff -t t.db "$tag"
    done
    for tag in f32_large f64_small i64 i8 bytes_small bytes_large; do
        run_memwatch -0 diff -t t.db --from 2 --to 9 "$tag"
    done
    run_memwatch -0 report -o t.html t.db
    [ -s t.html ]
}

@test "--values=full: every change's old and new bytes, and the whole value after it, are the object's" {
    round_trip full
    # Stored once: a change's bytes in its rows when small, else coded in chunks.
    run sqlite3 t.db "SELECT count(*) > 0 FROM changes WHERE kept = 1"
    assert_output "1"
    run sqlite3 t.db "SELECT count(*) > 0 FROM changes WHERE kept = 2"
    assert_output "1"
    run sqlite3 t.db "SELECT value FROM meta WHERE key = 'values'"
    assert_output "full"
    readers_work
}

@test "--values=summary: ranges and numeric summaries, no bytes, and the readers say so" {
    round_trip summary
    run sqlite3 t.db "SELECT count(*) FROM chunks; SELECT count(*) FROM changes WHERE kept <> 0"
    assert_output $'0\n0'
    readers_work
    run_memwatch -0 query -n 1 t.db
    assert_output --partial "(not kept)"
    run_memwatch -0 query -e --tag f32_large -n 1 t.db
    assert_output --partial "values not kept, delta"
    run_memwatch -0 diff -t t.db bytes_small
    assert_output --partial "values not kept"
}

@test "--values=last:N: the newest N changes of each object keep their bytes, older ones are dropped and said to be" {
    round_trip last:4
    run sqlite3 t.db "SELECT value FROM meta WHERE key = 'values_dropped_changes'"
    [ "$output" -gt 0 ]
    readers_work
    run_memwatch -0 diff -t t.db f64_small
    assert_output --partial "values dropped"
    assert_output --partial "f64_small["
}

@test "--max-trace-size: the file stays under the limit on a long run, no change row goes, the newest values stay" {
    limit=$((4 * 1024 * 1024))
    run -0 "$MEMWATCH" trace -f --check=manual --max-trace-size 4M -o t.db \
        "$fixtures/long_run.py" t.db "$limit" 300 final.bin
    # 300 changes of 256 KiB that do not compress: 75 MiB of values for a 4 MiB file.
    assert_output --partial "memwatch: the values of "
    assert_output --partial "were dropped to keep --max-trace-size 4MiB"
    largest=$(printf '%s\n' "$output" | sed -n 's/^largest //p')
    [ "$largest" -le "$limit" ]
    # ... and its -wal file within an eighth of it while the script ran (each transaction
    # had put its pages there at once, and dropped values were overwritten through it).
    largest_wal=$(printf '%s\n' "$output" | sed -n 's/^largest_wal //p')
    [ "$largest_wal" -gt 0 ] && [ "$largest_wal" -le $((limit / 8)) ]
    [ "$(stat -c %s t.db)" -le "$limit" ]
    run sqlite3 t.db "PRAGMA integrity_check"
    assert_output "ok"
    # Every change is recorded, weights's and counter's; only older values went.
    run sqlite3 t.db "SELECT count(*) FROM changes c JOIN objects o ON o.id = c.object_id
                      WHERE o.tag = 'weights'"
    assert_output "300"
    run sqlite3 t.db "SELECT count(*) > 250 FROM changes WHERE kept = 3"
    assert_output "1"
    run sqlite3 t.db "SELECT value > 0 FROM meta WHERE key = 'values_dropped_changes'"
    assert_output "1"
    # The newest change of weights still has its bytes, and they are the array's last value.
    "$MEMWATCH" query -f csv --sql "SELECT hex(mw_new(max(c.seq), 0)) FROM changes c
        JOIN objects o ON o.id = c.object_id WHERE o.tag = 'weights'" t.db | tail -1 > got.hex
    [ "$(tr -d '\n' < got.hex)" = "$(od -An -v -tx1 final.bin | tr -d ' \n' | tr a-f A-F)" ]
    run_memwatch -0 query -s t.db
    run_memwatch -0 diff -t t.db counter
    run_memwatch -0 report -o t.html t.db
}

@test "large objects whose old bytes the writer holds: every change's old and new bytes are the object's" {
    # A callback's object, one unwatched and watched again, a fork child's own object, a
    # shared block both processes write: each process's changes against its saved values.
    mkdir out
    run -0 "$MEMWATCH" trace -q -f --check=manual -o t.db "$fixtures/held_values.py" run out
    run -0 /usr/bin/python3 "$fixtures/held_values.py" check "$MEMWATCH" t.db out
    assert_output "ok 14 changes"
}

@test "a torch model's parameters through real SGD steps: attributed to the optimizer, values right" {
    if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
        skip "python3-torch cannot be imported here"
    fi
    run -0 "$MEMWATCH" trace -q -f -o t.db "$fixtures/torch_train.py" . 4
    # Each step writes each parameter once, in the optimizer's own code.
    run sqlite3 t.db "SELECT count(*), count(DISTINCT object_id) FROM changes"
    assert_output "16|4"
    run sqlite3 t.db "SELECT count(*) FROM changes WHERE file LIKE '%/torch/optim/%.py'"
    assert_output "16"
    # The values after each step are the parameters' own, element by element.
    run -0 /usr/bin/python3 - "$MEMWATCH" <<'PY'
import json, subprocess, sys
import numpy as np
memwatch = sys.argv[1]
rows = subprocess.run([memwatch, "query", "-f", "jsonl", "--sql",
                       "SELECT o.tag AS tag, hex(mw_value(c.seq)) AS value FROM changes c "
                       "JOIN objects o ON o.id = c.object_id ORDER BY c.seq", "t.db"],
                      capture_output=True, text=True, check=True).stdout.splitlines()
seen = {}
for r in map(json.loads, rows):
    seen.setdefault(r["tag"], []).append(bytes.fromhex(r["value"]))
for tag, values in seen.items():
    size = int(open(f"{tag}.size").read())
    data = open(f"{tag}.bin", "rb").read()
    snaps = [data[i:i + size] for i in range(0, len(data), size)]
    assert len(values) == len(snaps) - 1 == 4, (tag, len(values))
    for k, v in enumerate(values):
        want = np.frombuffer(snaps[k + 1], dtype=np.float32)
        got = np.frombuffer(v, dtype=np.float32)
        assert np.array_equal(got, want), (tag, k, np.abs(got - want).max())
print("ok", len(seen))
PY
    assert_output "ok 4"
    # query --elements decodes the same values.
    run_memwatch -0 query -e -f jsonl --tag 2.bias t.db
    assert_output --partial '"element": "2.bias[0]"'
}

@test "query --sql: mw_old and mw_new of every range of a long history, within the reader's bounds" {
    # 40 changes of every fifth int64, each its own range: 5,600 ranges of 8 bytes, kept in
    # chunks. Each range's bytes are asked for twice, old and new; neither may start the
    # object's history over (that made the statement's work grow with the square of the
    # changes, and the reader's bound refused a trace of 300 KiB).
    cat > steps.py <<'PY'
import numpy as np, memwatch
a = np.zeros(700, dtype=np.int64)
memwatch.watch(a, "a")
for step in range(40):
    a[::5] += 1
    memwatch.check()
PY
    run -0 "$MEMWATCH" trace -q -f --check=manual -o t.db steps.py
    run_memwatch -0 query -f csv --sql "SELECT count(*) AS ranges,
        sum(hex(mw_old(seq, offset)) = printf('%02X00000000000000', seq - 1)) AS old_right,
        sum(hex(mw_new(seq, offset)) = printf('%02X00000000000000', seq)) AS new_right
        FROM change_ranges" t.db
    assert_output $'ranges,old_right,new_right\n5600,5600,5600'
}

@test "diff --from --to where the trace did not keep values: says how many it cannot tell, never that they do not differ" {
    cat > steps.py <<'PY'
import numpy as np, memwatch
a = np.zeros(8)
memwatch.watch(a, "a")
for i in range(6):
    a[i % 3] = i + 1.0       # elements 0, 1 and 2, twice each
    memwatch.check()
PY
    run -0 "$MEMWATCH" trace -q -f --check=manual --values=summary -o s.db steps.py
    run_memwatch -0 diff -t s.db --from 0 --to 6 a
    assert_output "a  from seq 0 to seq 6  6 changes (seq 1..6), 0 elements differ, 3 more written whose values the trace did not keep"
    run_memwatch -0 diff -t s.db --bytes --from 0 --to 6 a
    assert_line --index 0 "a  from seq 0 to seq 6  6 changes (seq 1..6), 0 bytes differ, 24 written whose values the trace did not keep"
    # last:1 keeps the newest change (a[2] = 6.0), whose old bytes went with the others.
    run -0 "$MEMWATCH" trace -q -f --check=manual --values=last:1 -o l.db steps.py
    run_memwatch -0 diff -t l.db --from 0 --to 6 a
    assert_output - <<'OUT'
a  from seq 0 to seq 6  6 changes (seq 1..6), 1 element differs, 2 more written whose values the trace did not keep
  a[2]: ? -> 6.0
OUT
    # Under --values=full every value is known: nothing is left untold.
    run -0 "$MEMWATCH" trace -q -f --check=manual -o f.db steps.py
    run_memwatch -0 diff -t f.db --from 0 --to 6 a
    assert_output - <<'OUT'
a  from seq 0 to seq 6  6 changes (seq 1..6), 3 elements differ
  a[0]: 0.0 -> 4.0
  a[1]: 0.0 -> 5.0
  a[2]: 0.0 -> 6.0
OUT
}

@test "--max-trace-size reached by change rows: the end of the run, meta and query --summary say how many were not recorded" {
    cat > many.py <<'PY'
import numpy as np, memwatch
a = np.zeros(4096, dtype=np.uint8)
memwatch.watch(a, "a")
for i in range(60000):
    a[(i * 7) % 4096] += 1
    memwatch.check()
PY
    run -0 "$MEMWATCH" trace -f --check=manual --max-trace-size 1M -o t.db many.py
    lost=$(printf '%s\n' "$output" | sed -n 's/^memwatch: \([0-9]*\) changes were not recorded: the trace reached --max-trace-size 1MiB$/\1/p')
    [ -n "$lost" ] && [ "$lost" -gt 0 ]
    [ "$(stat -c %s t.db)" -le $((1024 * 1024)) ]
    run sqlite3 t.db "SELECT value FROM meta WHERE key = 'changes_not_recorded';
                      SELECT count(*) + $lost FROM changes"
    assert_output "$lost"$'\n'"60000"
    run_memwatch -0 query -s t.db
    assert_line "incomplete: $lost changes were not recorded: the trace reached --max-trace-size 1MiB"
}
