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

import memwatch
import pytest


class Watcher(memwatch.MemoryWatcher):
    """A watcher that keeps the changes its callback receives."""

    def __init__(self):
        super().__init__()
        self.changes = []
        self.set_callback(self.changes.append)


@pytest.fixture
def watcher():
    w = Watcher()
    yield w
    for tag in list(w.watched()):
        w.unwatch(tag)


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


def test_busy_page_is_compared_at_line_boundaries(watcher):
    page = mmap.mmap(-1, mmap.PAGESIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    watcher.watch_buffer(base + 2048, 64, "busy")
    neighbours = (ctypes.c_char * 512).from_address(base)
    watched = (ctypes.c_char * 64).from_address(base + 2048)
    for i in range(2000):              # busy neighbours: the page is left open
        neighbours[i % 512] = i & 0xFF
    assert watcher.get_stats()["open_pages"] >= 1
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
