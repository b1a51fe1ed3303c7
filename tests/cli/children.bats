#!/usr/bin/env bats
# Children of a traced script (issue 14, item 4): a script that imports memwatch at the top
# starts Python children (multiprocessing's spawn and forkserver, subprocess with
# sys.executable) and other programs. Each child must run exactly as it does when the
# script runs under python3 — same output, argv, environment and exit status — while the
# Python children import memwatch (untraced there: watching records nothing) and nothing
# they do reaches the parent's trace.
#
# The reference run is python3 itself, with a stand-in `memwatch` module on PYTHONPATH
# (plain python3 has none): it prints what the real module's untraced API returns.
# ctest runs this file once per supported interpreter (MEMWATCH_PYTHON).

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    : "${MEMWATCH_PYTHON:?set MEMWATCH_PYTHON to the interpreter memwatch traces in}"
    local var
    for var in $(compgen -e); do
        if [[ $var == PYTHON* || $var == LD_PRELOAD ]]; then
            unset "$var"
        elif [[ $var == MEMWATCH* ]]; then
            export -n "$var"
        fi
    done
    DB="$BATS_TEST_TMPDIR/t.db"
    WORK="$BATS_TEST_TMPDIR/work"
    STUB="$BATS_TEST_TMPDIR/stub"
    mkdir -p "$WORK" "$STUB"
    cat > "$STUB/memwatch.py" <<'PY'
# What memwatch's API does in an untraced child, for the python3 reference run.
_tags = set()
def watch(obj, tag):
    _tags.add(tag)
def unwatch(tag):
    _tags.remove(tag)
def check():
    return 0
def stats():
    return {"tracked_objects": 0, "changes": 0, "backend": None}
PY
    cd "$WORK"
}

# same_as_python SCRIPT ARGS...: the script under python3 (with the stand-in module) and
# under `memwatch trace`: same stdout, same stderr, same exit status; the trace holds the
# parent's object only.
same_as_python() {
    run --separate-stderr env PYTHONPATH="$STUB" "$MEMWATCH_PYTHON" "$@"
    local py_status=$status py_output=$output py_stderr=$stderr
    rm -f "$DB"
    run --separate-stderr timeout 120 "$MEMWATCH" trace -q --python "$MEMWATCH_PYTHON" -o "$DB" "$@"
    assert_equal "$output" "$py_output"
    assert_equal "$stderr" "$py_stderr"
    assert_equal "$status" "$py_status"
    local in_trace
    in_trace=$(sqlite3 "$DB" "SELECT group_concat(tag) FROM objects; PRAGMA integrity_check")
    assert_equal "$in_trace" $'parent\nok'
}

# The child: watches an object of its own, writes it, and reports what memwatch says, its
# argv and whether anything of memwatch's is in its environment; then exits 3.
write_child_module() {
    cat > "$WORK/child.py" <<'PY'
import os, sys
import memwatch

def work(q=None):
    data = bytearray(64)
    memwatch.watch(data, "child")
    data[0] = 1
    found = memwatch.check()
    s = memwatch.stats()
    leaked = sorted(k for k in os.environ if k.startswith("MEMWATCH") or k == "LD_PRELOAD")
    line = f"child: found={found} tracked={s['tracked_objects']} backend={s['backend']} argv={sys.argv[1:]} env={leaked}"
    if q is not None:
        q.put(line)
    else:
        print(line, flush=True)
    memwatch.unwatch("child")
    sys.exit(3)
PY
}

start_method_script() {
    write_child_module
    cat > "$WORK/parent.py" <<PY
import multiprocessing, sys
import memwatch
import child

if __name__ == "__main__":
    data = bytearray(64)
    memwatch.watch(data, "parent")
    data[1] = 2
    ctx = multiprocessing.get_context("$1")
    q = ctx.Queue()
    p = ctx.Process(target=child.work, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join()
    print("exit code", p.exitcode)
    data[2] = 3
PY
}

@test "multiprocessing spawn: the child imports memwatch and runs as under python3" {
    start_method_script spawn
    same_as_python parent.py one two
    assert_line "child: found=0 tracked=0 backend=None argv=['one', 'two'] env=[]"
    assert_line "exit code 3"
}

@test "multiprocessing forkserver: the child imports memwatch and runs as under python3" {
    start_method_script forkserver
    same_as_python parent.py one two
    assert_line "child: found=0 tracked=0 backend=None argv=['one', 'two'] env=[]"
    assert_line "exit code 3"
}

@test "subprocess with sys.executable: the child imports memwatch, same argv, environment and status" {
    write_child_module
    cat > "$WORK/parent.py" <<'PY'
import os, subprocess, sys
import memwatch

data = bytearray(64)
memwatch.watch(data, "parent")
data[1] = 2
r = subprocess.run([sys.executable, "-c", "import child; child.work()", "a b", "c"])
print("exit code", r.returncode)
# The child's own environment, given explicitly, reaches it as given.
env = dict(os.environ, CHILD_VAR="x")
r = subprocess.run([sys.executable, "-c", "import os, memwatch; print(os.environ['CHILD_VAR'], os.environ.get('LD_PRELOAD'))"],
                   env=env)
print("exit code", r.returncode)
data[2] = 3
PY
    same_as_python parent.py
    assert_line "child: found=0 tracked=0 backend=None argv=['a b', 'c'] env=[]"
    assert_line "x None"
}

@test "a user's own LD_PRELOAD reaches Python children as it was" {
    lib=$("$MEMWATCH_PYTHON" -c 'import ctypes.util; print(ctypes.util.find_library("m"))')
    cat > "$WORK/parent.py" <<'PY'
import subprocess, sys
import memwatch
data = bytearray(64)
memwatch.watch(data, "parent")
subprocess.run([sys.executable, "-c", "import os, memwatch; print('child', os.environ.get('LD_PRELOAD'))"])
PY
    LD_PRELOAD=$lib same_as_python parent.py
    assert_output "child $lib"
}

@test "programs that are not Python run untouched, with the environment python3 gives them" {
    cat > "$WORK/parent.py" <<'PY'
import os, subprocess, sys
import memwatch
data = bytearray(64)
memwatch.watch(data, "parent")
# env(1) shows the whole environment a program gets (PYTHONPATH is the reference run's;
# _ is the command the test's shell ran last: env or memwatch).
r = subprocess.run(["sh", "-c", "env | grep -v '^PYTHONPATH=\\|^_=' | sort; exit 4"])
print("sh", r.returncode)
r = subprocess.run(["ls", os.path.dirname(os.path.abspath(__file__))])
print("ls", r.returncode)
os.system("echo via the shell; exit 5")
PY
    same_as_python parent.py
    assert_line "sh 4"
    assert_line "ls 0"
    refute_output --partial "MEMWATCH"
    refute_output --partial "LD_PRELOAD"
}

@test "a Python child of another interpreter runs as under python3 (memwatch is not given to it)" {
    local other="" py
    local mine
    mine=$("$MEMWATCH_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    IFS=: read -ra pythons <<<"${MEMWATCH_PYTHONS:-}"
    for py in "${pythons[@]}" /root/.pyenv/versions/*/bin/python3; do
        [[ -x $py ]] || continue
        if [[ $("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) != "$mine" ]]; then
            other=$py
            break
        fi
    done
    [[ -n $other ]] || skip "no interpreter of a version other than $mine is installed"
    cat > "$WORK/parent.py" <<PY
import subprocess
import memwatch
data = bytearray(64)
memwatch.watch(data, "parent")
r = subprocess.run(["$other", "-c", "import sys; print('other', sys.version_info[:2] != tuple(map(int, '$mine'.split('.'))))"])
print("exit code", r.returncode)
r = subprocess.run(["$other", "-I", "-c", "import memwatch"], capture_output=True, text=True)
print("import:", r.returncode, r.stderr.strip().splitlines()[-1])
PY
    same_as_python parent.py
    assert_line "other True"
    assert_line "import: 1 ModuleNotFoundError: No module named 'memwatch'"
}

@test "a library of another CPython version preloaded outside memwatch trace is silent and harmless" {
    local mine lib found=0
    mine=$("$MEMWATCH_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    for lib in "${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}"/libmemwatch-inject-3.*.so; do
        [[ -f $lib && $lib != *"-$mine.so" ]] || continue
        found=1
        run --separate-stderr env LD_PRELOAD="$lib" "$MEMWATCH_PYTHON" -c \
            'import os, sys; print(os.environ.get("LD_PRELOAD")); sys.exit(6)'
        assert_equal "$status" 6
        assert_equal "$output" "None"
        assert_equal "$stderr" ""
    done
    ((found)) || skip "memwatch is built for CPython $mine only"
}
