#!/usr/bin/env bats
# Several traces read as one timeline (issue 16, item 3): `memwatch query`, `diff` and
# `report` given one trace per rank of a job, merged by wall clock, each row naming its
# trace; one trace as before; bad, repeated and unplaceable traces refused.
#
# The traces are real: `memwatch trace` of a small script, run once per rank with RANK set
# (as torchrun sets it), both ranks at the same time. The expected order is computed from
# the traces themselves (run.start_unix_ns + changes.time_ns), never written down.
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup_file() {
    cd "$BATS_FILE_TMPDIR"
    cat > job.py <<'PY'
import os, time, memwatch
rank = int(os.environ.get("RANK", "0"))
buf = bytearray(16)
other = bytearray(8)
memwatch.watch(buf, "buf")
memwatch.watch(other, "other")
time.sleep(0.05 * rank)
for i in range(4):
    buf[i] = 10 * rank + i + 1
    time.sleep(0.1)
other[0] = 100 + rank
PY
    RANK=0 "$MEMWATCH" trace -q -o t.rank0.db job.py &
    RANK=1 "$MEMWATCH" trace -q -o t.rank1.db job.py
    wait $!
    # No rank in the environment: the trace is named by its file name, or by nothing.
    "$MEMWATCH" trace -q -o x.rank7.db job.py
    "$MEMWATCH" trace -q -o plain.db job.py
}

setup() {
    load common
    common_setup
    cd "$BATS_FILE_TMPDIR"
}

# expected_order TRACE...: "index seq" of every changed range of the traces, by wall clock
# (start + time), ties to the trace given first, then each trace's own order.
expected_order() {
    /usr/bin/python3 - "$@" <<'PY'
import sqlite3, sys
rows = []
for i, path in enumerate(sys.argv[1:]):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (start,) = db.execute("SELECT start_unix_ns FROM run").fetchone()
    for seq, t, nr in db.execute("SELECT seq, time_ns, coalesce(nranges, 1) FROM changes ORDER BY seq"):
        for k in range(nr):
            rows.append((start + t, i, seq, k))
rows.sort()
for _, i, seq, _ in rows:
    print(i, seq)
PY
}

# merged_order FORMAT-OUTPUT TRACE...: the same, read from query's JSON (trace file names
# mapped to their index).
merged_order() {
    local json=$1
    shift
    /usr/bin/python3 - "$json" "$@" <<'PY'
import json, sys
rows = json.loads(sys.argv[1])
index = {p: i for i, p in enumerate(sys.argv[2:])}
for r in rows:
    print(index[r["trace_file"]], r["seq"])
PY
}

@test "query TRACE...: every range of every trace, once, in wall-clock order" {
    run_memwatch -0 --separate-stderr query -f json t.rank0.db t.rank1.db
    assert_equal "$stderr" ""
    json=$output
    run -0 merged_order "$json" t.rank0.db t.rank1.db
    got=$output
    run -0 expected_order t.rank0.db t.rank1.db
    assert_equal "$got" "$output"
    # Both ranks are there, each with all of its changes.
    assert_equal "$(grep -c '^0 ' <<<"$got")" "$(sqlite3 t.rank0.db 'SELECT count(*) FROM changes')"
    assert_equal "$(grep -c '^1 ' <<<"$got")" "$(sqlite3 t.rank1.db 'SELECT count(*) FROM changes')"
}

@test "query, diff, report TRACE...: a version 2 trace beside a version 3 one reads the same" {
    load trace_fixtures
    trace_as_v2 t.rank1.db v2.rank1.db
    [ "$(sqlite3 v2.rank1.db 'PRAGMA user_version')" = 2 ] || fail "not a version 2 trace"
    run_memwatch -0 query -f json t.rank0.db t.rank1.db
    local want=${output//t.rank1.db/v2.rank1.db}
    run_memwatch -0 query -f json t.rank0.db v2.rank1.db
    assert_equal "$output" "$want"
    run_memwatch -0 diff -t t.rank0.db -t t.rank1.db buf
    want=${output//t.rank1.db/v2.rank1.db}
    run_memwatch -0 diff -t t.rank0.db -t v2.rank1.db buf
    assert_equal "$output" "$want"
    run_memwatch -0 report -o mixed.html t.rank0.db v2.rank1.db
}

@test "query TRACE...: the trace column names the rank; times count from the earliest start" {
    run_memwatch -0 query -f jsonl t.rank1.db t.rank0.db
    /usr/bin/python3 - "$output" t.rank0.db t.rank1.db <<'PY'
import json, sqlite3, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
starts = {p: sqlite3.connect(p).execute("SELECT start_unix_ns FROM run").fetchone()[0]
          for p in sys.argv[2:]}
origin = min(starts.values())
for r in rows:
    assert r["trace"] == f"rank {r['rank']}", r
    assert r["trace_file"] == f"t.rank{r['rank']}.db", r
    own = sqlite3.connect(r["trace_file"]).execute(
        "SELECT time_ns FROM changes WHERE seq = ?", (r["seq"],)).fetchone()[0]
    assert r["time_ns"] == starts[r["trace_file"]] - origin + own, r
    assert r["unix_ns"] == starts[r["trace_file"]] + own, r
times = [r["unix_ns"] for r in rows]
assert times == sorted(times), times
PY
}

@test "query TRACE... as a table: a trace column and a line per trace above it" {
    run_memwatch -0 --separate-stderr query t.rank0.db t.rank1.db
    assert_line --index 0 --partial "trace rank 0: t.rank0.db, started "
    assert_line --index 1 --partial "trace rank 1: t.rank1.db, started "
    assert_line --index 2 --regexp '^trace +seq +time +tag +offset'
    rows=$(sed -n '4,$p' <<<"$output")
    assert_equal "$(grep -c '^rank 0 ' <<<"$rows")" "$(sqlite3 t.rank0.db 'SELECT count(*) FROM changes')"
    assert_equal "$(grep -c '^rank 1 ' <<<"$rows")" "$(sqlite3 t.rank1.db 'SELECT count(*) FROM changes')"
    # The same order as the machine formats.
    run_memwatch -0 query -f csv t.rank0.db t.rank1.db
    assert_line --index 0 'trace,rank,trace_file,unix_ns,seq,time_ns,tag,object_id,offset,length,old_hex,new_hex,complete,file,line,function,thread,thread_id,kept,pid'
    assert_equal "$(sed 1d <<<"$output" | cut -d, -f1,5)" \
                 "$(awk '{print $1 " " $2 "," $3}' <<<"$rows")"
}

@test "query TRACE... filters: --tag, --since, --until and --limit across the timeline" {
    run_memwatch -0 query -f json t.rank0.db t.rank1.db
    all=$output
    run_memwatch -0 query -f jsonl --tag other t.rank0.db t.rank1.db
    assert_equal "${#lines[@]}" 2
    refute_output --partial '"tag": "buf"'
    run_memwatch -0 query -f jsonl -n 3 t.rank0.db t.rank1.db
    assert_equal "${#lines[@]}" 3
    /usr/bin/python3 - "$all" "$output" <<'PY'
import json, sys
first3 = [json.loads(l) for l in sys.argv[2].splitlines()]
assert first3 == json.loads(sys.argv[1])[:3], (first3, sys.argv[1])
PY
    # seq bounds are each trace's own numbers.
    run_memwatch -0 query -f jsonl --since 2 --until 3 t.rank0.db t.rank1.db
    assert_equal "${#lines[@]}" 4
    refute_output --partial '"seq": 1,'
    refute_output --partial '"seq": 4,'
    run_memwatch -2 --separate-stderr query --tag nope t.rank0.db t.rank1.db
    assert_equal "$stderr" "memwatch: unknown tag 'nope': none of the 2 traces watched an object under it"
}

@test "query --summary TRACE...: each trace's tags, its totals, and the whole" {
    run_memwatch -0 query -s -f json t.rank0.db t.rank1.db
    /usr/bin/python3 - "$output" <<'PY'
import json, sys
rows = json.loads(sys.argv[1])
per = [r for r in rows if r["trace"] and r["tag"]]
assert sorted((r["trace"], r["tag"]) for r in per) == [
    ("rank 0", "buf"), ("rank 0", "other"), ("rank 1", "buf"), ("rank 1", "other")], per
totals = {r["trace"]: r for r in rows if r["trace"] and r["tag"] is None}
for trace, t in totals.items():
    assert t["changes"] == sum(r["changes"] for r in per if r["trace"] == trace), t
whole = [r for r in rows if r["trace"] is None]
assert len(whole) == 1 and whole[0]["changes"] == sum(r["changes"] for r in per), rows
PY
    run_memwatch -0 query -s t.rank0.db t.rank1.db
    assert_output --partial "(all traces)"
}

@test "a trace is named by the rank memwatch trace recorded, else by a rank in its file name" {
    RANK=3 run -0 "$MEMWATCH" trace -q -f -o named.db job.py
    assert_equal "$(sqlite3 named.db "SELECT value FROM meta WHERE key = 'rank'")" 3
    assert_equal "$(sqlite3 named.db "SELECT value FROM meta WHERE key = 'rank_from'")" RANK
    run_memwatch -0 query -f jsonl --tag other named.db x.rank7.db plain.db
    assert_line --partial '"trace": "rank 3", "rank": 3, "trace_file": "named.db"'
    assert_line --partial '"trace": "rank 7", "rank": 7, "trace_file": "x.rank7.db"'
    assert_line --partial '"trace": "plain.db", "rank": null, "trace_file": "plain.db"'
    # Two traces of rank 0 (two jobs): named by their paths instead.
    cp t.rank0.db again.rank0.db
    run_memwatch -0 query -f jsonl --tag other t.rank0.db again.rank0.db
    assert_line --partial '"trace": "t.rank0.db", "rank": 0'
    assert_line --partial '"trace": "again.rank0.db", "rank": 0'
}

@test "diff TAG TRACE...: each trace's changes of the tag by wall clock, headings naming the trace" {
    run_memwatch -0 --separate-stderr diff --color=never buf t.rank0.db t.rank1.db
    assert_equal "$stderr" ""
    headings=$(grep -E '^rank [01]  seq ' <<<"$output" | awk '{print $2, $4}')
    run -0 expected_order t.rank0.db t.rank1.db
    want=$(while read -r i seq; do
        tag=$(sqlite3 "t.rank$i.db" "SELECT o.tag FROM changes c JOIN objects o ON o.id = c.object_id WHERE seq = $seq")
        if [[ $tag == buf ]]; then echo "$i $seq"; fi
    done <<<"$output")
    assert_equal "$headings" "$want"
    # Each rank's object starts from its own bytes: rank 1's first change replaces zeros,
    # not rank 0's values.
    run_memwatch -0 diff --color=never buf t.rank0.db t.rank1.db
    first1=$(awk '/^rank 1  seq /{f=1; next} f && /^- /{print; exit}' <<<"$output")
    assert_equal "$first1" "- 00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|"
    run_memwatch -2 --separate-stderr diff --from 1 --to 2 buf t.rank0.db t.rank1.db
    assert_equal "${stderr%%$'\n'*}" "memwatch: '--from' and '--to' are seqs of one trace: give one trace"
}

@test "report TRACE... -o FILE: one page, a lane per trace, each trace's report" {
    run_memwatch -0 report -f -o lanes.html t.rank0.db t.rank1.db
    assert_output "lanes.html"
    for i in 0 1; do
        n=$(sqlite3 "t.rank$i.db" 'SELECT count(*) FROM changes')
        grep -q "<g class=\"lane\" data-trace=\"rank $i\" data-changes=\"$n\">" lanes.html
    done
    assert_equal "$(grep -c '<iframe class="trace"' lanes.html)" 2
    run_memwatch -2 --separate-stderr report t.rank0.db t.rank1.db
    assert_equal "${stderr%%$'\n'*}" "memwatch: several traces make one page: name it with -o file.html"
    run_memwatch -2 --separate-stderr report -f -o t.rank1.db t.rank0.db t.rank1.db
    assert_equal "$stderr" "memwatch: refusing to overwrite the trace 't.rank1.db' with the report"
}

@test "one trace reads as before: no trace column, no trace names in headings" {
    run_memwatch -0 query t.rank0.db
    assert_line --index 0 --regexp '^seq +time +tag +offset'
    refute_output --partial "rank 0"
    run_memwatch -0 query -f jsonl -n 1 t.rank0.db
    assert_output --regexp '^\{"seq": 1, "time_ns": '
    run_memwatch -0 diff --color=never buf t.rank0.db
    assert_line --index 0 --regexp '^seq 1  '
    run_memwatch -0 diff --color=never -t t.rank0.db buf
    assert_line --index 0 --regexp '^seq 1  '
}

@test "refused with one line naming the trace: the same file twice, a bad trace, no start time" {
    run_memwatch -2 --separate-stderr query t.rank0.db ./t.rank0.db
    assert_equal "$stderr" "memwatch: './t.rank0.db' is the same file as 't.rank0.db': give each trace once"
    assert_output ""
    echo "not a trace" > notes.db
    run_memwatch -2 --separate-stderr query t.rank0.db notes.db
    assert_equal "$(wc -l <<<"$stderr")" 1
    [[ $stderr == memwatch:*notes.db* ]]
    cp t.rank1.db nostart.db
    sqlite3 nostart.db "UPDATE run SET start_unix_ns = NULL"
    run_memwatch -2 --separate-stderr diff buf t.rank0.db nostart.db
    assert_equal "$stderr" "memwatch: 'nostart.db' has no start time in its run table: it cannot be placed on a timeline"
    run_memwatch -2 --separate-stderr report -f -o r.html t.rank0.db missing.db
    [[ $stderr == memwatch:*missing.db* ]]
    assert_equal "$(wc -l <<<"$stderr")" 1
}

@test "--sql and --elements read one trace at a time: refused with several" {
    run_memwatch -2 --separate-stderr query --sql 'SELECT 1' t.rank0.db t.rank1.db
    assert_equal "$stderr" "memwatch: '--sql' reads one trace at a time: give it one trace"
    run_memwatch -2 --separate-stderr query -e t.rank0.db t.rank1.db
    assert_equal "$stderr" "memwatch: '--elements' reads one trace at a time: give it one trace"
}
