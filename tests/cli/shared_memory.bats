# Shared memory watched in every traced process that maps it (issue 16, item 2): a block
# one process watches is watched by the others that map it, by name or through fork, at
# any address; each write is recorded once, named after the process, thread and line that
# made it, with its exact bytes; the trace's replay equals the block's final contents.

load common
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    db="$BATS_TEST_TMPDIR/t.db"
    script="$BATS_TEST_TMPDIR/script.py"
    final="$BATS_TEST_TMPDIR/final.bin"
}

q() {
    sqlite3 "$db" "$1"
}

# The block's bytes after its last change, rebuilt from the trace, as hex.
replayed() {
    "$MEMWATCH" query "$db" --format csv --sql "SELECT hex(mw_value(max(seq))) FROM changes" |
        tail -1 | tr -d '"\r'
}

# Two pool workers write alternate bytes of the same pages of a block they attach by name;
# the parent watched it before starting them.
interleaved_script() {
    cat > "$script" <<'PY'
import os, sys, multiprocessing as mp
from multiprocessing import shared_memory
import memwatch

N = 3000

def worker(args):
    name, k = args
    shm = shared_memory.SharedMemory(name=name)
    b = shm.buf
    for i in range(k, N, 2):
        b[i] = (i % 250) + 1          # worker write
    del b
    shm.close()
    return os.getpid()

if __name__ == "__main__":
    shm = shared_memory.SharedMemory(create=True, size=N)
    memwatch.watch(shm.buf, "block")
    with mp.get_context(sys.argv[1]).Pool(2) as pool:
        pids = pool.map(worker, [(shm.name, 0), (shm.name, 1)], chunksize=1)
    memwatch.check()
    open(sys.argv[2], "wb").write(bytes(shm.buf))
    print(*pids)
    memwatch.unwatch("block")
    shm.close()
    shm.unlink()
PY
}

# workers_write_by_name METHOD: the interleaved script under the start method METHOD.
workers_write_by_name() {
    interleaved_script
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script" "$1" "$final"
    read -r even odd <<<"$output"
    assert_equal "$(q "SELECT count(*) FROM changes")" 3000
    # Each write is its own one-byte change, at the worker's line, by the worker that made it.
    assert_equal "$(q "SELECT count(*) FROM changes WHERE length = 1 AND line = 12 AND function = 'worker'
                       AND pid = CASE offset % 2 WHEN 0 THEN $even ELSE $odd END
                       AND hex(new) = printf('%02X', offset % 250 + 1) AND hex(old) = '00'")" 3000
    assert_equal "$(replayed)" "$(od -An -v -tx1 "$final" | tr -d ' \n' | tr a-f A-F)"
}

@test "fork: two pool workers attach a watched block by name and write the same pages: every write once, named after its process" {
    workers_write_by_name fork
}

@test "spawn: two pool workers attach a watched block by name and write the same pages: every write once, named after its process" {
    workers_write_by_name spawn
}

@test "forkserver: two pool workers attach a watched block by name and write the same pages: every write once, named after its process" {
    workers_write_by_name forkserver
}

@test "a worker that mapped the block before the parent watched it starts watching it" {
    cat > "$script" <<'PY'
import multiprocessing as mp, sys
from multiprocessing import shared_memory
import memwatch

def worker(name, mapped, watched):
    shm = shared_memory.SharedMemory(name=name)
    mapped.set()
    watched.wait()
    memwatch.check()                  # a process adopts new watches before each check
    shm.buf[5] = 55                   # worker write
    shm.close()

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    shm = shared_memory.SharedMemory(create=True, size=4096)
    mapped, watched = ctx.Event(), ctx.Event()
    p = ctx.Process(target=worker, args=(shm.name, mapped, watched))
    p.start()
    mapped.wait()
    memwatch.watch(shm.buf, "late")
    watched.set()
    p.join()
    memwatch.check()
    print(p.pid)
    memwatch.unwatch("late")
    shm.close()
    shm.unlink()
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    assert_equal "$(q "SELECT pid || ':' || line || ':' || offset || ':' || hex(new) FROM changes")" "$output:10:5:37"
}

@test "the parent's unwatch ends the watch everywhere, in adopters and fork children alike; a worker's exit ends nothing" {
    cat > "$script" <<'PY'
import multiprocessing as mp
from multiprocessing import shared_memory
import memwatch

def write(name, at, value):
    shm = shared_memory.SharedMemory(name=name)
    shm.buf[at] = value
    shm.close()

def write_later(buf, unwatched, at, value):
    unwatched.wait()
    memwatch.check()                  # a process lets retracted watches go before each check
    buf[at] = value

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    shm = shared_memory.SharedMemory(create=True, size=64)
    memwatch.watch(shm.buf, "b")
    unwatched = ctx.Event()
    inheriting = ctx.Process(target=write_later, args=(shm.buf, unwatched, 4, 44))
    inheriting.start()
    p = ctx.Process(target=write, args=(shm.name, 1, 11)); p.start(); p.join()
    shm.buf[2] = 22
    memwatch.unwatch("b")
    unwatched.set()
    p = ctx.Process(target=write, args=(shm.name, 3, 33)); p.start(); p.join()
    inheriting.join()
    print(bytes(shm.buf[:5]).hex())
    shm.close()
    shm.unlink()
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script"
    assert_output "000b16212c"
    assert_equal "$(q "SELECT group_concat(offset || '=' || hex(new), ' ') FROM (SELECT * FROM changes ORDER BY seq)")" "1=0B 2=16"
    # Unwatched once, by the parent, after its own write.
    assert_equal "$(q "SELECT count(*) FROM objects WHERE unwatched_ns IS NOT NULL
                       AND unwatched_ns >= (SELECT max(time_ns) FROM changes)")" 1
}

@test "a subprocess running sys.executable writes a file-backed mmap the parent watches: its bytes, process and line" {
    cat > "$BATS_TEST_TMPDIR/child.py" <<'PY'
import mmap, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 8192)
    m[4100:4105] = b"hello"           # child write
    m.close()
PY
    cat > "$script" <<'PY'
import mmap, subprocess, sys
import memwatch
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(bytes(8192))
f = open(path, "r+b")
m = mmap.mmap(f.fileno(), 8192)
memwatch.watch(m, "file")
child = subprocess.run([sys.executable, sys.argv[2], path])
m[0] = 1                              # parent write
memwatch.check()
print(child.returncode)
memwatch.unwatch("file")
m.close()
PY
    run_memwatch -0 --separate-stderr trace -f -o "$db" "$script" "$BATS_TEST_TMPDIR/data.bin" "$BATS_TEST_TMPDIR/child.py"
    assert_output "0"
    assert_equal "$(q "SELECT group_concat(p.root || ':' || c.line || ':' || c.offset || ':' || hex(c.new), ' ')
                       FROM (SELECT * FROM changes ORDER BY seq) c JOIN processes p ON p.pid = c.pid")" \
        "0:4:4100:68656C6C6F 1:10:0:01"
    assert_equal "$(replayed)" "$(od -An -v -tx1 "$BATS_TEST_TMPDIR/data.bin" | tr -d ' \n' | tr a-f A-F)"
}
