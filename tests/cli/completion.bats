#!/usr/bin/env bats
# bash completion (cli/completion.bash, installed by the package): subcommands, each
# command's options as its -h lists them, option values, and tags from the trace the
# command line reads, or else from the newest memwatch-*.db here.
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH, MEMWATCH_PYTHON,
# MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    load trace_fixtures
    cd "$BATS_TEST_TMPDIR"
    COMPLETION="$MEMWATCH_SOURCE_DIR/cli/completion.bash"
}

# completes WORD...: what bash offers for the last word of `memwatch WORD...`, space
# separated, sorted.
completes() {
    run -0 bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _memwatch
        printf "%s\n" "${COMPREPLY[@]}" | LC_ALL=C sort | tr "\n" " " | sed "s/ $//"' \
        _ "$COMPLETION" "$MEMWATCH" "$@"
}

@test "subcommands, and each command's options as its -h lists them" {
    completes ""
    assert_output "--help --version diff help query report trace"
    completes he
    assert_output "help"
    local cmd expected
    for cmd in trace query diff report; do
        expected=$("$MEMWATCH" "$cmd" -h | grep -oE -- '(^|[ ,])--[a-z][-a-z]*' |
                   sed 's/^[ ,]//' | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/ $//')
        completes "$cmd" --
        assert_output "$expected"
    done
    completes trace --py
    assert_output "--python"
}

@test "option values: check modes, backends, on-nan actions, formats" {
    completes trace --check ""
    assert_output "interval: line manual"
    completes trace --backend m
    assert_output "mprotect"
    completes trace --on-nan ""
    assert_output "off raise warn"
    completes query -f j
    assert_output "json jsonl"
}

@test "trace: scripts to run, then the script's own arguments are left alone" {
    mkdir pkg
    touch train.py notes.txt
    completes trace -q ""
    assert_output "pkg train.py"   # scripts, and directories to find them in
    completes trace train.py --
    assert_output ""
    completes trace train.py n
    assert_output "notes.txt"
}

@test "tags: from the newest memwatch-*.db here, or from the trace the line names" {
    make_trace old.db
    make_trace memwatch-a.1.db
    sqlite3 memwatch-a.1.db "UPDATE objects SET tag = 'older' WHERE id = 1"
    touch -d '2001-01-01' memwatch-a.1.db
    make_trace memwatch-b.2.db
    completes diff ""
    assert_output "bias weights"
    completes query --tag w
    assert_output "weights"
    completes diff -t memwatch-a.1.db ""
    assert_output "bias older"
    completes query memwatch-a.1.db --tag o
    assert_output "older"
    # After diff's tag come traces (several: one timeline).
    completes diff -C 2 weights old
    assert_output "old.db"
}

@test "a hostile trace gives no tags, quickly, and no error" {
    make_trace memwatch-h.1.db
    sqlite3 memwatch-h.1.db "ALTER TABLE objects RENAME TO o2;
        CREATE VIEW objects AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r)
        SELECT x AS id, 'never' AS tag FROM r"
    SECONDS=0
    completes diff ""
    assert_output ""
    ((SECONDS < 10)) || fail "took $SECONDS s"
}
