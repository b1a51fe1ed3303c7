"""Watched bytes and their neighbours (issue 13): what moves to pages of its own and what
does not, that moving changes nothing but the address, that unwatched work beside a
watched object no longer traps, and that a busy page is compared at line boundaries with
every change still at its own line.

Runs inside the traced interpreter (memwatch trace -m pytest), in line mode."""
import array
import ctypes
import mmap
import os
import subprocess
import sys
import threading

# The watcher fixture (conftest.py) keeps each change its callback receives.


def address_of(obj):
    view = (ctypes.c_char * len(obj)).from_buffer(obj)
    addr = ctypes.addressof(view)
    del view
    return addr


def test_small_bytearray_moves_and_keeps_its_contents(watcher):
    buf = bytearray(b"0123456789" * 3)
    before = address_of(buf)
    watcher.watch_object(buf, "small")
    stats = watcher.get_stats()
    assert stats["isolated_objects"] >= 1
    assert bytes(buf) == b"0123456789" * 3
    buf[3] = ord("X")
    watcher.check_changes()
    assert [(c.tag, c.offset, c.old, c.new) for c in watcher.changes] == [("small", 3, b"3", b"X")]
    watcher.unwatch("small")
    # Moved back to the interpreter's own memory: it grows and shrinks as before.
    assert bytes(buf) == b"012X456789" + b"0123456789" * 2
    buf.extend(b"more" * 1000)
    del buf[10:]
    assert bytes(buf) == b"012X456789"
    assert before != 0


def test_lent_out_buffer_is_not_moved(watcher):
    buf = bytearray(100)
    view = memoryview(buf)
    isolated = watcher.get_stats()["isolated_objects"]
    watcher.watch_object(buf, "lent")
    assert watcher.get_stats()["isolated_objects"] == isolated
    view[0] = 7                        # still the same memory as buf's
    assert buf[0] == 7
    del view


def test_buffer_lent_while_watched_stays_valid_after_unwatch(watcher):
    buf = bytearray(b"a" * 64)
    watcher.watch_object(buf, "kept")
    view = memoryview(buf)             # lent out while watched, alive at unwatch
    watcher.unwatch("kept")
    view[1] = ord("b")                 # the object cannot move back: still one memory
    assert buf[:3] == b"aba"
    del view
    buf.extend(b"c" * 10000)           # its own allocator frees and grows it as before
    assert len(buf) == 10064
    del buf


def sanitized_build():
    """A sanitized build (tests/sanitize.sh asan) has the sanitizer's free() ahead of
    memwatch's, so small objects cannot be packed (src/core/arena.c): each moves to whole
    pages of its own instead."""
    cache = os.path.join(os.path.dirname(os.environ["MEMWATCH"]), "CMakeCache.txt")
    try:
        return "MEMWATCH_SANITIZE:BOOL=ON" in open(cache).read().splitlines()
    except OSError:
        return False


def test_small_objects_share_pages_of_watched_objects_only(watcher):
    sizes = [1 + (i * 37) % 2000 for i in range(3000)]
    bufs = [bytearray(bytes([i % 251]) * n) for i, n in enumerate(sizes)]
    for i, b in enumerate(bufs):
        watcher.watch_object(b, "b%d" % i)
    stats = watcher.get_stats()
    assert stats["isolated_objects"] >= 3000
    if sanitized_build():
        print("sanitized build: small objects take whole pages (no packing)")
        assert stats["isolated_pages"] >= stats["isolated_objects"]
    else:
        # Packed by size, many to a page: about the bytes themselves, not a page each.
        assert stats["isolated_pages"] < 3000 // 2
    for i, b in enumerate(bufs):
        assert bytes(b) == bytes([i % 251]) * sizes[i]
    for i in range(0, 3000, 7):
        bufs[i][-1] = 255  # each its own write
    watcher.check_changes()
    line = open(__file__).read().splitlines().index(
        "        bufs[i][-1] = 255  # each its own write") + 1
    got = sorted((c.tag, c.offset, c.old, c.new, c.line) for c in watcher.changes)
    want = sorted(("b%d" % i, sizes[i] - 1, bytes([i % 251]), b"\xff", line)
                  for i in range(0, 3000, 7) if i % 251 != 255)
    assert got == want
    for i in range(3000):
        watcher.unwatch("b%d" % i)
    assert watcher.get_stats()["isolated_objects"] == 0
    for b in bufs[:50]:
        b.extend(b"z" * 5000)         # back in the interpreter's memory: grows as before
        assert b.endswith(b"z" * 5000)


def test_storage_lent_at_unwatch_is_freed_and_resized_safely(watcher):
    keep = [bytearray(48) for _ in range(20)]      # share the page with what follows
    for i, b in enumerate(keep):
        watcher.watch_object(b, "keep%d" % i)
    arr = array.array("i", range(10))
    buf = bytearray(b"q" * 48)
    watcher.watch_object(arr, "arr")
    watcher.watch_object(buf, "buf")
    views = [memoryview(arr), memoryview(buf)]
    watcher.unwatch("arr")
    watcher.unwatch("buf")            # lent out: both stay where they were moved
    views[1][0] = ord("Q")
    assert buf[:2] == b"Qq" and arr[9] == 9
    del views
    arr.extend(range(10, 5000))       # resized by the interpreter: realloc of our block
    buf += b"r" * 3000
    assert arr[9999 - 5000] == 4999 and buf[:2] == b"Qq" and len(buf) == 3048
    del arr, buf                      # and freed by it
    keep[3][0] = 1                    # the page's other objects are still watched
    watcher.check_changes()
    assert [(c.tag, c.offset) for c in watcher.changes] == [("keep3", 0)]


def test_array_moves_and_keeps_its_items(watcher):
    arr = array.array("d", [1.5, 2.5, 3.5])
    watcher.watch_object(arr, "arr")
    assert watcher.get_stats()["isolated_objects"] >= 1
    assert arr.tolist() == [1.5, 2.5, 3.5]
    arr[1] = 9.0
    watcher.check_changes()
    assert [c.elements for c in watcher.changes] == [[((1,), 2.5, 9.0)]]
    watcher.unwatch("arr")
    arr.extend(range(1000))
    assert arr[:3].tolist() == [1.5, 9.0, 3.5] and len(arr) == 1003


def test_unwatched_work_beside_a_moved_object_never_traps(watcher):
    buf = bytearray(24)
    watcher.watch_object(buf, "idle")
    faults = watcher.get_stats()["faults"]
    junk = []
    for i in range(20000):             # the allocator's and reference counts' busy pages
        junk.append(bytearray(24))
        junk.append(str(i) * 3)
        if len(junk) > 100:
            junk.clear()
    assert watcher.get_stats()["faults"] == faults
    assert watcher.get_stats()["changes"] == 0


def open_busy_page(watcher):
    """A page with 64 watched bytes whose neighbours are written until it is left open:
    (the page, its neighbours, the watched bytes)."""
    page = mmap.mmap(-1, mmap.PAGESIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    watcher.watch_buffer(base + 2048, 64, "busy")
    neighbours = (ctypes.c_char * 512).from_address(base)
    watched = (ctypes.c_char * 64).from_address(base + 2048)
    for i in range(2000):              # busy neighbours: the page is left open
        neighbours[i % 512] = i & 0xFF
    assert watcher.get_stats()["open_pages"] >= 1
    return page, neighbours, watched


def test_busy_page_is_compared_at_line_boundaries(watcher):
    page, neighbours, watched = open_busy_page(watcher)
    for i in range(5):
        watched[i] = b"x"  # the write
    watcher.check_changes()
    lines = {c.line for c in watcher.changes}
    assert len(watcher.changes) == 5
    source = open(__file__).read().splitlines()
    assert lines == {source.index('        watched[i] = b"x"  # the write') + 1}
    assert watcher.get_stats()["found_by_comparison"] >= 5
    watcher.unwatch("busy")
    del neighbours, watched
    page.close()


def test_no_page_is_left_open_while_another_python_thread_runs(watcher):
    # A write to an open page is named after the line at whose boundary it is seen, which
    # with two threads may be the other thread's: open pages are closed once a second
    # thread exists, and busy pages trap instead, so each write keeps its own thread.
    page, neighbours, watched = open_busy_page(watcher)
    go, done = threading.Event(), threading.Event()

    def writer():
        go.wait()
        for i in range(5):
            watched[i] = b"w"  # the writer thread's write
        done.set()

    t = threading.Thread(target=writer, name="writer")
    t.start()
    for i in range(2000):              # still busy, now with a second thread
        neighbours[i % 512] = i & 0xFF
    assert watcher.get_stats()["open_pages"] == 0
    go.set()
    done.wait()
    t.join()
    watcher.check_changes()
    source = open(__file__).read().splitlines()
    line = source.index('            watched[i] = b"w"  # the writer thread\'s write') + 1
    # One change per write where the writer's lines are traced from its first write (3.11);
    # from 3.12 on, a function's first writes before it is instrumented are one change.
    if sys.version_info < (3, 12):
        assert len(watcher.changes) == 5
    else:
        assert 1 <= len(watcher.changes) <= 5
    assert watcher.changes and all(c.new.strip(b"\0") for c in watcher.changes)
    assert {(c.thread, c.line) for c in watcher.changes} == {("writer", line)}
    assert bytes(watched[:5]) == b"wwwww"
    watcher.unwatch("busy")
    del neighbours, watched
    page.close()


def test_debug_allocator_keeps_objects_in_place(tmp_path):
    script = tmp_path / "dev.py"
    script.write_text("import memwatch\n"
                      "b = bytearray(64)\n"
                      "memwatch.watch(b, 'b')\n"
                      "b[0] = 1\n"
                      "print(memwatch.stats()['isolated_objects'], memwatch.check())\n")
    out = subprocess.run([os.environ["MEMWATCH"], "trace", "-q", "-f", "-o",
                          str(tmp_path / "t.db"), "-X", "dev", str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]
