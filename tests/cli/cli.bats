#!/usr/bin/env bats
# The command line (issue 2, item 3 and 4): help, version, usage errors, the output file.
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH (the binary),
# MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    FIXTURES="$MEMWATCH_SOURCE_DIR/tests/fixtures"
    # An empty directory of its own (bats keeps its files in $BATS_TEST_TMPDIR), to see
    # what memwatch creates.
    mkdir "$BATS_TEST_TMPDIR/cwd"
    cd "$BATS_TEST_TMPDIR/cwd"
}

# assert_usage_error MESSAGE USAGE-START: the last run printed exactly one line naming the
# problem, then the usage (whose first line starts with USAGE-START), on stderr only.
assert_usage_error() {
    assert_equal "$output" ""
    assert_equal "${stderr_lines[0]}" "$1"
    [[ ${stderr_lines[1]} == "$2"* ]] || fail "the usage does not follow: ${stderr_lines[1]-}"
    # One line naming the problem: nothing else in the usage starts with "memwatch:".
    local n
    n=$(grep -c '^memwatch:' <<<"$stderr" || true)
    assert_equal "$n" 1
}

MAIN_USAGE="usage: memwatch [--version] [--help] <command> [<args>]"
TRACE_USAGE_START="usage: memwatch trace "

@test "memwatch --help, -h and help print the usage and exit 0" {
    run_memwatch -0 --separate-stderr --help
    assert_line --index 0 "$MAIN_USAGE"
    assert_output --partial "   trace "
    assert_output --partial "   query "
    assert_output --partial "   diff "
    assert_equal "$stderr" ""
    local help=$output
    run_memwatch -0 -h
    assert_equal "$output" "$help"
    run_memwatch -0 help
    assert_equal "$output" "$help"
}

@test "memwatch --version prints the version and exits 0" {
    run_memwatch -0 --separate-stderr --version
    assert_output --regexp '^memwatch [0-9]+\.[0-9]+\.[0-9]+$'
    assert_equal "$stderr" ""
}

@test "help COMMAND and COMMAND -h print the command's usage on stdout and exit 0" {
    local cmd
    for cmd in trace query diff; do
        run_memwatch -0 --separate-stderr "$cmd" -h
        assert_line --index 0 --regexp "^usage: memwatch $cmd( |\$)"
        assert_equal "$stderr" ""
        local usage=$output
        run_memwatch -0 --separate-stderr "$cmd" --help
        assert_equal "$output" "$usage"
        run_memwatch -0 --separate-stderr help "$cmd"
        assert_equal "$output" "$usage"
    done
    run_memwatch -0 help help
    assert_line --index 0 "usage: memwatch help [<command>]"
}

@test "memwatch trace -h lists every option" {
    run_memwatch -0 trace -h
    local opt
    for opt in -o --output -f --force -q --quiet -m -c --check --backend -X -W -u -h --help; do
        assert_output --regexp "(^|[ ,\\[])$opt([ ,=]|\$)"
    done
}

@test "an unknown command: one line naming it, the usage, exit 2" {
    run_memwatch -2 --separate-stderr frobnicate
    assert_usage_error "memwatch: 'frobnicate' is not a memwatch command" "$MAIN_USAGE"
    run_memwatch -2 --separate-stderr help frobnicate
    assert_usage_error "memwatch: 'frobnicate' is not a memwatch command" "$MAIN_USAGE"
    run_memwatch -2 --separate-stderr
    assert_usage_error "memwatch: no command given" "$MAIN_USAGE"
}

@test "an unknown option: one line naming it, the usage, exit 2" {
    run_memwatch -2 --separate-stderr --frob
    assert_usage_error "memwatch: unknown option '--frob'" "$MAIN_USAGE"
    run_memwatch -2 --separate-stderr -z
    assert_usage_error "memwatch: unknown option '-z'" "$MAIN_USAGE"
    run_memwatch -2 --separate-stderr trace --frob x.py
    assert_usage_error "memwatch: unknown option '--frob'" "$TRACE_USAGE_START"
    run_memwatch -2 --separate-stderr trace -z x.py
    assert_usage_error "memwatch: unknown option '-z'" "$TRACE_USAGE_START"
    # Nothing ran and nothing was written.
    run ls -A
    assert_output ""
}

@test "a missing option value: one line naming the option, the usage, exit 2" {
    run_memwatch -2 --separate-stderr trace -o
    assert_usage_error "memwatch: option '-o' requires a value" "$TRACE_USAGE_START"
    run_memwatch -2 --separate-stderr trace --output
    assert_usage_error "memwatch: option '--output' requires a value" "$TRACE_USAGE_START"
    run_memwatch -2 --separate-stderr trace --check
    assert_usage_error "memwatch: option '--check' requires a value" "$TRACE_USAGE_START"
    run_memwatch -2 --separate-stderr trace
    assert_usage_error "memwatch: no script given" "$TRACE_USAGE_START"
}

@test "invalid --check and --backend values exit 2 with a message" {
    local bad
    for bad in lines interval interval: interval:0 interval:-5 interval:12x interval:3600001 ''; do
        run_memwatch -2 --separate-stderr trace --check "$bad" "$FIXTURES/marker.py" m
        assert_usage_error "memwatch: invalid --check '$bad': use line, interval:MS (1 to 3600000) or manual" \
            "$TRACE_USAGE_START"
    done
    run_memwatch -2 --separate-stderr trace --backend frob "$FIXTURES/marker.py" m
    assert_usage_error "memwatch: invalid --backend 'frob': use auto, uffd or mprotect" "$TRACE_USAGE_START"
    [ ! -e m ]
    local good
    for good in line manual interval:1 interval:250 interval:3600000; do
        run_memwatch -0 trace -q -f -o t.db --check "$good" "$FIXTURES/marker.py" m
    done
    for good in auto mprotect; do
        run_memwatch -0 trace -q -f -o t.db --backend "$good" "$FIXTURES/marker.py" m
    done
    [ -e m ]
    # uffd is valid; where it is not available, memwatch says so before the script runs.
    rm m
    run_memwatch --separate-stderr trace -q -f -o t.db --backend uffd "$FIXTURES/marker.py" m
    if ((status == 2)); then
        [[ $stderr == "memwatch: backend 'uffd' is not available on this system: "* ]] ||
            fail "got: $stderr"
        [ ! -e m ]
    else
        assert_equal "$status" 0
        [ -e m ]
    fi
}

@test "-o FILE that exists: exit 2 'already exists' and the file is unchanged; -f overwrites a trace" {
    run_memwatch -0 trace -q -o t.db -c 'pass'
    cp t.db before.db
    run_memwatch -2 --separate-stderr trace -o t.db "$FIXTURES/marker.py" m
    assert_equal "$stderr" "memwatch: 't.db' already exists (use -f to overwrite it)"
    cmp t.db before.db
    [ ! -e m ]
    run_memwatch -0 trace -q -f -o t.db "$FIXTURES/marker.py" m
    [ -e m ]
    run -0 sqlite3 t.db "SELECT target FROM run"
    assert_output "$FIXTURES/marker.py"
    # A file that is not a trace is not replaced, even with -f (tests/cli/outputs.bats).
    echo precious >notes.txt
    run_memwatch -2 trace -q -f -o notes.txt "$FIXTURES/marker.py" m2
    assert_equal "$(cat notes.txt)" "precious"
    [ ! -e m2 ]
}

@test "an unwritable output path fails before the script runs, exit 2" {
    run_memwatch -2 --separate-stderr trace -o /nonexistent-dir/t.db "$FIXTURES/marker.py" m
    assert_equal "${#stderr_lines[@]}" 1
    assert_output ""
    [[ $stderr == "memwatch: cannot write trace '/nonexistent-dir/t.db': "* ]] || fail "got: $stderr"
    [ ! -e m ]
    mkdir ro
    run_memwatch -2 --separate-stderr trace -o ro "$FIXTURES/marker.py" m
    [[ $stderr == "memwatch: "*"'ro'"* ]] || fail "got: $stderr"
    [ ! -e m ]
}

@test "the default trace is memwatch-<stem>.<pid>.db in the current directory" {
    run_memwatch -0 --separate-stderr trace "$FIXTURES/marker.py" m
    [ -e m ]
    local db
    db=$(ls memwatch-marker.*.db)
    [[ $db =~ ^memwatch-marker\.[0-9]+\.db$ ]] || fail "unexpected name: $db"
    run -0 head -c 15 "$db"
    assert_output "SQLite format 3"
    rm -f memwatch-*
    run_memwatch -0 trace -c 'print("hi")'
    ls memwatch-command.*.db
}

@test "a script whose name takes all of NAME_MAX runs: the default trace's name is cut to fit" {
    # 252 bytes of UTF-8 (two-byte characters) plus ".py": python3 runs it, so memwatch must.
    local stem
    stem=$(printf 'é%.0s' $(seq 1 126))
    cp "$FIXTURES/marker.py" "$stem.py"
    run_memwatch -0 --separate-stderr trace "$stem.py" m
    [ -e m ] || fail "the script did not run: $stderr"
    local db
    db=$(ls memwatch-*.db)
    [[ $db =~ ^memwatch-(é)+\.[0-9]+\.db$ ]] || fail "unexpected name: $db"
    (( ${#db} > 100 )) || fail "the name was cut more than needed: $db"
    run -0 "$MEMWATCH" query -s "$db"
}

@test "the end-of-run line on stderr names the trace and memwatch query; -q silences it" {
    run_memwatch -0 --separate-stderr trace -o t.db "$FIXTURES/marker.py" m
    assert_equal "$output" ""
    assert_equal "${#stderr_lines[@]}" 1
    [[ $stderr == memwatch:*"'t.db'"*"memwatch query t.db" ]] || fail "got: $stderr"
    run_memwatch -0 --separate-stderr trace -q -f -o t.db "$FIXTURES/marker.py" m
    assert_equal "$output" ""
    assert_equal "$stderr" ""
}

@test "the end-of-run line's command reads the trace when pasted into a shell, whatever its name" {
    local name suggested
    for name in "a b.db" "it's \$HOME.db" 'x*;touch pwned.db' '-t.db' '-"q.db' 'back\sl ash.db' \
                "é.db"; do
        run_memwatch -0 --separate-stderr trace -q -f -o "$name" "$FIXTURES/marker.py" m
        run_memwatch -0 --separate-stderr trace -f -o "$name" "$FIXTURES/marker.py" m
        suggested=${stderr##*; see: memwatch query }
        [[ $stderr == *"; see: memwatch query "* ]] || fail "no command in: $stderr"
        run -0 eval "\"\$MEMWATCH\" query -s $suggested"
        assert_line --partial "process "
    done
    # A name that cannot be pasted exactly (a newline) still runs nothing when pasted.
    name=$'n\n$(touch pwned)`touch pwned`.db'
    run_memwatch -0 --separate-stderr trace -f -o "$name" "$FIXTURES/marker.py" m
    suggested=${stderr##*; see: memwatch query }
    run -2 eval "\"\$MEMWATCH\" query -s $suggested"
    [ ! -e pwned ] || fail "pasting '$suggested' ran a command"
}

@test "memwatch trace exits with the script's status, and still prints the end-of-run line" {
    run_memwatch -3 --separate-stderr trace -o t.db -c 'import sys; sys.exit(3)'
    [[ $stderr == *"memwatch query t.db" ]] || fail "got: $stderr"
}
