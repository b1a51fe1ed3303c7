# The channel from every traced process to the trace, and the processes of a run: the
# script closing descriptors (issue 14 item 6), what cannot be delivered counted, the
# processes table, query --pid, --no-follow.

load common
load 'helpers/uffd'
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    db="$BATS_TEST_TMPDIR/t.db"
    script="$BATS_TEST_TMPDIR/script.py"
}

q() {
    sqlite3 "$db" "$1"
}

# memwatch's descriptors (the channel's socket, the userfaultfd context) stay open under
# the script's close(), close_range() and dup2(); the channel also reconnects when one is
# closed by other means.
closerange_script() {
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
}

@test "os.closerange(3, 4096) in the script: later changes are still recorded (uffd)" {
    closerange_script
    run_memwatch -0 --separate-stderr trace --backend uffd -f -o "$db" "$script"
    assert_output "done"
    assert_equal "$(q "SELECT group_concat(line || ':' || offset || ':' || hex(old) || '>' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" \
        "4:0:00>01 6:1:00>02 8:2:00>03"
    [[ $stderr == *"1 object watched, 3 changes recorded"* ]]
}

@test "dup2 of the script's own file over every descriptor: memwatch's move, the script's calls succeed" {
    cat > "$script" <<'PY'
import os, memwatch
b = bytearray(16)
memwatch.watch(b, "b")
b[0] = 1
fd = os.open(os.devnull, os.O_WRONLY)
for target in range(3, 64):
    if target != fd:
        os.dup2(fd, target)       # each number now names /dev/null
        os.close(target)
b[1] = 2
print("done")
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    assert_output "done"
    assert_equal "$(q "SELECT group_concat(line || ':' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" "4:01 10:02"
}

@test "os.closerange(3, 4096) in the script: later changes are still recorded, with their lines and bytes" {
    closerange_script
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
import ctypes
b = bytearray(16)
memwatch.watch(b, "b")
b[0] = 1
# Raw close system calls, which no C library function sees: the channel's socket goes.
for fd in range(3, 256):
    ctypes.CDLL(None).syscall(3, fd)          # SYS_close on x86-64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))
b[1] = 2
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
b[2] = 3
print("done")
PY
    run_memwatch -0 --separate-stderr trace --backend mprotect -f -o "$db" "$script"
    assert_output "done"
    assert_equal "$(q "SELECT group_concat(line || ':' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" "5:01 13:03"
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

# replay_hex TAG SIZE: the object's bytes rebuilt from the trace (zeros, then every
# change's new bytes in seq order), in hex.
replay_hex() {
    python3 - "$db" "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
value = bytearray(int(sys.argv[3]))
for off, new in db.execute("SELECT offset, new FROM change_ranges WHERE tag = ? ORDER BY seq, offset",
                           (sys.argv[2],)):
    value[off:off + len(new)] = new
print(value.hex())
PY
}

@test "a fork child writing an inherited MAP_SHARED watched buffer: its change is the child's, the parent's the parent's" {
    cat > "$script" <<'PY'
import mmap, os, memwatch
m = mmap.mmap(-1, 4096)
memwatch.watch(m, "shared")
m[0:4] = b"PPPP"
pid = os.fork()
if pid == 0:
    m[8:12] = b"CCCC"
    os._exit(7)
_, status = os.waitpid(pid, 0)
m[16:18] = b"QQ"
print(pid, os.waitstatus_to_exitcode(status), m[:32].hex())
PY
    for backend in uffd mprotect; do
        # (a kernel without userfaultfd write-protection runs mprotect only)
        [ "$backend" = uffd ] && uffd_unavailable && continue
        run_memwatch -0 --separate-stderr trace --backend "$backend" -f -o "$db" "$script"
        read -r child status final <<<"$output"
        assert_equal "$status" 7
        parent=$(q "SELECT pid FROM processes WHERE root = 1")
        assert_equal "$(q "SELECT group_concat(pid || ':' || line || ':' || offset || ':' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" \
            "$parent:4:0:50505050 $child:7:8:43434343 $parent:10:16:5151"
        assert_equal "$(q "SELECT ppid, forked, exit_status FROM processes WHERE pid = $child")" "$parent|1|7"
        # the child's only thread is its main thread, by name (threading keeps the parent's id)
        assert_equal "$(q "SELECT DISTINCT thread_name FROM changes")" "MainThread"
        assert_equal "$(replay_hex shared 32)" "$final"
        # query --pid: only the child's change, and the pid column names it
        run_memwatch -0 query --pid "$child" -f csv "$db"
        assert_equal "${#lines[@]}" 2
        assert_line --index 1 --partial ",8,4,00000000,43434343,1,$script,7,<module>,"
        assert_line --index 1 --regexp ",$child\$"
        run_memwatch -0 query -s "$db"
        assert_line --regexp "^process $child \\(parent $parent\\): 1 change, exit status 7 "
    done
}

@test "a fork while the sender is busy: the records the parent encodes around it all reach the trace" {
    # A large change keeps the sender busy; a new watch's record waits in the channel's
    # buffer when the script forks. The buffer the parent encodes into next must be a new
    # one (a freed one reused made a double free).
    cat > "$script" <<'PY'
import os, memwatch
big = bytearray(16 << 20)
memwatch.watch(big, "big")
kept = []
for k in range(1, 21):
    big[:] = bytes([k]) * len(big)
    memwatch.check()
    b = bytearray(64)
    memwatch.watch(b, f"small{k}")
    kept.append(b)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    b[1] = k
    memwatch.check()
    os.waitpid(pid, 0)
print("done")
PY
    run_memwatch -0 --separate-stderr trace -q --check=manual -f -o "$db" "$script"
    assert_output "done"
    # nothing on stderr, as under python3: no error, and no warning from os.fork() (3.12+)
    # that the process is multi-threaded (memwatch's sender thread stops for the fork)
    [ -z "$stderr" ] || { echo "$stderr"; false; }
    assert_equal "$(q "SELECT count(*) FROM changes")" 40
    assert_equal "$(q "SELECT count(*) FROM objects")" 21
    # the process's own statistics, its last record, came too
    assert_equal "$(q "SELECT checks IS NOT NULL FROM run")" 1
}

@test "os.fork() with memwatch's threads running: no warning that python3 would not give, and checks go on" {
    # Python 3.12+ warns at os.fork() in a multi-threaded process; under python3 this
    # script has one thread. memwatch's check thread and sender stop for the fork and
    # start again after it: in interval mode only the check thread finds the last write.
    cat > "$script" <<'PY'
import os, time, memwatch
big = bytearray(16 << 20)
memwatch.watch(big, "big")
for k in range(3):
    big[:] = bytes([k + 1]) * len(big)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
before = memwatch.stats()["checks"]
big[0] = 9
time.sleep(0.5)
print(memwatch.stats()["checks"] > before)
PY
    for mode in interval:20 line; do
        run_memwatch -0 --separate-stderr trace -q --check="$mode" -f -o "$db" "$script"
        assert_output "True"
        [ -z "$stderr" ] || { echo "$mode: $stderr"; false; }
        # the last write is in the trace, with its byte
        run_memwatch -0 query -f csv --sql "SELECT hex(substr(mw_new(max(seq), 0), 1, 1)) AS b FROM changes" "$db"
        assert_equal "${lines[1]}" 09
    done
    # line by line, each write is its own change
    assert_equal "$(q "SELECT count(*) FROM changes")" 4
}

@test "after os.fork() in a fork child, or in a thread while the main thread waits, the check thread checks on" {
    # interval mode: only the check thread finds the write made before the sleep
    cat > "$script" <<'PY'
import os, threading, time, memwatch
def checks_while_asleep(tag):
    b = bytearray(4096)
    memwatch.watch(b, tag)
    before = memwatch.stats()["checks"]
    b[0] = 1
    time.sleep(0.5)
    return memwatch.stats()["checks"] > before
pid = os.fork()
if pid == 0:
    grandchild = os.fork()          # a fork in the child
    if grandchild == 0:
        os._exit(0)
    os.waitpid(grandchild, 0)
    os._exit(0 if checks_while_asleep("child") else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
result = []
def forks_then_writes():
    p = os.fork()
    if p == 0:
        os._exit(0)
    os.waitpid(p, 0)
    result.append(checks_while_asleep("thread"))
t = threading.Thread(target=forks_then_writes)
t.start()
t.join()                            # the main thread waits meanwhile
print("thread", result)
PY
    run_memwatch -0 trace -q --check=interval:20 -f -o "$db" "$script"
    assert_line "child 0"
    assert_line "thread [True]"
}

@test "a fork child resizes and frees a bytearray the parent watched, as under python3" {
    cat > "$script" <<'PY'
import os, memwatch
b = bytearray(b"abcdefgh")
memwatch.watch(b, "b")
pid = os.fork()
if pid == 0:
    b.extend(b"ijkl")
    b[0:1] = b"X"
    del b[2:]
    print("child", bytes(b), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
b[1] = ord("Y")
print("parent", bytes(b), status)
PY
    # Under python3, with a memwatch module that does nothing.
    mkdir -p "$BATS_TEST_TMPDIR/stub"
    echo 'def watch(obj, tag): pass' > "$BATS_TEST_TMPDIR/stub/memwatch.py"
    run -0 env PYTHONPATH="$BATS_TEST_TMPDIR/stub" "${MEMWATCH_PYTHON:-python3}" "$script"
    expected=$output
    [[ $expected == *"child b'Xb'"* ]]
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    assert_equal "$output" "$expected"
    # The child's copy was private: only the parent's write is in the trace.
    assert_equal "$(q "SELECT count(*) || ':' || hex(new) FROM changes")" "1:59"
    assert_equal "$(q "SELECT pid FROM changes")" "$(q "SELECT pid FROM processes WHERE root = 1")"
}

@test "a fork while another thread's check waits for the channel: the child's own checks and its exit do not hang" {
    # The writer thread's changes are large, so its check waits (GIL let go) for the
    # channel to drain, and the main thread forks meanwhile: the child inherits that check
    # as under way, with no thread to end it.
    cat > "$script" <<'PY'
import os, threading, time, memwatch
big = bytearray(16 << 20)
memwatch.watch(big, "big")
stop = False
def writer():
    v = 0
    while not stop:
        v = (v + 1) % 256
        big[::4096] = bytes([v]) * len(big[::4096])
        big[0] = v
t = threading.Thread(target=writer)
t.start()
hung = 0
for i in range(20):
    pid = os.fork()
    if pid == 0:
        memwatch.check()
        os._exit(0)
    deadline = time.time() + 5
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            hung += 1
            break
        time.sleep(0.01)
stop = True
t.join()
print("hung children:", hung)
PY
    run_memwatch -0 --separate-stderr trace -q -f -o "$db" "$script"
    assert_output "hung children: 0"
    assert_equal "$(q "SELECT count(*) FROM processes WHERE forked = 1")" 20
}

@test "a multiprocessing Pool (fork) writing a watched SharedMemory block: each change names its worker, line and bytes" {
    cat > "$script" <<'PY'
import multiprocessing as mp, os, memwatch
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=4 * 4096)
memwatch.watch(shm.buf, "block")

def work(i):
    shm.buf[i * 4096:i * 4096 + 4] = bytes([65 + i]) * 4   # each task its own page
    return i, os.getpid()

if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        done = pool.map(work, range(4))
    print(" ".join(f"{i}:{pid}" for i, pid in done))
    print(bytes(shm.buf).hex())
    memwatch.unwatch("block")
    shm.close()
    shm.unlink()
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    final=${lines[1]}
    # (how a worker's writes group into changes depends on the interpreter's line events;
    # which process and line wrote each byte, and the bytes, do not)
    for pair in ${lines[0]}; do
        i=${pair%%:*} pid=${pair##*:}
        assert_equal "$(q "SELECT c.pid || ':' || r.line || ':' || r.function || ':' ||
                              hex(substr(r.new, $((i * 4096)) - r.offset + 1, 4))
                           FROM change_ranges r JOIN changes c USING (seq)
                           WHERE r.tag = 'block' AND r.offset <= $((i * 4096))
                             AND r.offset + r.length >= $((i * 4096 + 4))")" \
            "$pid:7:work:$(printf '%02X%02X%02X%02X' $((65 + i)) $((65 + i)) $((65 + i)) $((65 + i)))"
        assert_equal "$(q "SELECT forked FROM processes WHERE pid = $pid")" 1
    done
    assert_equal "$(q "SELECT count(*) FROM changes WHERE pid = (SELECT pid FROM processes WHERE root = 1)")" 0
    assert_equal "$(replay_hex block 16384)" "$final"
}

@test "--no-follow: a fork child runs untouched, its watch() works, nothing of it is recorded" {
    cat > "$script" <<'PY'
import mmap, os, memwatch
m = mmap.mmap(-1, 4096)
memwatch.watch(m, "shared")
m[0] = 1
pid = os.fork()
if pid == 0:
    m[8] = 2
    own = bytearray(4)
    memwatch.watch(own, "own")
    own[0] = 3
    memwatch.check()
    print("child ok", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print(m[:9].hex())
PY
    run_memwatch -0 --separate-stderr trace --no-follow -f -o "$db" "$script"
    assert_line --index 0 "child ok"
    assert_line --index 1 "010000000000000002"
    assert_equal "$(q "SELECT count(*) FROM processes")" 1
    assert_equal "$(q "SELECT group_concat(offset || ':' || hex(new)) FROM changes")" "0:01"
    assert_equal "$(q "SELECT value FROM meta WHERE key = 'follow'")" 0
}

@test "a fork child that writes shared memory and then execs the interpreter: one row, its last image, both changes its own" {
    child="$BATS_TEST_TMPDIR/child.py"
    cat > "$child" <<'PY'
import memwatch
b = bytearray(4)
memwatch.watch(b, "exec'd")
b[1] = 0x45
PY
    cat > "$script" <<PY
import mmap, os, sys, memwatch
m = mmap.mmap(-1, 4096)
memwatch.watch(m, "shared")
m[0] = 1
pid = os.fork()
if pid == 0:
    m[8] = 0x46
    os.execv(sys.executable, [sys.executable, "$child", "arg"])
_, status = os.waitpid(pid, 0)
m[16] = 3
print(pid, os.waitstatus_to_exitcode(status))
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    read -r child_pid status <<<"$output"
    assert_equal "$status" 0
    parent=$(q "SELECT pid FROM processes WHERE root = 1")
    assert_equal "$(q "SELECT group_concat(c.pid || ':' || o.tag || ':' || c.line || ':' || hex(c.new), ' ')
                       FROM (SELECT * FROM changes ORDER BY seq) c JOIN objects o ON o.id = c.object_id")" \
        "$parent:shared:4:01 $child_pid:shared:7:46 $child_pid:exec'd:4:45 $parent:shared:10:03"
    # one row for the pid: the new image, with its command line; not a fork child any more
    assert_equal "$(q "SELECT count(*) FROM processes")" 2
    assert_equal "$(q "SELECT ppid || ':' || forked || traced || ':' || json_extract(argv, '\$[#-1]') FROM processes WHERE pid = $child_pid")" \
        "$parent:01:arg"
    run_memwatch -0 query --pid "$child_pid" -f csv "$db"
    assert_equal "${#lines[@]}" 3
}

@test "a process that gets no run shared memory in reply to its hello runs untraced and says so" {
    local py=${MEMWATCH_PYTHON:-/usr/bin/python3} minor lib
    minor=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    lib="${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}/libmemwatch-inject-$minor.so"
    [[ -f $lib ]]
    # A stand-in for memwatch trace that answers the hello without the memfd.
    cat > "$script" <<'PY'
import os, socket, struct, subprocess, sys
py, lib = sys.argv[1], sys.argv[2]
name = f"memwatch-test-{os.getpid()}"
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("\0" + name)
srv.listen(1)
child = subprocess.Popen(
    [py, "-c", "import memwatch; b = bytearray(8); memwatch.watch(b, 'b'); b[0] = 1; "
               "print('backend', memwatch.stats()['backend'])"],
    env=dict(os.environ, LD_PRELOAD=lib, MEMWATCH_TRACE_SOCKET=name), stdout=subprocess.PIPE, text=True)
conn, _ = srv.accept()
f = conn.makefile("rb")

def hello_flags():
    (size,) = struct.unpack("<I", f.read(4))
    payload = f.read(size)
    assert payload[0] == 1, payload[0]          # MW_REC_HELLO
    at = 1
    for _ in range(2):                          # python version, backend
        (n,) = struct.unpack_from("<I", payload, at)
        at += 4 + (0 if n == 0xFFFFFFFF else n)
    at += 32                                    # pid, page size, ppid, start
    (argv_len,) = struct.unpack_from("<I", payload, at)
    at += 4 + argv_len
    return struct.unpack_from("<I", payload, at)[0]

first = hello_flags()
conn.send(b"x")                                 # a reply with nothing attached
second = hello_flags()
out, _ = child.communicate(timeout=60)
print(first, second, out.strip(), child.returncode)
PY
    run -0 "$py" "$script" "$py" "$lib"
    # its first hello, then a second one saying it runs untraced (MW_HELLO_UNTRACED = 4);
    # the script ran, watching nothing
    assert_output "0 4 backend None 0"
}
