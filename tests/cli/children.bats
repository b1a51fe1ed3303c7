#!/usr/bin/env bats
# Children of a traced script (issue 14 item 4, issue 16 item 1): a script that imports
# memwatch at the top starts Python children (multiprocessing's spawn and forkserver,
# subprocess with sys.executable) and other programs. Each child must run exactly as it
# does when the script runs under python3 — same output, argv, environment and exit
# status. The Python children are traced into the script's trace (their changes name
# their process, line and bytes), or, under --no-follow, import memwatch untraced (watching
# records nothing there). Programs memwatch does not trace run untouched, and the trace
# has a row saying they ran untraced.
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

q() {
    sqlite3 "$DB" "$1"
}

# same_as_python [--no-follow] SCRIPT ARGS...: the script under python3 (with the stand-in
# module) and under `memwatch trace`: same stdout (but for the lines where the children
# say what memwatch did for them, "child-memwatch: ..."), same stderr, same exit status,
# and a trace that is whole.
same_as_python() {
    local opts=()
    [[ $1 == --no-follow ]] && opts+=("$1") && shift
    run --separate-stderr env PYTHONPATH="$STUB" "$MEMWATCH_PYTHON" "$@"
    local py_status=$status py_output py_stderr=$stderr
    py_output=$(grep -v '^child-memwatch:' <<<"$output")
    rm -f "$DB"
    run --separate-stderr timeout 120 "$MEMWATCH" trace -q "${opts[@]}" --python "$MEMWATCH_PYTHON" -o "$DB" "$@"
    assert_equal "$(grep -v '^child-memwatch:' <<<"$output")" "$py_output"
    assert_equal "$stderr" "$py_stderr"
    assert_equal "$status" "$py_status"
    assert_equal "$(q "PRAGMA integrity_check")" ok
}

# The child: watches an object of its own, writes it (line 7, in work), and reports its
# argv and whether anything of memwatch's is in its environment, then what memwatch did
# for it; then exits 3.
write_child_module() {
    cat > "$WORK/child.py" <<'PY'
import os, sys
import memwatch

def work(q=None):
    data = bytearray(64)
    memwatch.watch(data, "child")
    data[0:2] = b"\x01\x02"
    memwatch.check()
    s = memwatch.stats()
    leaked = sorted(k for k in os.environ if k.startswith("MEMWATCH") or k == "LD_PRELOAD")
    lines = [f"child: argv={sys.argv[1:]} env={leaked}",
             f"child-memwatch: pid={os.getpid()} tracked={s['tracked_objects']} traced={s['backend'] is not None}"]
    if q is not None:
        q.put(lines)
    else:
        print("\n".join(lines), flush=True)
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
    print("\n".join(q.get(timeout=60)))
    p.join()
    print("exit code", p.exitcode)
    data[2] = 3
PY
}

# child_pid: the pid the child printed (in a followed run, it is traced).
child_pid() {
    local line
    line=$(grep '^child-memwatch:' <<<"$output")
    [[ $line == *"tracked=1 traced=True" ]] || fail "the child is not traced: $line"
    line=${line#*pid=}
    echo "${line%% *}"
}

# assert_traced_child PID PPID-QUERY: the child's change is in the trace with its pid, line,
# function and exact bytes, between the parent's two (seqs are the run's, in order); its
# processes row is an exec'd child of the process PPID-QUERY names.
assert_traced_child() {
    local pid=$1 root
    root=$(q "SELECT pid FROM processes WHERE root = 1")
    assert_equal "$(q "SELECT group_concat(c.pid || ':' || o.tag || ':' || c.line || ':' || c.function || ':' || c.offset || ':' || hex(c.old) || '>' || hex(c.new), ' ')
                       FROM (SELECT * FROM changes ORDER BY seq) c JOIN objects o ON o.id = c.object_id")" \
        "$root:parent:8:<module>:1:00>02 $pid:child:7:work:0:0000>0102 $root:parent:16:<module>:2:00>03"
    assert_equal "$(q "SELECT ppid = ($2), forked, traced FROM processes WHERE pid = $pid")" "1|0|1"
    # each object once, with its own id, whatever process watched it
    assert_equal "$(q "SELECT group_concat(tag, ',') FROM (SELECT tag FROM objects ORDER BY id)")" "parent,child"
}

@test "multiprocessing spawn: the child is traced into the same trace, and runs as under python3" {
    start_method_script spawn
    same_as_python parent.py one two
    assert_line "child: argv=['one', 'two'] env=[]"
    assert_line "exit code 3"
    assert_traced_child "$(child_pid)" "SELECT pid FROM processes WHERE root = 1"
    # multiprocessing's resource tracker is a Python child of the script too
    assert_equal "$(q "SELECT count(*) FROM processes WHERE argv LIKE '%resource_tracker%' AND traced = 1")" 1
}

@test "multiprocessing forkserver: the child is traced into the same trace, and runs as under python3" {
    start_method_script forkserver
    same_as_python parent.py one two
    assert_line "child: argv=['one', 'two'] env=[]"
    assert_line "exit code 3"
    # the server is an exec'd child of the script; the child is its fork child
    local pid server
    pid=$(child_pid)
    server=$(q "SELECT pid FROM processes WHERE argv LIKE '%forkserver import main%' AND forked = 0")
    assert_equal "$(q "SELECT ppid, forked, traced, exit_status FROM processes WHERE pid = $pid")" "$server|1|1|3"
    assert_equal "$(q "SELECT ppid = (SELECT pid FROM processes WHERE root = 1), traced FROM processes WHERE pid = $server")" "1|1"
    run -0 "$MEMWATCH" query --pid "$pid" -f csv "$DB"
    assert_equal "${#lines[@]}" 2
    assert_line --index 1 --partial ",0,2,0000,0102,1,"
    assert_line --index 1 --partial "/child.py,7,work,"
}

@test "subprocess with sys.executable: the child is traced, with the same argv, environment and status" {
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
    assert_line "child: argv=['a b', 'c'] env=[]"
    assert_line "x None"
    local pid
    pid=$(child_pid)
    assert_equal "$(q "SELECT group_concat(c.pid || ':' || c.line || ':' || c.function || ':' || hex(c.new), ' ')
                       FROM (SELECT * FROM changes ORDER BY seq) c")" \
        "$(q "SELECT pid FROM processes WHERE root = 1"):6:<module>:02 $pid:7:work:0102 $(q "SELECT pid FROM processes WHERE root = 1"):14:<module>:03"
    assert_equal "$(q "SELECT json_extract(argv, '\$[#-2]') || '|' || json_extract(argv, '\$[#-1]') || '|' || forked || traced FROM processes WHERE pid = $pid")" "a b|c|01"
    # both children are processes of the run, the second one watched nothing
    assert_equal "$(q "SELECT count(*) FROM processes WHERE root = 0 AND traced = 1 AND forked = 0")" 2
}

@test "a console script whose #! line names the interpreter is traced; one started through env runs untouched" {
    write_child_module
    printf '#!%s\nimport child\nchild.work()\n' "$MEMWATCH_PYTHON" > "$WORK/tool"
    printf '#!/usr/bin/env %s\nimport os, sys\nprint("plain", sys.argv[1:], "LD_PRELOAD" in os.environ)\n' "$MEMWATCH_PYTHON" > "$WORK/envtool"
    chmod +x "$WORK/tool" "$WORK/envtool"
    cat > "$WORK/parent.py" <<'PY'
import subprocess
import memwatch
data = bytearray(64)
memwatch.watch(data, "parent")
for tool in ("./tool", "./envtool"):
    r = subprocess.run([tool, "arg"], capture_output=True, text=True)
    print(tool, r.returncode)
    print("\n".join(r.stdout.splitlines()))
PY
    same_as_python parent.py
    # the script is the interpreter's child: traced; env is another program: untouched,
    # and so is the interpreter it starts (as under python3, without memwatch)
    assert_line "./tool 3"
    assert_line --regexp "^child-memwatch: pid=[0-9]+ tracked=1 traced=True\$"
    assert_line "./envtool 0"
    assert_line "plain ['arg'] False"
    assert_equal "$(q "SELECT group_concat(json_extract(argv, '\$[#-2]') || ':' || traced, ' ') FROM (SELECT * FROM processes WHERE root = 0 ORDER BY start_unix_ns)")" \
        "./tool:1 ./envtool:0"
    assert_equal "$(q "SELECT count(*) || ':' || min(line) || ':' || min(function) FROM changes WHERE pid != (SELECT pid FROM processes WHERE root = 1)")" "1:7:work"
}

@test "--no-follow: spawn, forkserver and subprocess children run as under python3, untraced" {
    local method
    for method in spawn forkserver; do
        start_method_script "$method"
        same_as_python --no-follow parent.py one two
        assert_line "child: argv=['one', 'two'] env=[]"
        assert_line --regexp "^child-memwatch: pid=[0-9]+ tracked=0 traced=False\$"
        assert_equal "$(q "SELECT group_concat(tag) FROM objects")" parent
        assert_equal "$(q "SELECT count(*) FROM processes")" 1
    done
    cat > "$WORK/parent.py" <<'PY'
import subprocess, sys
import memwatch
import child
data = bytearray(64)
memwatch.watch(data, "parent")
r = subprocess.run([sys.executable, "-c", "import child; child.work()", "x"])
print("exit code", r.returncode)
subprocess.run(["ls", "/"], stdout=subprocess.DEVNULL)
PY
    same_as_python --no-follow parent.py
    assert_line "child: argv=['x'] env=[]"
    assert_line --regexp "^child-memwatch: pid=[0-9]+ tracked=0 traced=False\$"
    assert_equal "$(q "SELECT count(*) FROM processes")" 1
    assert_equal "$(q "SELECT count(*) FROM changes")" 0
}

@test "numpy arrays watched in spawn, forkserver and subprocess children: each change is in the trace with its process, line and bytes" {
    require_module numpy python3-numpy
    cat > "$WORK/child.py" <<'PY'
import os, sys
import numpy as np
import memwatch

def work(q=None):
    a = np.zeros(8, dtype=np.uint8)
    memwatch.watch(a, "child")
    a[3:5] = (9, 10)
    memwatch.unwatch("child")
    if q is not None:
        q.put(os.getpid())
    else:
        print(os.getpid(), flush=True)

if __name__ == "__main__":
    work()
PY
    cat > "$WORK/parent.py" <<'PY'
import multiprocessing, subprocess, sys
import memwatch
import child
if __name__ == "__main__":
    pids = []
    for method in ("spawn", "forkserver"):
        ctx = multiprocessing.get_context(method)
        q = ctx.Queue()
        p = ctx.Process(target=child.work, args=(q,))
        p.start()
        pids.append(q.get(timeout=60))
        p.join()
    r = subprocess.run([sys.executable, "child.py"], capture_output=True, text=True)
    pids.append(int(r.stdout))
    print(" ".join(map(str, pids)))
PY
    run -0 --separate-stderr timeout 120 "$MEMWATCH" trace -q --python "$MEMWATCH_PYTHON" -o "$DB" parent.py
    local pid
    for pid in $output; do
        assert_equal "$(q "SELECT group_concat(c.line || ':' || c.function || ':' || c.offset || ':' || hex(c.old) || '>' || hex(c.new) || ':' || o.tag, ' ')
                           FROM changes c JOIN objects o ON o.id = c.object_id WHERE c.pid = $pid")" \
            "8:work:3:0000>090A:child"
    done
    # ids and seqs are the run's: one object and one change per child, each its own
    assert_equal "$(q "SELECT count(DISTINCT object_id) || ' ' || count(DISTINCT seq) || ' ' || count(DISTINCT pid) FROM changes")" "3 3 3"
    assert_equal "$(q "SELECT count(*) FROM objects")" 3
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
    # the trace says they ran, untraced, as children of the script (os.system's shell is
    # started inside the C library, where memwatch does not see it)
    assert_equal "$(q "SELECT group_concat(json_extract(argv, '\$[0]') || ':' || traced || forked || (ppid = (SELECT pid FROM processes WHERE root = 1)), ' ')
                       FROM (SELECT * FROM processes WHERE root = 0 ORDER BY start_unix_ns)")" "sh:001 ls:001"
    assert_equal "$(q "SELECT group_concat(tag) FROM objects")" parent
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
    # the trace has both, untraced
    assert_equal "$(q "SELECT count(*) FROM processes WHERE json_extract(argv, '\$[0]') = '$other' AND traced = 0")" 2
    assert_equal "$(q "SELECT group_concat(tag) FROM objects")" parent
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
