"""Hostile input to the API (issue 9): every case is a Python exception with a clear
message or a documented behaviour, never a crash or a hang. Runs inside `memwatch trace`.

Cases already covered elsewhere are not repeated here: address 0, zero and negative sizes,
an unmapped address and non-int arguments (test_api.test_watch_buffer_errors), unwatch of
an unknown tag (test_api.test_unwatch_unknown_tag), a callback that raises a RuntimeError
or writes watched memory (test_api)."""
import ctypes
import faulthandler
import mmap
import sys
import threading
import time

import pytest

import memwatch
from memwatch import MemoryWatcher


@pytest.fixture(autouse=True)
def no_hang():
    # A hang in C code holding the GIL would never see a Python-level alarm: the
    # watchdog thread of faulthandler dumps every stack and exits instead.
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


class Watcher(MemoryWatcher):
    """A watcher that keeps (tag, offset, new) of each change in .changes."""


def unwatch_all(w):
    for tag in w.watched():
        w.unwatch(tag)


@pytest.fixture
def watcher():
    w = Watcher()
    w.changes = []
    w.set_callback(lambda c: w.changes.append((c.tag, c.offset, c.new)))
    yield w
    # The callback makes a reference cycle, so the watcher outlives the test until the
    # garbage collector runs: its watches end here, not at some later test's check.
    unwatch_all(w)


@pytest.fixture
def block(watcher):
    """8 KiB of ctypes memory and its address."""
    buf = (ctypes.c_char * 8192)()
    yield buf, ctypes.addressof(buf)
    # A watch_buffer() range is the caller's memory: end the watches on it before it is
    # freed (this teardown runs before the watcher's, and before buf goes).
    unwatch_all(watcher)


# ---- sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [-1, -(2 ** 63), 0, -(2 ** 70)])
def test_non_positive_sizes(watcher, block, size):
    _, address = block
    with pytest.raises(ValueError, match="size must be a positive number of bytes"):
        watcher.watch_buffer(address, size, "s")
    assert watcher.watched() == []


def test_size_beyond_64_bits(watcher, block):
    _, address = block
    with pytest.raises(ValueError, match="size must be a positive number of bytes"):
        watcher.watch_buffer(address, 2 ** 64, "s")


@pytest.mark.parametrize("size", [2 ** 40, 2 ** 62, 2 ** 63 - 1])
def test_huge_sizes_are_refused(watcher, block, size):
    # Far more than is mapped: refused before anything is protected.
    _, address = block
    with pytest.raises(ValueError, match="cannot watch 'huge'"):
        watcher.watch_buffer(address, size, "huge")
    assert watcher.watched() == []
    assert watcher.get_stats()["tracked_objects"] == 0


def test_address_plus_size_wraps(watcher):
    with pytest.raises(ValueError, match="wraps around memory"):
        watcher.watch_buffer(2 ** 64 - 16, 32, "wrap")


@pytest.mark.parametrize("address", [-1, -4096, 2 ** 64, 2 ** 80])
def test_addresses_out_of_range(watcher, address):
    with pytest.raises(ValueError, match="address must be a non-zero memory address"):
        watcher.watch_buffer(address, 16, "a")


def test_misaligned_range_reports_only_its_bytes(watcher, block):
    buf, address = block
    watcher.watch_buffer(address + 3, 5, "m")   # bytes 3..7, not on any boundary
    buf[2] = b"x"     # before
    buf[4] = b"y"     # inside: offset 1
    buf[8] = b"z"     # after, same page
    assert watcher.check_changes() == 1
    assert watcher.changes == [("m", 1, b"y")]


def test_one_byte_at_the_end_of_a_page(watcher):
    m = mmap.mmap(-1, 2 * mmap.PAGESIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(m))
    watcher.watch_buffer(address + mmap.PAGESIZE - 1, 2, "edge")   # straddles two pages
    m[mmap.PAGESIZE - 1] = 1
    m[mmap.PAGESIZE] = 2
    assert watcher.check_changes() >= 1
    watcher.unwatch("edge")
    got = b"".join(new for _, _, new in watcher.changes)
    assert got == b"\x01\x02"


# ---- addresses ----------------------------------------------------------------------------

def test_inaccessible_mapping(watcher):
    # A PROT_NONE page (a guard page): mapped, but not memory anyone can watch.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, mmap.PAGESIZE, 0, 0x22, -1, 0)   # PROT_NONE, PRIVATE|ANONYMOUS
    assert page not in (None, ctypes.c_void_p(-1).value)
    try:
        try:
            watcher.watch_buffer(page, 64, "guard")
        except ValueError as e:
            assert "guard" in str(e)
        else:
            # Documented alternative: watched, nothing can write it, nothing is reported.
            assert watcher.check_changes() == 0
            watcher.unwatch("guard")
    finally:
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.munmap(page, mmap.PAGESIZE)


def test_range_inside_another_watched_range(watcher, block):
    # Documented: overlapping watches are independent; a write inside both is reported
    # once per tag, each at its own offset, and unwatching one leaves the other.
    buf, address = block
    watcher.watch_buffer(address, 100, "outer")
    watcher.watch_buffer(address + 10, 20, "inner")
    buf[15] = b"q"
    assert watcher.check_changes() == 2
    assert sorted(watcher.changes) == [("inner", 5, b"q"), ("outer", 15, b"q")]
    watcher.unwatch("outer")
    watcher.changes.clear()
    buf[16] = b"r"
    buf[50] = b"s"    # only in outer, which is gone
    assert watcher.check_changes() == 1
    assert watcher.changes == [("inner", 6, b"r")]


def test_same_object_under_two_tags(watcher):
    # Documented: allowed; each tag reports the change.
    data = bytearray(16)
    watcher.watch_object(data, "one")
    watcher.watch_object(data, "two")
    data[1] = 1
    assert watcher.check_changes() == 2
    assert sorted(watcher.changes) == [("one", 1, b"\x01"), ("two", 1, b"\x01")]
    watcher.unwatch("one")
    data[2] = 2
    watcher.check_changes()
    assert watcher.changes[-1] == ("two", 2, b"\x02")


def writable_segment_of(name):
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and name in fields[5] and fields[1].startswith("rw"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                return lo, hi - lo
    return None


def test_memwatch_own_memory_is_refused(watcher):
    # The injected library's own data: its fault handler writes there, so watching it
    # would fault inside the handler. Its page pool and tables are not reachable from
    # Python; the library's writable segment is, through /proc/self/maps.
    seg = writable_segment_of("libmemwatch-inject")
    if seg is None:
        pytest.skip("memwatch is not an LD_PRELOAD library in this process")
    data = bytearray(8)
    watcher.watch_object(data, "data")      # so that the engine is busy with something
    address, size = seg
    for a, n in [(address, size), (address + size // 2, 1), (address - 4096, 8192)]:
        with pytest.raises(ValueError, match="memory range belongs to memwatch itself"):
            watcher.watch_buffer(a, n, "own")
    data[0] = 1
    assert watcher.check_changes() == 1     # and memwatch still works


def test_executable_code_stays_executable(watcher):
    # A page of libc's code: watching it must not take away its execute permission.
    libc = ctypes.CDLL(None)
    address = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    try:
        watcher.watch_buffer(address & ~(mmap.PAGESIZE - 1), mmap.PAGESIZE, "code")
    except ValueError:
        return                               # refusing is fine too
    assert libc.getpid() > 0                 # runs code on the watched page
    assert watcher.check_changes() == 0
    watcher.unwatch("code")


# ---- tags and unwatch --------------------------------------------------------------------

def test_unwatch_twice_and_odd_tags(watcher):
    data = bytearray(4)
    watcher.watch_object(data, "d")
    watcher.unwatch("d")
    with pytest.raises(KeyError, match="'d' is not watched"):
        watcher.unwatch("d")
    for tag in (None, 5, b"d", ""):
        with pytest.raises(KeyError):
            watcher.unwatch(tag)
    with pytest.raises(TypeError, match="must be a str"):
        watcher.watch_object(bytearray(4), 5)


def test_tags_are_stored_exactly_or_refused(watcher):
    """A tag the trace cannot store exactly is refused, and a refused watch leaves nothing
    watched; odd but storable tags round-trip through the trace unchanged."""
    data = bytearray(4)
    before = watcher.get_stats()["tracked_objects"]
    with pytest.raises(ValueError, match="lone surrogate"):
        watcher.watch_object(data, "s\udcff")
    with pytest.raises(ValueError, match="NUL"):
        watcher.watch_object(data, "x\0one")
    assert watcher.get_stats()["tracked_objects"] == before
    assert watcher.watched() == []
    odd = "\u00e9t\u00e9 \U0001F600 \x1b[31m\ttab"
    watcher.watch_object(data, odd)
    data[0] = 1
    watcher.check_changes()
    assert [c[0] for c in watcher.changes] == [odd]
    watcher.unwatch(odd)


def test_unwatch_from_another_watcher(watcher):
    other = Watcher()
    data = bytearray(4)
    watcher.watch_object(data, "mine")
    with pytest.raises(KeyError, match="'mine' is not watched"):
        other.unwatch("mine")
    data[0] = 1
    assert watcher.check_changes() == 1


# ---- threads -----------------------------------------------------------------------------

def test_watch_in_one_thread_unwatch_in_another():
    w = MemoryWatcher()
    w.set_callback(lambda c: None)
    objects = [bytearray(256) for _ in range(8)]
    stop = time.monotonic() + 1.5
    errors, counts = [], {"watch": 0, "unwatch": 0}

    def watching():
        while time.monotonic() < stop:
            for i, o in enumerate(objects):
                try:
                    w.watch_object(o, f"t{i}")
                    counts["watch"] += 1
                except ValueError as e:      # already watched: the other thread lost
                    if "already watched" not in str(e):
                        errors.append(e)
                o[i] = (o[i] + 1) % 256

    def unwatching():
        while time.monotonic() < stop:
            for i in range(len(objects)):
                try:
                    w.unwatch(f"t{i}")
                    counts["unwatch"] += 1
                except KeyError:             # not watched (yet)
                    pass

    threads = [threading.Thread(target=watching), threading.Thread(target=unwatching)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        w.check_changes()
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert errors == []
    assert counts["watch"] > 0 and counts["unwatch"] > 0
    for tag in w.watched():
        w.unwatch(tag)
    assert w.get_stats()["tracked_objects"] == 0


# ---- callbacks ---------------------------------------------------------------------------

def test_callback_unwatches_and_watches():
    # Documented: a callback may unwatch any tag (its own included) and watch new
    # objects; the changes already found are still delivered, new watches take effect
    # for the next check.
    w = MemoryWatcher()
    b, c, new = bytearray(8), bytearray(8), bytearray(8)
    seen = []

    def cb(change):
        seen.append(change.tag)
        if change.tag == "b":
            w.unwatch("b")
            w.unwatch("c")
            w.watch_object(new, "new")

    w.set_callback(cb)
    w.watch_object(b, "b")
    w.watch_object(c, "c")
    b[0] = 1
    c[0] = 1
    assert w.check_changes() == 2
    assert sorted(seen) == ["b", "c"]
    new[0] = 1
    b[1] = 1                                 # no longer watched
    assert w.check_changes() == 1
    assert seen[-1] == "new"
    assert w.watched() == ["new"]


def test_callback_watches_the_object_that_changed_again():
    w = MemoryWatcher()
    data = bytearray(8)
    tags = []

    def cb(change):
        tags.append(change.tag)
        if len(tags) < 3:
            w.watch_object(data, f"again{len(tags)}")

    w.set_callback(cb)
    w.watch_object(data, "first")
    data[0] = 1
    w.check_changes()
    data[1] = 1
    w.check_changes()
    assert tags[0] == "first"
    assert set(w.watched()) == {"first", "again1", "again2"}


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, ValueError, MemoryError])
def test_callback_raising_any_exception_surfaces_and_watching_continues(exc):
    w = MemoryWatcher()

    def cb(change):
        raise exc("from the callback")

    w.set_callback(cb)
    data = bytearray(4)
    w.watch_object(data, "d")
    data[0] = 1
    with pytest.raises(exc):
        w.check_changes()
    later = []
    w.set_callback(lambda c: later.append(c.new))
    data[1] = 2
    w.check_changes()
    assert later and later[-1] == b"\x02"


def test_default_watcher_callback_raising():
    calls = []

    def boom(tag, old, new):
        calls.append(tag)
        raise ValueError("boom in the default callback")

    data = bytearray(4)
    memwatch.set_callback(boom)
    try:
        memwatch.watch(data, "hostile-default")
        data[0] = 1
        with pytest.raises(ValueError, match="boom in the default callback"):
            memwatch.check()
        assert calls == ["hostile-default"]
        memwatch.set_callback(lambda tag, old, new: calls.append(("ok", tag)))
        data[1] = 1
        memwatch.check()
        assert calls[-1] == ("ok", "hostile-default")
    finally:
        memwatch.unwatch("hostile-default")
        memwatch.set_callback(None)


def test_callback_that_is_not_callable(watcher):
    with pytest.raises(TypeError):
        watcher.set_callback(42)
