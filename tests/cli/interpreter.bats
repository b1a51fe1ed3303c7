#!/usr/bin/env bats
# Which interpreter `memwatch trace` runs (issue 17; memwatch-trace(1), WHICH PYTHON):
# --python, MEMWATCH_PYTHON, the activated venv, python3 on PATH when supported, Debian's
# python3; what it refuses; and that the trace records the choice.
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH, MEMWATCH_PYTHON (the
# interpreter most tests use), MEMWATCH_PYTHONS (every interpreter memwatch is built for,
# colon-separated), MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    : "${MEMWATCH_PYTHON:?}"
    # Each test sets the variables it is about; none comes from the caller.
    export -n MEMWATCH_PYTHON MEMWATCH_PYTHONS
    unset VIRTUAL_ENV
    cd "$BATS_TEST_TMPDIR"
    printf 'import sys\nprint("%%d.%%d" %% sys.version_info[:2], sys.executable)\n' >which.py
    mkdir bin fake
    # Interpreters memwatch does not support, as they answer when asked (the launcher runs
    # `python -I -S -c ...` and reads implementation, version, ABI flags, executable).
    fake_python fake/python3.10 cpython 3.10.13 ''
    fake_python fake/pypy3 pypy 3.10.14 ''
    fake_python fake/python3.13t cpython 3.13.0 t
}

# fake_python FILE IMPLEMENTATION VERSION ABIFLAGS: a script that answers like a Python
# interpreter and runs nothing.
fake_python() {
    printf '#!/bin/sh\nprintf "%%s\\n" %s %s "%s" "$0"\n' "$2" "$3" "$4" >"$1"
    chmod +x "$1"
}

# version_of PYTHON: its X.Y.
version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# another_python: an interpreter memwatch supports, of another version than
# MEMWATCH_PYTHON's, or skip.
another_python() {
    local p mine
    mine=$(version_of "$MEMWATCH_PYTHON")
    IFS=: read -ra all <<<"${MEMWATCH_PYTHONS:-}"
    for p in "${all[@]}"; do
        if [[ -x $p && $(version_of "$p") != "$mine" ]]; then
            echo "$p"
            return
        fi
    done
    skip "memwatch is built for one CPython version only on this machine"
}

# supported_list: "CPython 3.11, 3.12 and 3.13", from the versions memwatch is built for.
supported_list() {
    local p versions=()
    IFS=: read -ra all <<<"${MEMWATCH_PYTHONS:-$MEMWATCH_PYTHON}"
    mapfile -t versions < <(for p in "${all[@]}"; do version_of "$p"; done | sort -uV)
    local n=${#versions[@]} text="CPython ${versions[0]}" i
    for ((i = 1; i < n; i++)); do
        if ((i == n - 1)); then text+=" and ${versions[i]}"; else text+=", ${versions[i]}"; fi
    done
    echo "$text"
}

# meta KEY: the value of KEY in t.db's meta table.
meta() {
    sqlite3 t.db "SELECT value FROM meta WHERE key = '$1'"
}

@test "--python runs that interpreter, and the trace records it" {
    local other version
    other=$(another_python)
    version=$(version_of "$other")
    run_memwatch -0 --separate-stderr trace -q -o t.db --python "$other" which.py
    assert_output "$version $other"
    run sqlite3 t.db "SELECT python_version LIKE '$version.%' FROM run"
    assert_output 1
    assert_equal "$(meta python_path)" "$other"
    assert_equal "$(meta python_chosen_by)" "--python"
    run_memwatch -0 query --summary t.db
    assert_line --index 0 --regexp "^python $version\.[0-9]+ $other \(chosen by --python\)$"
    run_memwatch -0 report -o t.html t.db
    grep -q "\"python_chosen_by\":\"--python\"" t.html || fail "the report does not say"
}

@test "MEMWATCH_PYTHON chooses when --python does not, and is kept for the script" {
    local other
    other=$(another_python)
    MEMWATCH_PYTHON=$other run_memwatch -0 --separate-stderr trace -q -o t.db -c \
        'import os, sys; print(sys.executable, os.environ["MEMWATCH_PYTHON"])'
    assert_output "$other $other"
    assert_equal "$(meta python_chosen_by)" "MEMWATCH_PYTHON"
    MEMWATCH_PYTHON=$other run_memwatch -0 --separate-stderr trace -q -f -o t.db \
        --python "$MEMWATCH_PYTHON" which.py
    assert_output "$(version_of "$MEMWATCH_PYTHON") $MEMWATCH_PYTHON"
}

@test "a command name is looked up in PATH, and runs as python3 would run it" {
    ln -s "$MEMWATCH_PYTHON" bin/mypython
    PATH="$PWD/bin:$PATH" run_memwatch -0 --separate-stderr trace -q -o t.db --python mypython \
        which.py
    local expected
    expected=$(PATH="$PWD/bin:$PATH" mypython which.py)
    assert_output "$expected"
}

@test "the activated venv's python comes before python3 on PATH" {
    "$MEMWATCH_PYTHON" -m venv --without-pip venv
    ln -s "$(another_python)" bin/python3
    # Activated by VIRTUAL_ENV alone (a tool may set it without changing PATH).
    VIRTUAL_ENV=$PWD/venv PATH="$PWD/bin:$PATH" run_memwatch -0 --separate-stderr \
        trace -q -o t.db -c 'import sys; print(sys.prefix, sys.executable)'
    assert_output "$PWD/venv $PWD/venv/bin/python3"
    assert_equal "$(meta python_chosen_by)" "VIRTUAL_ENV"
}

@test "python3 on PATH runs, under the name it has there" {
    local other
    other=$(another_python)
    ln -s "$other" bin/python3
    PATH="$PWD/bin:$PATH" run_memwatch -0 --separate-stderr trace -q -o t.db which.py
    assert_output "$(version_of "$other") $PWD/bin/python3"
    assert_equal "$(meta python_chosen_by)" "PATH"
    assert_equal "$(meta python_path)" "$PWD/bin/python3"
}

@test "a version manager's shim on PATH runs the interpreter it would run" {
    local other
    other=$(another_python)
    printf '#!/bin/sh\nexec %s "$@"\n' "$other" >bin/python3
    chmod +x bin/python3
    PATH="$PWD/bin:$PATH" run_memwatch -0 --separate-stderr trace -q -o t.db which.py
    assert_output "$(version_of "$other") $other"
    assert_equal "$(meta python_path)" "$other"
}

@test "python3 on PATH that memwatch does not support is passed over for Debian's python3" {
    [[ -x /usr/bin/python3 ]] || skip "no /usr/bin/python3 here"
    cp fake/python3.10 bin/python3
    PATH="$PWD/bin:$PATH" run_memwatch -0 --separate-stderr trace -q -o t.db which.py
    assert_output "$(version_of /usr/bin/python3) /usr/bin/python3"
    assert_equal "$(meta python_chosen_by)" "default"
}

@test "an unsupported interpreter that was asked for is refused with one line, before anything runs" {
    local supported
    supported=$(supported_list)
    run_memwatch -2 trace -o t.db --python fake/python3.10 which.py
    assert_output "memwatch: cannot trace with 'fake/python3.10' (CPython 3.10.13): this memwatch supports $supported"
    [[ ! -e t.db ]] || fail "a trace was created"
    run_memwatch -2 trace -o t.db --python fake/pypy3 which.py
    assert_output "memwatch: cannot trace with 'fake/pypy3' (pypy 3.10.14): this memwatch supports $supported"
    run_memwatch -2 trace -o t.db --python fake/python3.13t which.py
    assert_output "memwatch: cannot trace with 'fake/python3.13t' (CPython 3.13.0, ABI flags t): this memwatch supports $supported"
    MEMWATCH_PYTHON=fake/python3.10 run_memwatch -2 trace -o t.db which.py
    assert_output "memwatch: cannot trace with 'fake/python3.10' (CPython 3.10.13): this memwatch supports $supported (chosen by MEMWATCH_PYTHON; use --python to choose another)"
    run_memwatch -2 trace -o t.db --python no-such-python which.py
    assert_output "memwatch: cannot run the interpreter 'no-such-python' (from --python): No such file or directory"
    printf '#!/bin/sh\nexit 3\n' >bin/broken && chmod +x bin/broken
    run_memwatch -2 trace -o t.db --python bin/broken which.py
    assert_output "memwatch: cannot run the interpreter 'bin/broken': it does not answer as Python does (\`bin/broken -I -S -c ...\` failed)"
    [[ ! -e t.db ]] || fail "a trace was created"
}

@test "each interpreter memwatch is built for traces a watched write at its line" {
    local p
    printf 'import memwatch\nb = bytearray(8)\nmemwatch.watch(b, "b")\nb[1] = 7\n' >w.py
    IFS=: read -ra all <<<"${MEMWATCH_PYTHONS:-$MEMWATCH_PYTHON}"
    for p in "${all[@]}"; do
        run_memwatch -0 trace -q -f -o t.db --python "$p" w.py
        run sqlite3 t.db "SELECT offset, new_hex, line FROM change_ranges"
        assert_output "1|07|4"
    done
}
