#!/usr/bin/env bats
# Where memwatch writes (issue 14, items 1 and 8): -f replaces only a regular file; a trace
# replaces only a memwatch trace (or an empty file), never the script it runs; a report
# never replaces an SQLite database; a replacement is written aside and moved into place
# when complete, so a crash leaves the old file; and a trace has one writer: a second run
# refuses it, even with -f. Every refusal is one line, exit status 2, and the script does
# not run.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    load trace_fixtures
    trace_fixture_setup
    FIXTURES="$MEMWATCH_SOURCE_DIR/tests/fixtures"
    # marker.py FILE creates FILE: whether the script ran.
    MARKER="$FIXTURES/marker.py"
}

# refused MESSAGE ARGS...: memwatch ARGS exits 2 with the one line MESSAGE on stderr and
# nothing on stdout.
refused() {
    local want=$1
    shift
    run -2 --separate-stderr timeout 60 "$MEMWATCH" "$@"
    assert_equal "$stderr" "$want"
    assert_equal "$output" ""
}

# wait_for FILE: until FILE has a line "ready" (the script's own signal, not a timing).
wait_for() {
    local i
    for i in $(seq 1 600); do
        grep -qs ready "$1" && return 0
        sleep 0.05
    done
    fail "the script never said it was ready: $(cat "$1")"
}

# start_waiting_run N TRACE-OPTIONS...: memwatch trace TRACE-OPTIONS in the background on a
# script that changes a bytearray N times, says "ready" and waits until the file go exists;
# returns once it is ready, with memwatch's pid in WAITING_PID and its output in log.
start_waiting_run() {
    local n=$1
    shift
    cat > wait.py <<'PY'
import os, sys, time, memwatch
data = bytearray(64)
memwatch.watch(data, "data")
for i in range(int(sys.argv[1])):
    data[i % 64] = (i % 255) + 1
    memwatch.check()
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
PY
    "$MEMWATCH" trace "$@" wait.py "$n" go > log 2>&1 &
    WAITING_PID=$!
    wait_for log
}

@test "trace -f and report -f refuse a device, a FIFO or a symbolic link, and leave it" {
    # A device node of the test's own (the null device's numbers), never /dev/null itself:
    # a memwatch that got this wrong would replace it. Making one needs CAP_MKNOD.
    if mknod null c 1 3 2>/dev/null; then
        refused "memwatch: 'null' is a character device: -f replaces only a regular file" \
            trace -f -o null "$MARKER" ran
        [ -c null ] && [ ! -e ran ]
        refused "memwatch: 'null' is a character device: -f replaces only a regular file" \
            report -f -o null t.db
        [ -c null ]
    else
        echo "# mknod is not permitted here: the device case is checked with a FIFO only" >&3
    fi
    mkfifo fifo
    refused "memwatch: 'fifo' is a FIFO: -f replaces only a regular file" \
        trace -f -o fifo "$MARKER" ran
    refused "memwatch: 'fifo' is a FIFO: -f replaces only a regular file" report -f -o fifo t.db
    refused "memwatch: 'fifo' already exists (use -f to overwrite it)" trace -o fifo "$MARKER" ran
    [ -p fifo ] && [ ! -e ran ]
    "$MEMWATCH" trace -q -o real.db -c pass
    ln -s real.db link.db
    refused "memwatch: 'link.db' is a symbolic link: -f replaces only a regular file" \
        trace -f -o link.db "$MARKER" ran
    [ -L link.db ] && [ ! -e ran ]
}

@test "-o naming a directory says so, with or without -f, and the script does not run" {
    mkdir dir
    refused "memwatch: cannot write trace 'dir': Is a directory" trace -o dir "$MARKER" ran
    refused "memwatch: cannot write trace 'dir': Is a directory" trace -f -o dir "$MARKER" ran
    [ ! -e ran ]
    refused "memwatch: cannot write 'dir': Is a directory" report -o dir t.db
    [ -d dir ] && [ -z "$(ls -A dir)" ]
}

@test "a trace never replaces the script it runs, by any name" {
    cp "$MARKER" s.py
    cp s.py orig.py
    refused "memwatch: refusing to write the trace over 's.py', the script it runs" \
        trace -f -o s.py s.py ran
    refused "memwatch: refusing to write the trace over 's.py', the script it runs" \
        trace -o s.py s.py ran
    ln s.py hard.py
    ln -s s.py soft.py
    refused "memwatch: refusing to write the trace over 'soft.py', the script it runs" \
        trace -f -o hard.py soft.py ran
    cmp s.py orig.py
    [ ! -e ran ]
}

@test "trace -f replaces only a memwatch trace or an empty file" {
    local end="-f replaces only a trace (remove the file first to replace it)"
    echo precious > notes.txt
    refused "memwatch: 'notes.txt' is not a memwatch trace: $end" trace -f -o notes.txt "$MARKER" ran
    assert_equal "$(cat notes.txt)" precious
    sqlite3 other.db "CREATE TABLE t (x); INSERT INTO t VALUES (42)"
    refused "memwatch: 'other.db' is not a memwatch trace: $end" trace -f -o other.db "$MARKER" ran
    assert_equal "$(sqlite3 other.db 'SELECT x FROM t')" 42
    [ ! -e ran ]
    # What may be replaced: an empty file (mktemp's), a trace; the result is a trace.
    : > empty.db
    run_memwatch -0 trace -q -f -o empty.db "$MARKER" ran1
    run_memwatch -0 trace -q -f -o t.db "$MARKER" ran2
    [ -e ran1 ] && [ -e ran2 ]
    assert_equal "$(sqlite3 t.db 'SELECT target FROM run')" "$MARKER"
    assert_equal "$(sqlite3 empty.db 'PRAGMA integrity_check')" ok
    # Removing the file first is the way to replace anything else.
    rm notes.txt
    run_memwatch -0 trace -q -o notes.txt "$MARKER" ran3
}

@test "report -f never replaces an SQLite database; it replaces an older page" {
    make_trace u.db
    cp u.db u.orig
    refused "memwatch: 'u.db' is an SQLite database: a report never replaces one (remove the file first to replace it)" \
        report -f -o u.db t.db
    cmp u.db u.orig
    echo "<p>old page</p>" > page.html
    run_memwatch -0 report -f -o page.html t.db
    assert_output page.html
    grep -q 'memwatch report' page.html
}

@test "a run killed while it replaces a trace leaves the old trace whole" {
    "$MEMWATCH" trace -q -o rp.db -c 'pass'
    cp rp.db good.db
    start_waiting_run 50 -q -f -o rp.db
    # Meanwhile the old trace is still the one at the path.
    cmp rp.db good.db
    kill -KILL "$WAITING_PID"
    wait "$WAITING_PID" || true
    cmp rp.db good.db
    assert_equal "$(sqlite3 rp.db 'PRAGMA integrity_check')" ok
    assert_equal "$(sqlite3 rp.db 'SELECT mode FROM run')" command
}

@test "a report killed while it is written leaves the old page" {
    echo "<p>old page</p>" > page.html
    # A file size limit below the page's size: SIGXFSZ ends memwatch in the middle.
    run bash -c 'ulimit -f 8; exec "$MEMWATCH" report -f -o page.html t.db'
    assert_failure
    assert_equal "$(cat page.html)" "<p>old page</p>"
}

@test "a trace has one writer: a second run refuses it, even with -f; the first run's changes stay" {
    start_waiting_run 40 -o rp.db
    refused "memwatch: 'rp.db' is being written by another memwatch trace: wait for it to end, or write elsewhere (-o)" \
        trace -f -o rp.db "$MARKER" ran
    refused "memwatch: 'rp.db' already exists (use -f to overwrite it)" trace -o rp.db "$MARKER" ran
    [ ! -e ran ]
    touch go
    wait "$WAITING_PID"
    run cat log
    assert_output --partial "memwatch: 1 object watched, 40 changes recorded in 'rp.db'"
    assert_equal "$(sqlite3 rp.db 'SELECT count(*) FROM changes')" 40
    assert_equal "$(sqlite3 rp.db 'SELECT target FROM run')" wait.py
    # Once that run has ended, -f replaces its finished trace as before.
    run_memwatch -0 trace -q -f -o rp.db "$MARKER" ran
    [ -e ran ]
    assert_equal "$(sqlite3 rp.db 'SELECT target FROM run')" "$MARKER"
}

@test "a trace replaced behind memwatch's back (rm, then a new run): the first run says its changes are lost" {
    start_waiting_run 10 -o rp.db
    rm rp.db
    run_memwatch -0 trace -q -o rp.db "$MARKER" ran
    touch go
    wait "$WAITING_PID"
    run cat log
    assert_output --partial "memwatch: trace 'rp.db' was replaced by another file while the script ran; this run's changes are lost"
    refute_output --partial "recorded in"
    assert_equal "$(sqlite3 rp.db 'SELECT target FROM run')" "$MARKER"
}
