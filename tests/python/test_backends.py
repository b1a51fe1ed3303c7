"""Both detection backends, run side by side as `memwatch trace --backend NAME` children:
kernel writes into watched buffers (readinto, recv_into, os.readv, os.preadv, numpy out=)
succeed exactly as under python3 and are recorded; small watched objects sharing pages
with busy neighbours report only their own changes; many small objects each under their
own tag report exactly the changed ones; MEMWATCH_DISABLE_UFFD=1 (a kernel without
userfaultfd) makes auto fall back to mprotect and --backend uffd exit 2."""
import importlib.util
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

MEMWATCH = os.environ.get("MEMWATCH")
BACKENDS = ["uffd", "mprotect"]

pytestmark = pytest.mark.skipif(not MEMWATCH, reason="needs MEMWATCH (the memwatch binary)")


def uffd_available():
    import memwatch
    try:
        memwatch.MemoryWatcher(backend="uffd")
    except ValueError:
        return False
    return True


def trace(tmp_path, backend, source, env=None, check="manual"):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    db = tmp_path / f"{backend}.db"
    full_env = dict(os.environ)
    full_env.pop("PYTHONFAULTHANDLER", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [MEMWATCH, "trace", "-q", "-f", "-o", str(db), "--backend", backend,
         f"--check={check}", str(script)],
        capture_output=True, text=True, env=full_env, timeout=120)
    return proc, db


def rows(db, sql):
    con = sqlite3.connect(str(db))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def need(backend):
    if backend == "uffd" and not uffd_available():
        pytest.skip("this kernel lacks userfaultfd write-protection")


def trace_ok(tmp_path, backend, source, env=None):
    """trace() on a backend this kernel has, which must exit 0."""
    need(backend)
    proc, db = trace(tmp_path, backend, source, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc, db


# numpy's own writes (np.add(..., out=)) only where this interpreter has numpy (pyenv's
# have none: no PyPI here). The traced script runs in the interpreter these tests run in.
HAVE_NUMPY = importlib.util.find_spec("numpy") is not None

KERNEL_WRITES = """
    import importlib.util, os, socket, memwatch
    np = __import__("numpy") if importlib.util.find_spec("numpy") else None
    path = os.path.join(os.path.dirname(__file__), "data.bin")
    with open(path, "wb") as f:
        f.write(bytes(range(1, 129)))
    a = bytearray(4096 * 3)           # spans pages: some watched bytes on each
    b = bytearray(64)
    c = bytearray(64)
    d = bytearray(64)
    e = bytearray(32)
    arr = np.zeros(2048, dtype=np.int64) if np else None
    for obj, tag in ((a, "readinto"), (b, "recv_into"), (c, "readv"), (d, "preadv"),
                     (e, "readv2"), (arr, "numpy_out")):
        if obj is not None:
            memwatch.watch(obj, tag)
    with open(path, "rb", buffering=0) as f:
        assert f.readinto(memoryview(a)[4000:4064]) == 64
    s1, s2 = socket.socketpair()
    s1.sendall(b"socket!!")
    assert s2.recv_into(b, 8) == 8
    fd = os.open(path, os.O_RDONLY)
    assert os.readv(fd, [c, e]) == 96
    assert os.preadv(fd, [d], 10) == 64
    os.close(fd)
    if np:
        np.add(arr, 5, out=arr)
    assert memwatch.check() >= (6 if np else 5)
    print("ok")
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_writes_succeed_and_are_recorded(tmp_path, backend):
    proc, db = trace_ok(tmp_path, backend, KERNEL_WRITES)
    assert proc.stdout.strip() == "ok"
    assert rows(db, "SELECT value FROM meta WHERE key = 'backend'") == [(backend,)]
    got = dict(rows(db, "SELECT tag, group_concat(offset || ':' || new_hex, ' ') FROM "
                        "(SELECT * FROM change_ranges ORDER BY seq, offset) GROUP BY tag"))
    data = bytes(range(1, 129))
    assert got["readinto"] == "4000:" + data[:64].hex()
    assert got["recv_into"] == "0:" + b"socket!!".hex()
    assert got["readv"] == "0:" + data[:64].hex()
    assert got["readv2"] == "0:" + data[64:96].hex()
    assert got["preadv"] == "0:" + data[10:74].hex()
    if not HAVE_NUMPY:
        return
    assert len(rows(db, "SELECT DISTINCT seq FROM change_ranges WHERE tag = 'numpy_out'")) == 1
    # Every int64 went from 0 to 5: the trace holds whole elements of a typed object, so the
    # ranges cover all of the array's 16 KiB.
    ranges = rows(db, "SELECT offset, length FROM change_ranges WHERE tag = 'numpy_out'")
    assert sum(length for _, length in ranges) == 2048 * 8


NEIGHBOURS = """
    import memwatch
    objs = [bytearray(64) for _ in range(2000)]
    watched = objs[::10]
    for i, o in enumerate(watched):
        memwatch.watch(o, f"w{i}")
    memwatch.check()
    # Busy neighbours on the same pymalloc pages: every unwatched bytearray rewritten,
    # objects of the same size allocated and freed, many times.
    for rnd in range(50):
        for i, o in enumerate(objs):
            if i % 10:
                o[0] = rnd & 0xff
        junk = [bytearray(64) for _ in range(500)]
        del junk
        memwatch.check()
    watched[7][5] = 0x42
    memwatch.check()
    print(memwatch.stats()["changes"])
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_neighbour_writes_never_make_a_change(tmp_path, backend):
    proc, db = trace_ok(tmp_path, backend, NEIGHBOURS)
    assert proc.stdout.strip() == "1"
    assert rows(db, "SELECT tag, offset, old_hex, new_hex FROM change_ranges") == \
        [("w7", 5, "00", "42")]


MANY = """
    import random, memwatch, sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    objs = [bytearray(64) for _ in range(n)]
    for i, o in enumerate(objs):
        memwatch.watch(o, f"o{i}")
    rng = random.Random(1234)
    chosen = rng.sample(range(n), n // 1000)
    for i in chosen:
        objs[i][i % 64] = 0x5a
    found = memwatch.check()
    print(found, memwatch.stats()["tracked_objects"], memwatch.stats()["memory_used_bytes"])
    print(" ".join(str(i) for i in sorted(chosen)))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_small_objects_exact_changes(tmp_path, backend):
    proc, db = trace_ok(tmp_path, backend, MANY)
    first, second = proc.stdout.strip().splitlines()
    found, tracked, _ = (int(x) for x in first.split())
    chosen = [int(x) for x in second.split()]
    assert tracked == 100000
    assert found == len(chosen) == 100
    got = rows(db, "SELECT tag, offset, old_hex, new_hex FROM change_ranges ORDER BY seq")
    assert sorted(got) == sorted((f"o{i}", i % 64, "00", "5a") for i in chosen)


FALLBACK = """
    import memwatch
    b = bytearray(16)
    memwatch.watch(b, "b")
    b[1] = 9
    memwatch.check()
    print(memwatch.stats().get("backend"))
"""


def test_fallback_when_uffd_is_unavailable(tmp_path):
    proc, db = trace_ok(tmp_path, "auto", FALLBACK, env={"MEMWATCH_DISABLE_UFFD": "1"})
    assert proc.stdout.strip() == "mprotect"
    assert rows(db, "SELECT value FROM meta WHERE key = 'backend'") == [("mprotect",)]
    assert rows(db, "SELECT tag, offset, new_hex FROM change_ranges") == [("b", 1, "09")]
    proc, _ = trace(tmp_path, "uffd", FALLBACK, env={"MEMWATCH_DISABLE_UFFD": "1"})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("memwatch: ")


def test_auto_picks_uffd_where_available(tmp_path):
    need("uffd")
    proc, db = trace_ok(tmp_path, "auto", FALLBACK)
    assert proc.stdout.strip() == "uffd"
    assert rows(db, "SELECT value FROM meta WHERE key = 'backend'") == [("uffd",)]
