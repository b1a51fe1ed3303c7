#!/usr/bin/env bats
# Fidelity with python3 (issue 2, item 5): every test runs the same fixture under
# `memwatch trace` and under python3 and compares what a user sees. The interpreter under
# test is the user's python3: first on PATH, where `python3 ARGS` and `memwatch trace ARGS`
# (which runs python3 from PATH, memwatch-trace(1) WHICH PYTHON) both find it. ctest runs
# this file once per supported interpreter (tests/CMakeLists.txt).
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH (the binary), MEMWATCH_PYTHON
# (the interpreter under test), MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    : "${MEMWATCH_PYTHON:?set MEMWATCH_PYTHON to the interpreter memwatch traces in}"
    # The fixtures see a known environment: no PYTHON* variable from the caller (an
    # inherited PYTHONUNBUFFERED would change the buffering compared), and no MEMWATCH*
    # variable exported, so any that reaches a script came from memwatch (ctest's are
    # kept as shell variables; others, like tests/sanitize.sh's MEMWATCH_SANITIZE_ROOT
    # or MEMWATCH_CI_EXTRA, are the caller's own and python3 would see them too).
    local var
    for var in $(compgen -e); do
        if [[ $var == PYTHON* ]]; then
            unset "$var"
        elif [[ $var == MEMWATCH* ]]; then
            export -n "$var"
        fi
    done
    mkdir -p "$BATS_TEST_TMPDIR/bin"
    ln -s "$MEMWATCH_PYTHON" "$BATS_TEST_TMPDIR/bin/python3"
    export PATH="$BATS_TEST_TMPDIR/bin:$PATH"
    FIXTURES="$MEMWATCH_SOURCE_DIR/tests/fixtures"
    DB="$BATS_TEST_TMPDIR/t.db"
    # The fixtures run from a scratch copy: python3 -m writes __pycache__ next to modules.
    WORK="$BATS_TEST_TMPDIR/work"
    mkdir -p "$WORK"
    cp "$FIXTURES"/*.py "$WORK"/
    cd "$WORK"
}

# same_as_python [--separate-stderr] PYTHON-ARGS...: runs `python3 ARGS` and
# `memwatch trace -q -o t.db ARGS`, and asserts the same exit status and output (and
# stderr, when separated). Leaves python3's results in py_status, py_output, py_stderr.
same_as_python() {
    local sep=()
    if [[ $1 == --separate-stderr ]]; then
        sep=("$1")
        shift
    fi
    run "${sep[@]}" python3 "$@"
    py_status=$status py_output=$output py_stderr=${stderr-}
    rm -f "$DB"
    run "${sep[@]}" "$MEMWATCH" trace -q -o "$DB" "$@"
    assert_equal "$output" "$py_output"
    if ((${#sep[@]})); then
        assert_equal "$stderr" "$py_stderr"
    fi
    assert_equal "$status" "$py_status"
    [ -f "$DB" ] || fail "no trace file was written"
}

# in_tty COMMAND...: runs COMMAND on a pseudo-terminal (stdin, stdout and stderr) with
# script(1) from util-linux; the exit status is COMMAND's.
in_tty() {
    command -v script >/dev/null || fail "script(1) is missing: install bsdutils"
    local cmd
    printf -v cmd '%q ' "$@"
    script -qec "$cmd" /dev/null </dev/null
}

# status_of COMMAND...: prints subprocess' returncode, which is -N when COMMAND was killed
# by signal N (bash's $? cannot tell that apart from exit(128 + N)).
status_of() {
    "$MEMWATCH_PYTHON" -c 'import subprocess, sys
print("returncode", subprocess.run(sys.argv[1:]).returncode)' "$@"
}

@test "sys.argv, sys.path[0], __name__, __file__ and sys.flags are python3's" {
    same_as_python --separate-stderr show_main.py a 'b c' ''
    assert_line --index 0 "argv ['show_main.py', 'a', 'b c', '']"
    assert_line --index 1 "path0 $WORK"
    assert_line --index 2 "name __main__"
    assert_line --index 3 "file $WORK/show_main.py"
    same_as_python --separate-stderr ./show_main.py
    same_as_python --separate-stderr "$WORK/show_main.py" x
    mkdir sub
    same_as_python --separate-stderr ../work/show_main.py
}

@test "arguments after the script reach it untouched, even memwatch's own options" {
    same_as_python --separate-stderr show_main.py -o x --help -q -- -f
    assert_line --index 0 "argv ['show_main.py', '-o', 'x', '--help', '-q', '--', '-f']"
    # Written the way a user would: the script's own -o and --help are not memwatch's.
    run_memwatch -0 trace -q -o "$DB" -f show_main.py -o x --help
    assert_line --index 0 "argv ['show_main.py', '-o', 'x', '--help']"
    [ ! -e x ]
}

@test "-m and -c give sys.argv, sys.path[0] and __name__ as python3 does" {
    same_as_python --separate-stderr -m show_main a -o x
    assert_line --index 0 "argv ['$WORK/show_main.py', 'a', '-o', 'x']"
    assert_line --index 2 "name __main__"
    same_as_python --separate-stderr -c 'import sys; print(sys.argv, repr(sys.path[0]), __name__)' a -c --help
    assert_output "['-c', 'a', '-c', '--help'] '' __main__"
}

@test "sys.flags with -X, -W and -u are python3's" {
    same_as_python --separate-stderr -X dev -X utf8 -W error::UserWarning -u show_main.py
    assert_output --partial "dev_mode=True, utf8_mode=1"
    assert_output --partial "warnoptions ['default', 'error::UserWarning']"
    assert_output --partial "stdout False True"
    same_as_python --separate-stderr -X faulthandler -X int_max_str_digits=5000 show_main.py
    assert_output --partial "xoptions {'faulthandler': True, 'int_max_str_digits': '5000'}"
}

@test "stdin, stdout and stderr piped: the same streams, the same bytes" {
    # `run` merges stderr into stdout through one pipe (2>&1): the interleaving shows the
    # buffering (stdout block-buffered, stderr line-buffered when piped).
    same_as_python interleave.py
    assert_output "err 0
err 1
err 2
out 0
out 1
out 2
no newline at the end"
    same_as_python -u interleave.py
    assert_line --index 0 "out 0"
    printf 'line one\nline two\n' >in.txt
    run "$MEMWATCH_PYTHON" stdio.py <in.txt
    local expected=$output
    assert_line "read 18 'line one\\nline two\\n'"
    run_memwatch -0 trace -q -f -o "$DB" stdio.py <in.txt
    assert_equal "$output" "$expected"
    # A large output through a pipe, read back whole.
    local code='import sys
for i in range(200000): sys.stdout.write("%d\n" % i)'
    run bash -c '"$@" | md5sum' _ "$MEMWATCH_PYTHON" -c "$code"
    expected=$output
    run bash -c '"$@" | md5sum' _ "$MEMWATCH" trace -q -f -o "$DB" -c "$code"
    assert_equal "$output" "$expected"
}

@test "stdin, stdout and stderr on a terminal: line-buffered, interleaved as under python3" {
    run -0 in_tty "$MEMWATCH_PYTHON" interleave.py
    local expected=$output
    assert_output "$(printf 'out 0\r\nerr 0\r\nout 1\r\nerr 1\r\nout 2\r\nerr 2\r\nno newline at the end')"
    run -0 in_tty "$MEMWATCH" trace -q -o "$DB" interleave.py
    assert_equal "$output" "$expected"

    run -0 in_tty "$MEMWATCH_PYTHON" stdio.py
    expected=$output
    assert_line --index 0 --partial "stdin True"
    # On a terminal stdout is line-buffered, not written through.
    assert_line --index 1 --regexp '^stdout True [^ ]+ [^ ]+ True False'$'\r''$'
    run -0 in_tty "$MEMWATCH" trace -q -f -o "$DB" stdio.py
    assert_equal "$output" "$expected"

    run -3 in_tty "$MEMWATCH" trace -q -f -o "$DB" exit.py code 3
}

@test "exit status: a normal end is 0, sys.exit(N) is N" {
    same_as_python --separate-stderr exit.py normal
    assert_equal "$status" 0
    assert_output "before normal
after normal"
    same_as_python --separate-stderr exit.py code 3
    assert_equal "$status" 3
    same_as_python --separate-stderr exit.py code 0
    same_as_python --separate-stderr exit.py code 255
    assert_equal "$status" 255
}

@test "exit status: sys.exit(\"message\") prints the message on stderr and exits 1" {
    same_as_python --separate-stderr exit.py message
    assert_equal "$status" 1
    assert_equal "$stderr" "the message"
}

@test "exit status: an uncaught exception prints the same traceback and exits 1" {
    same_as_python --separate-stderr exit.py raise
    assert_equal "$status" 1
    assert_equal "$output" "before raise"
    [[ $stderr == Traceback* ]] || fail "no traceback: $stderr"
    [[ $stderr == *"During handling of the above exception, another exception occurred"* ||
       $stderr == *"The above exception was the direct cause of the following exception"* ]] ||
        fail "no chained traceback: $stderr"
    [[ $stderr == *'File "'"$WORK"'/exit.py", line '*', in inner'* ]] || fail "no frame: $stderr"
    [[ $stderr == *"ValueError: bad value" ]] || fail "wrong last line: $stderr"
}

@test "exit status: an uncaught KeyboardInterrupt kills the process with SIGINT" {
    same_as_python --separate-stderr exit.py interrupt
    assert_equal "$status" 130
    [[ $stderr == Traceback*KeyboardInterrupt ]] || fail "no traceback: $stderr"
    # Killed by the signal, not exit(130): subprocess reports -2 for both.
    run -0 status_of "$MEMWATCH_PYTHON" exit.py interrupt
    assert_line "returncode -2"
    run -0 status_of "$MEMWATCH" trace -q -f -o "$DB" exit.py interrupt
    assert_line "returncode -2"
}

@test "PYTHONPATH, PYTHONWARNINGS and PYTHONFAULTHANDLER act as under python3" {
    mkdir -p pp
    echo 'WHERE = "pythonpath"' >pp/pp_marker.py
    PYTHONPATH="$WORK/pp" same_as_python --separate-stderr env.py
    assert_line "pp_marker pythonpath"
    assert_line "faulthandler False"
    PYTHONWARNINGS=error::DeprecationWarning same_as_python --separate-stderr env.py
    assert_equal "$status" 1
    assert_line "warnoptions ['error::DeprecationWarning']"
    [[ $stderr == *"DeprecationWarning: a deprecated thing" ]] || fail "no error: $stderr"
    PYTHONWARNINGS=always::DeprecationWarning same_as_python --separate-stderr env.py
    [[ $stderr == *"DeprecationWarning: a deprecated thing"* ]] || fail "no warning: $stderr"
    PYTHONFAULTHANDLER=1 same_as_python --separate-stderr env.py
    assert_line "faulthandler True"
}

@test "a script run in an activated venv sees the venv and its site-packages" {
    local venv="$BATS_TEST_TMPDIR/venv"
    "$MEMWATCH_PYTHON" -m venv --system-site-packages --without-pip "$venv"
    local site
    site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    [[ $site == "$venv"/* ]] || fail "venv site-packages outside the venv: $site"
    echo 'WHERE = "venv"' >"$site/venv_marker.py"

    # As an activated venv runs it: `python3 venv_probe.py` finds the venv's python3.
    run -0 env PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" python3 venv_probe.py
    local expected=$output
    assert_line "prefix $venv"
    assert_line "venv_marker $site/venv_marker.py"
    run -0 env PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" "$MEMWATCH" trace -q -o "$DB" venv_probe.py
    assert_equal "$output" "$expected"
}

@test "import numpy works" {
    require_module numpy python3-numpy
    same_as_python --separate-stderr import_lib.py numpy
    assert_output --regexp '^numpy [0-9.]+ 66.0 [0-9.]+$'
}

@test "import torch works" {
    require_module torch python3-torch
    same_as_python --separate-stderr import_lib.py torch
    assert_output --regexp '^torch [0-9a-z.+]+ 66.0 [0-9.]+$'
}

@test "sys.executable is a real python3: multiprocessing (spawn, fork) and subprocess work" {
    same_as_python --separate-stderr children.py "$MEMWATCH_PYTHON"
    assert_output "spawn 42
fork 42
subprocess 0 '1\\n'
executable is python3 True"
}

@test "import memwatch works under trace with memwatch's version, and not under python3" {
    run -0 "$MEMWATCH" --version
    local version=${output#memwatch }
    run_memwatch -0 trace -q -o "$DB" import_memwatch.py
    assert_output "$version"
    run -1 --separate-stderr "$MEMWATCH_PYTHON" import_memwatch.py
    assert_equal "${stderr##*$'\n'}" "ModuleNotFoundError: No module named 'memwatch'"
}

@test "LD_PRELOAD, GLIBC_TUNABLES and MEMWATCH_* do not reach the script's environment" {
    same_as_python --separate-stderr environ.py
    refute_output --regexp '(^|
)(LD_PRELOAD|GLIBC_TUNABLES|MEMWATCH_[A-Z_]*)='
    # A user's own GLIBC_TUNABLES is kept as it was (memwatch adds a setting of its own).
    GLIBC_TUNABLES=glibc.malloc.tcache_count=5 same_as_python --separate-stderr environ.py
    assert_line "GLIBC_TUNABLES=glibc.malloc.tcache_count=5"
    # A user's own LD_PRELOAD is kept as it was.
    local lib
    lib=$("$MEMWATCH_PYTHON" -c 'import ctypes.util; print(ctypes.util.find_library("m"))')
    LD_PRELOAD=$lib same_as_python --separate-stderr environ.py
    assert_line "LD_PRELOAD=$lib"
    refute_output --partial "MEMWATCH_"
}

@test "a script that does not exist: one message, exit 2, nothing created" {
    run_memwatch -2 trace x.py
    assert_output "memwatch: cannot open 'x.py': No such file or directory"
    run ls -A
    refute_output --partial ".db"
    run_memwatch -2 trace -o t.db missing/x.py
    assert_output "memwatch: cannot open 'missing/x.py': No such file or directory"
    [ ! -e t.db ]
}
