# What the CLI tests share: the assertion libraries, the environment ctest sets
# (tests/CMakeLists.txt: MEMWATCH, the binary; MEMWATCH_SOURCE_DIR), and running memwatch.
# A test file loads it in its setup: `load common`, then `common_setup`.

# common_setup: bats-support and bats-assert, and the environment checked.
common_setup() {
    load /usr/lib/bats/bats-support/load
    load /usr/lib/bats/bats-assert/load
    : "${MEMWATCH:?set MEMWATCH to the memwatch binary}"
    : "${MEMWATCH_SOURCE_DIR:?set MEMWATCH_SOURCE_DIR to the source tree}"
}

# run_memwatch [-N] [!] [--separate-stderr] ARGS...: `run` on the memwatch binary (stdout
# and stderr merged unless --separate-stderr).
run_memwatch() {
    local opts=()
    while [[ $1 == -[0-9]* || $1 == '!' || $1 == --separate-stderr ]]; do
        opts+=("$1")
        shift
    done
    run "${opts[@]}" "$MEMWATCH" "$@"
}

# assert_synopsis_matches_usage PAGE USAGE-TEXT: the man page's SYNOPSIS says what the
# usage's first lines (up to the first blank line) say, whitespace aside.
assert_synopsis_matches_usage() {
    local synopsis usage
    synopsis=$(mandoc -Tascii "$1" | col -b | sed -n '/^SYNOPSIS/,/^[A-Z]/p' | sed '1d;$d' |
               tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
    usage=$(sed -n '1,/^$/p' <<<"$2" | sed 's/^usage: //' | tr -s ' \t\n' ' ' |
            sed 's/^ //; s/ $//')
    assert_equal "$synopsis" "$usage"
}

# assert_help CMD: `memwatch CMD -h` prints the usage on stdout only and exits 0, and the
# SYNOPSIS of man/memwatch-CMD.1 says what the usage says; --help prints it too.
assert_help() {
    run_memwatch -0 --separate-stderr "$1" -h
    assert_line --index 0 --partial "usage: memwatch $1 "
    assert_equal "$stderr" ""
    assert_synopsis_matches_usage "$MEMWATCH_SOURCE_DIR/man/memwatch-$1.1" "$output"
    run_memwatch -0 "$1" --help
    assert_line --index 0 --partial "usage: memwatch $1 "
}

# require_module MODULE PACKAGE: the interpreter under test ($MEMWATCH_PYTHON) can import
# MODULE, or the test is skipped saying so. Debian's python3 gets MODULE from the Debian
# package PACKAGE, which tests/run-all.sh installs: there the test is skipped only when
# that package is not installed (a broken install fails the test instead). Another
# interpreter (pyenv's, with no PyPI here) skips when it cannot import MODULE.
require_module() {
    local state
    if [[ $(realpath "${MEMWATCH_PYTHON:?}") == /usr/bin/python3* ]]; then
        state=$(dpkg-query -W -f='${Status}' "$2" 2>/dev/null) || state=absent
        [[ $state == "install ok installed" ]] || skip "Debian package $2 is not installed"
    elif ! "$MEMWATCH_PYTHON" -c "import $1" 2>/dev/null; then
        skip "$MEMWATCH_PYTHON cannot import $1"
    fi
}
