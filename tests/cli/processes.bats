# The channel from every traced process to the trace, and the processes of a run: the
# script closing descriptors (issue 14 item 6), what cannot be delivered counted, the
# processes table, query --pid, --no-follow.

load common
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    db="$BATS_TEST_TMPDIR/t.db"
    script="$BATS_TEST_TMPDIR/script.py"
}

q() {
    sqlite3 "$db" "$1"
}

# The engine's own descriptor (userfaultfd) does not survive closerange yet; the channel's
# does under either backend, and mprotect needs no descriptor.
@test "os.closerange(3, 4096) in the script: later changes are still recorded, with their lines and bytes" {
    cat > "$script" <<'PY'
import os, memwatch
b = bytearray(16)
memwatch.watch(b, "b")
b[0] = 1
os.closerange(3, 4096)
b[1] = 2
f = open(os.devnull, "w")   # the freed descriptor number now names another file
b[2] = 3
print("done")
PY
    run_memwatch -0 --separate-stderr trace --backend mprotect -f -o "$db" "$script"
    assert_output "done"
    assert_equal "$(q "SELECT group_concat(line || ':' || offset || ':' || hex(old) || '>' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" \
        "4:0:00>01 6:1:00>02 8:2:00>03"
    [[ $stderr == *"1 object watched, 3 changes recorded"* ]]
    [[ $stderr != *"could not be delivered"* ]]
    assert_equal "$(q "SELECT count(*) FROM meta WHERE key = 'changes_undelivered'")" 0
    # the replay equals the final contents
    assert_equal "$(q "SELECT hex(new) FROM changes ORDER BY seq" | tr -d '\n')" "010203"
}

@test "a change that cannot be delivered (no descriptor to be had) is counted in the trace and the end-of-run line" {
    cat > "$script" <<'PY'
import os, resource, memwatch
b = bytearray(16)
memwatch.watch(b, "b")
b[0] = 1
os.closerange(3, 4096)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
b[1] = 2
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
b[2] = 3
print("done")
PY
    run_memwatch -0 --separate-stderr trace --backend mprotect -f -o "$db" "$script"
    assert_output "done"
    assert_equal "$(q "SELECT group_concat(line || ':' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" "4:01 10:03"
    assert_equal "$(q "SELECT value FROM meta WHERE key = 'changes_undelivered'")" 1
    [[ $stderr == *"2 changes recorded"* ]]
    [[ $stderr == *"memwatch: 1 change could not be delivered to the trace"* ]]
}

@test "the processes table names the script's process, its command line and how it ended" {
    cat > "$script" <<'PY'
import memwatch, sys
b = bytearray(8)
memwatch.watch(b, "b")
b[0] = 7
sys.exit(3)
PY
    run_memwatch -3 trace -f -o "$db" "$script" one two
    assert_equal "$(q "SELECT root, forked, traced, exit_status, end_signal IS NULL FROM processes")" "1|0|1|3|1"
    assert_equal "$(q "SELECT json_extract(argv, '\$[#-2]') || ' ' || json_extract(argv, '\$[#-1]') FROM processes")" "one two"
    assert_equal "$(q "SELECT count(*) FROM changes c JOIN processes p ON c.pid = p.pid")" 1
    assert_equal "$(q "SELECT value FROM meta WHERE key = 'follow'")" 1
}

@test "--no-follow: the trace says children are not followed" {
    cat > "$script" <<'PY'
import memwatch
b = bytearray(8)
memwatch.watch(b, "b")
b[0] = 7
PY
    run_memwatch -0 trace --no-follow -f -o "$db" "$script"
    assert_equal "$(q "SELECT value FROM meta WHERE key = 'follow'")" 0
}
