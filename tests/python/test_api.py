"""The memwatch module's API: what each call accepts, what it refuses, and what it reports."""
import array
import ctypes
import faulthandler
import mmap
import threading
import time

import pytest

import memwatch
from memwatch import MemoryWatcher


class RecordingWatcher(MemoryWatcher):
    """A watcher that keeps the changes its callback is given in .changes."""


@pytest.fixture
def watcher():
    w = RecordingWatcher()
    changes = []
    w.set_callback(lambda change: changes.append(change))
    w.changes = changes
    return w


def test_module_basics():
    assert isinstance(memwatch.__version__, str) and memwatch.__version__
    assert issubclass(memwatch.MemoryLimitError, MemoryError)


def test_pytest_enables_faulthandler_and_watched_writes_survive(watcher):
    # pytest turns faulthandler on; a write to a watched page must not look like a crash.
    assert faulthandler.is_enabled()
    faulthandler.enable()   # re-enabling at any time must not displace memwatch either
    data = bytearray(4096 * 3)
    watcher.watch_object(data, "data")
    data[5000] = 1
    assert watcher.check_changes() == 1


def test_change_object_fields(watcher):
    data = bytearray(b"abcdefgh")
    watcher.watch_object(data, "data")
    data[2:4] = b"XY"
    assert watcher.check_changes() == 1
    [c] = watcher.changes
    assert isinstance(c, memwatch.Change)
    assert (c.tag, c.offset, c.old, c.new) == ("data", 2, b"cd", b"XY")
    assert c.file == __file__
    assert c.function == "test_change_object_fields"
    assert c.thread == "MainThread"
    assert c.old_value == b"abcdefgh" and c.new_value == b"abXYefgh"
    assert c.ranges == [(2, b"cd", b"XY")]


def test_same_value_rewrite_is_no_change(watcher):
    data = bytearray(b"\x01\x02\x03")
    watcher.watch_object(data, "data")
    data[1] = 2
    assert watcher.check_changes() == 0
    assert watcher.changes == []


def test_each_check_reports_only_new_changes(watcher):
    data = bytearray(16)
    watcher.watch_object(data, "data")
    data[0] = 1
    assert watcher.check_changes() == 1
    assert watcher.check_changes() == 0
    data[0] = 2
    assert watcher.check_changes() == 1
    assert [(c.old, c.new) for c in watcher.changes] == [(b"\x00", b"\x01"), (b"\x01", b"\x02")]


def test_non_buffer_raises_type_error_naming_the_type(watcher):
    with pytest.raises(TypeError, match="'dict'"):
        watcher.watch_object({}, "d")
    with pytest.raises(TypeError, match="'int'"):
        watcher.watch_object(5, "i")



def test_torch_tensor_of_a_type_numpy_lacks_says_what_to_do(watcher):
    torch = pytest.importorskip("torch")
    weights = torch.zeros(64, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match=r"torch\.bfloat16.*tensor\.view\(torch\.int16\)"):
        watcher.watch_object(weights, "bf16")
    # What it says to do works: the same memory, watched as 16-bit integers.
    watcher.watch_object(weights.view(torch.int16), "bf16")
    weights[3] = 1.0
    assert watcher.check_changes() == 1
    [change] = watcher.changes
    assert change.elements == [((3,), 0, weights.view(torch.int16)[3].item())]


def test_tag_already_watched(watcher):
    a, b = bytearray(8), bytearray(8)
    watcher.watch_object(a, "x")
    with pytest.raises(ValueError, match="'x' is already watched"):
        watcher.watch_object(b, "x")


def test_memory_limit():
    w = MemoryWatcher(max_memory_mb=1)
    big = bytearray(512 * 1024 * 1024)
    with pytest.raises(memwatch.MemoryLimitError):
        w.watch_object(big, "big")
    assert w.get_stats()["tracked_objects"] == 0


def test_old_value_unavailable_when_pool_is_exhausted():
    # A 1 MB limit and 2 MiB of pages written at once: not every old page can be kept, yet
    # the change is still reported, marked as such, and counted.
    w = MemoryWatcher(max_memory_mb=1, capture_full_values=False)
    calls = []
    w.set_callback(lambda change: calls.append(change))
    data = bytearray(2 * 1024 * 1024)
    w.watch_object(data, "data")
    data[:] = b"\x01" * len(data)
    assert w.check_changes() == 1
    [c] = calls
    assert w.get_stats()["old_value_unavailable"] >= 1
    assert c.old is None
    olds = [old for _, old, _ in c.ranges]
    assert None in olds
    # Ranges whose old bytes were kept still say what they were, and every byte is reported.
    assert all(old == bytes(len(old)) for old in olds if old is not None)
    assert sum(len(new) for _, _, new in c.ranges) == len(data)
    assert all(new == b"\x01" * len(new) for _, _, new in c.ranges)


def test_full_values_count_against_the_limit():
    w = MemoryWatcher(max_memory_mb=1)
    w.set_callback(lambda tag, old, new: None)
    with pytest.raises(memwatch.MemoryLimitError, match="capture_full_values=False"):
        w.watch_object(bytearray(2 * 1024 * 1024), "big")


def test_watch_buffer_errors(watcher):
    buf = (ctypes.c_char * 64)()
    with pytest.raises(ValueError, match="address"):
        watcher.watch_buffer(0, 64, "null")
    with pytest.raises(ValueError, match="size"):
        watcher.watch_buffer(ctypes.addressof(buf), 0, "zero")
    with pytest.raises(ValueError, match="size"):
        watcher.watch_buffer(ctypes.addressof(buf), -5, "negative")
    unmapped = mmap.mmap(-1, 4096)
    address = ctypes.addressof(ctypes.c_char.from_buffer(unmapped))
    unmapped.close()
    with pytest.raises(ValueError):
        watcher.watch_buffer(address, 4096, "unmapped")
    with pytest.raises(TypeError):
        watcher.watch_buffer("here", 4, "str")


def test_pinned_bytearray_cannot_be_resized(watcher):
    data = bytearray(10)
    watcher.watch_object(data, "data")
    with pytest.raises(BufferError):
        data.extend(b"more")
    watcher.unwatch("data")
    data.extend(b"more")
    assert len(data) == 14


def test_unwatch_keeps_changes_made_before(watcher):
    data = bytearray(10)
    watcher.watch_object(data, "data")
    data[3] = 3
    watcher.unwatch("data")
    assert watcher.check_changes() == 1
    [c] = watcher.changes
    assert (c.offset, c.old, c.new) == (3, b"\x00", b"\x03")
    data[4] = 4
    assert watcher.check_changes() == 0


def test_unwatch_unknown_tag(watcher):
    with pytest.raises(KeyError, match="'nope' is not watched"):
        watcher.unwatch("nope")


def test_stats_counters(watcher):
    data = bytearray(4096 * 4)
    watcher.watch_object(data, "data")
    data[0] = 1
    data[4096 * 2] = 1
    watcher.check_changes()
    s = watcher.get_stats()
    for key in ("tracked_objects", "tracked_bytes", "memory_used_bytes", "memory_limit_bytes",
                "faults", "checks", "changes"):
        assert key in s
    assert s["tracked_objects"] == 1
    assert s["tracked_bytes"] == 4096 * 4
    assert s["faults"] >= 2
    assert s["checks"] >= 1
    assert s["changes"] >= 1


def test_buffer_kinds(watcher):
    arr = array.array("i", [0] * 8)
    mv_target = bytearray(8)
    mv = memoryview(mv_target)
    m = mmap.mmap(-1, 4096)

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int)]

    p = Point(1, 2)
    ints = (ctypes.c_int * 4)()
    watcher.watch_object(arr, "array")
    watcher.watch_object(mv, "memoryview")
    watcher.watch_object(m, "mmap")
    watcher.watch_object(p, "struct")
    watcher.watch_object(ints, "ints")
    arr[1] = 7
    mv_target[0] = 1
    m[10] = 5
    p.y = 3
    ints[3] = 9
    assert watcher.check_changes() == 5
    got = {c.tag: (c.offset, c.old, c.new) for c in watcher.changes}
    # Bytes, exactly: only the bytes whose value changed.
    assert got["array"] == (4, b"\x00", b"\x07")
    assert got["memoryview"] == (0, b"\x00", b"\x01")
    assert got["mmap"] == (10, b"\x00", b"\x05")
    assert got["struct"] == (4, b"\x02", b"\x03")
    assert got["ints"] == (12, b"\x00", b"\x09")


def test_read_only_bytes_catch_corruption(watcher):
    frozen = bytes(b"constant-value")
    watcher.watch_object(frozen, "frozen")
    # Corrupt it behind Python's back, as a buggy C extension would.
    ctypes.memmove(id(frozen) + bytes.__basicsize__ - 1, b"K", 1)
    assert watcher.check_changes() == 1
    [c] = watcher.changes
    assert (c.offset, c.old, c.new) == (0, b"c", b"K")


def test_numpy_strided_view_reports_only_its_elements(watcher):
    np = pytest.importorskip("numpy")
    base = np.zeros((4, 8), dtype=np.int32)
    view = base[:, ::2]
    watcher.watch_object(view, "view")
    base[0, 1] = 5          # between the view's elements: not a change of the view
    assert watcher.check_changes() == 0
    base[1, 2] = 7          # view element [1, 1]
    assert watcher.check_changes() == 1
    [c] = watcher.changes
    # In the view's own bytes (C order), element [1, 1] is item 5.
    assert (c.offset, c.old, c.new) == (5 * 4, b"\x00", b"\x07")
    assert c.new_value == view.tobytes()


def test_module_level_shortcuts():
    data = bytearray(4)
    memwatch.watch(data, "shortcut")
    try:
        data[0] = 1
        assert memwatch.check() == 1
        assert memwatch.stats()["tracked_objects"] >= 1
    finally:
        memwatch.unwatch("shortcut")


def test_callback_exception_surfaces_and_watching_continues():
    w = MemoryWatcher()

    def boom(tag, old, new):
        raise RuntimeError("callback failed")

    w.set_callback(boom)
    data = bytearray(4)
    w.watch_object(data, "data")
    data[0] = 1
    with pytest.raises(RuntimeError, match="callback failed"):
        w.check_changes()
    seen = []
    w.set_callback(lambda t, o, n: seen.append(n))
    data[1] = 1
    w.check_changes()
    assert seen == [b"\x01\x00\x00\x00", b"\x01\x01\x00\x00"] or seen[-1] == b"\x01\x01\x00\x00"


def test_callback_writing_watched_memory_does_not_loop():
    w = MemoryWatcher()
    data = bytearray(4)
    calls = []

    def writer(tag, old, new):
        calls.append(new)
        data[3] = len(calls)

    w.set_callback(writer)
    w.watch_object(data, "data")
    data[0] = 1
    assert w.check_changes() == 1
    assert len(calls) == 1
    assert w.check_changes() == 1   # the callback's own write, found by the next check
    assert len(calls) == 2


def test_threads_write_while_main_checks():
    np = pytest.importorskip("numpy")
    w = MemoryWatcher(max_memory_mb=256)
    last = {}
    w.set_callback(lambda c: last.__setitem__(c.tag, c.new_value))
    arrays = [np.zeros(1 << 14, dtype=np.float64) for _ in range(4)]   # 128 KiB each
    for i, a in enumerate(arrays):
        w.watch_object(a, f"a{i}")
    ready = threading.Barrier(len(arrays) + 1)
    stop = None

    iterations = [0] * len(arrays)

    def work(i, a):
        k = 0
        ready.wait()        # every writer is running before the clock starts
        while time.monotonic() < stop:
            k += 1
            np.add(a, 1.0, out=a)         # releases the GIL while writing
            a[k % a.size] = k
        iterations[i] = k

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(arrays)]
    for t in threads:
        t.start()
    stop = time.monotonic() + 2.0
    ready.wait()
    while any(t.is_alive() for t in threads):
        w.check_changes()
        time.sleep(0.001)   # a checking loop, not a GIL hog: the writers must get turns
    for t in threads:
        t.join()
    w.check_changes()
    assert all(iterations), f"a writer made no progress: {iterations}"
    for i, a in enumerate(arrays):
        assert last[f"a{i}"] == a.tobytes(), f"a{i}: last reported value differs from content"


def test_change_elements_for_typed_objects(watcher):
    np = pytest.importorskip("numpy")
    a = np.zeros((3, 4), dtype=np.float64)
    watcher.watch_object(a, "a")
    a[1, 2] = 2.5
    a[2, 3] = -1
    assert watcher.check_changes() >= 1
    elements = [e for c in watcher.changes for e in c.elements]
    assert elements == [((1, 2), 0.0, 2.5), ((2, 3), 0.0, -1.0)]


def test_change_elements_name_struct_fields(watcher):
    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]

    p = Point(1, 2.0)
    watcher.watch_object(p, "p")
    p.y = 4.5
    assert watcher.check_changes() == 1
    [c] = watcher.changes
    assert c.elements == [(("y",), 2.0, 4.5)]


def test_bytes_objects_have_no_elements(watcher):
    data = bytearray(4)
    watcher.watch_object(data, "data")
    data[0] = 1
    watcher.check_changes()
    assert watcher.changes[0].elements == []
