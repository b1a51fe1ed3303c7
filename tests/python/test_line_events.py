"""--check=line under every supported interpreter (issue 17): each line's writes are a change
of their own, attributed to that line, whatever the interpreter's line events are (a trace
function on 3.11, sys.monitoring on 3.12 and later: memwatch-trace(1), --check). Needs no
numpy, so it runs under every interpreter ctest knows (tests/CMakeLists.txt).

Runs inside the traced interpreter (memwatch trace -m pytest), in line mode."""
import os
import subprocess
import sys
import threading
import time

import memwatch
import pytest


class Watcher(memwatch.MemoryWatcher):
    """A watcher that keeps the changes its callback receives."""

    def __init__(self):
        super().__init__()
        self.changes = []
        self.set_callback(self.changes.append)

    def found(self):
        """(offset, new bytes, line, function) of each change, in order."""
        self.check_changes()
        return [(c.offset, c.new, c.line, c.function) for c in self.changes]


@pytest.fixture
def watcher():
    w = Watcher()
    yield w
    for tag in list(w.watched()):
        w.unwatch(tag)


def line_of(marker):
    """The line of this file that ends with the comment `# marker`."""
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise LookupError(marker)


def test_straight_line_writes_after_watch_are_one_change_per_line(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")
    buf[1] = 1  # straight-1
    buf[2] = 2  # straight-2
    buf[3] = 3  # straight-3
    here = "test_straight_line_writes_after_watch_are_one_change_per_line"
    assert watcher.found() == [(1, b"\x01", line_of("straight-1"), here),
                               (2, b"\x02", line_of("straight-2"), here),
                               (3, b"\x03", line_of("straight-3"), here)]


def two_writes(buf, i):
    buf[10] = i  # two-writes-1
    buf[11] = i  # two-writes-2


def test_a_function_called_in_a_loop_gives_one_change_per_line(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")
    for i in range(1, 5):
        two_writes(buf, i)
    first, second = line_of("two-writes-1"), line_of("two-writes-2")
    per_line = [(10, bytes([i]), first, "two_writes") if k == 0 else
                (11, bytes([i]), second, "two_writes") for i in range(1, 5) for k in range(2)]
    if sys.version_info < (3, 12):
        assert watcher.found() == per_line
    else:
        # The first call of a function that never wrote watched memory is checked at the
        # caller's next call or loop iteration (memwatch-trace(1), --check): its two lines
        # are one change there. Every later call has a change per line.
        assert watcher.found() == [(10, b"\x01\x01", first, "two_writes")] + per_line[2:]


def write_then_raise(buf, i):
    buf[20] = i  # raises-here
    raise ValueError("after the write")


def test_a_line_that_writes_and_raises_is_its_own_change(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")
    for i in range(3):
        try:
            write_then_raise(buf, i + 1)
        except ValueError:
            buf[21] = i + 1  # handled
    found = [f for f in watcher.found() if f[1] != b"\x01\x01"]
    # From the second call on (the first may be checked at the next safe point, as above),
    # the raising line's write and the handler's are separate changes.
    assert (21, b"\x03", line_of("handled"), "test_a_line_that_writes_and_raises_is_its_own_change") \
        in found
    assert (20, b"\x03", line_of("raises-here"), "write_then_raise") in found


def writer_generator(buf):
    for i in range(1, 4):
        buf[30] = i  # generator-write
        yield i


def test_a_generator_writes_at_its_own_line_between_yields(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")
    for i in writer_generator(buf):
        buf[31] = i  # consumer-write
    found = watcher.found()
    mine = [f for f in found if len(f[1]) == 1]
    assert (30, b"\x03", line_of("generator-write"), "writer_generator") in mine
    assert (31, b"\x03", line_of("consumer-write"),
            "test_a_generator_writes_at_its_own_line_between_yields") in mine


def test_writes_after_a_long_stretch_without_any_are_found_at_their_line(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")
    total = 0
    for i in range(100_000):           # more lines than memwatch keeps quiet code armed for
        total += i
    time.sleep(0.01)
    for i in range(1, 4):
        buf[50] = i  # after-quiet
    here = "test_writes_after_a_long_stretch_without_any_are_found_at_their_line"
    assert watcher.found() == [(50, bytes([i]), line_of("after-quiet"), here) for i in (1, 2, 3)]


def test_a_pause_inside_the_line_does_not_split_it(watcher):
    buf = bytearray(8192)
    watcher.watch_object(buf, "buf")
    buf[0:10] = b"x" * 10; time.sleep(0.3); buf[-10:] = b"y" * 10  # noqa: E702  (one line)
    watcher.check_changes()
    assert len(watcher.changes) == 1
    assert len(watcher.changes[0].ranges) == 2


def test_another_thread_is_attributed_to_itself(watcher):
    buf = bytearray(64)
    watcher.watch_object(buf, "buf")

    def work():
        buf[40] = 4  # thread-write

    t = threading.Thread(target=work, name="worker")
    t.start()
    t.join()
    watcher.check_changes()
    assert [(c.offset, c.line, c.thread) for c in watcher.changes] == \
        [(40, line_of("thread-write"), "worker")]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in CPython 3.12")
def test_the_scripts_own_monitoring_tool_keeps_working(tmp_path):
    script = tmp_path / "tool.py"
    script.write_text(
        "import sys, memwatch\n"
        "mon = sys.monitoring\n"
        "lines = []\n"
        "mon.use_tool_id(mon.COVERAGE_ID, 'cov')\n"
        "mon.register_callback(mon.COVERAGE_ID, mon.events.LINE,\n"
        "                      lambda code, line: lines.append(line))\n"
        "mon.set_events(mon.COVERAGE_ID, mon.events.LINE)\n"
        "b = bytearray(16)\n"
        "memwatch.watch(b, 'b')\n"
        "b[0] = 1\n"
        "b[1] = 2\n"
        "mon.set_events(mon.COVERAGE_ID, 0)\n"
        "memwatch.check()\n"
        "print(10 in lines and 11 in lines, memwatch.stats()['changes'])\n")
    out = subprocess.run([os.environ["MEMWATCH"], "trace", "-q", "-f", "-o",
                          str(tmp_path / "t.db"), str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "2"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in CPython 3.12")
def test_without_a_free_tool_id_line_mode_still_finds_every_change(tmp_path):
    script = tmp_path / "ids.py"
    script.write_text(
        "import sys, memwatch\n"
        "for tool in (3, 4):\n"
        "    sys.monitoring.use_tool_id(tool, 'mine')\n"
        "b = bytearray(16)\n"
        "memwatch.watch(b, 'b')\n"
        "for i in range(3):\n"
        "    b[0] = i + 1\n"
        "memwatch.check()\n"
        "print(memwatch.stats()['changes'] >= 1, bytes(b[:1]))\n")
    out = subprocess.run([os.environ["MEMWATCH"], "trace", "-q", "-f", "-o",
                          str(tmp_path / "t.db"), str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "b'\\x03'"]
    assert "sys.monitoring tool ids 3 and 4 are in use" in out.stderr


def test_on_nan_raise_enters_the_script_at_the_line_after_the_write(tmp_path):
    script = tmp_path / "nan.py"
    script.write_text(
        "import array, memwatch\n"
        "a = array.array('d', [0.0] * 8)\n"
        "memwatch.watch(a, 'a')\n"
        "def f():\n"
        "    a[2] = float('inf')\n"
        "    return 1\n"
        "for i in range(3):\n"
        "    try:\n"
        "        f()\n"
        "        print('not raised')\n"
        "    except FloatingPointError as e:\n"
        "        print('raised', str(e).split(' (')[0])\n"
        "    a[2] = 0.0\n")
    out = subprocess.run([os.environ["MEMWATCH"], "trace", "-q", "-f", "--on-nan=raise", "-o",
                          str(tmp_path / "t.db"), str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["raised Inf appeared in watched 'a' at a[2]"] * 3
