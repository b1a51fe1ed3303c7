"""Line mode: one line's writes are one change, whatever happens in the middle of that line
(issue 14, item 12). The timing that split them under load is forced here: a pause inside
the line longer than the poller's period, in the main thread and in another, while other
threads run Python code. Runs inside the traced interpreter, line mode."""
import threading
import time

import numpy as np

# The watcher fixture (conftest.py) keeps each change its callback receives.


def busy_python(stop):
    junk = bytearray(64)
    while not stop.is_set():           # GIL switches, eval-breaker points, other writes
        for i in range(64):
            junk[i] = i


def test_a_pause_inside_the_line_does_not_split_it(watcher):
    a = np.zeros(1 << 16, dtype=np.float64)          # 512 KiB
    watcher.watch_object(a, "a")
    a[: 1 << 15] = 1.0; time.sleep(0.3); a[1 << 15:] = 2.0  # noqa: E702  (one line)
    watcher.check_changes()
    assert len(watcher.changes) == 1
    assert len(watcher.changes[0].elements) == a.size


def test_other_threads_running_python_do_not_split_a_line(watcher):
    b = np.zeros(1 << 15, dtype=np.float64)
    watcher.watch_object(b, "b")
    stop = threading.Event()
    busy = threading.Thread(target=busy_python, args=(stop,))
    busy.start()
    b[:10] = 1.0; time.sleep(0.3); b[-10:] = 1.0  # noqa: E702  (one line)
    stop.set()
    busy.join()
    watcher.check_changes()
    assert len(watcher.changes) == 1
    assert len(watcher.changes[0].elements) == 20


def test_another_thread_pausing_inside_its_line_is_one_change(watcher):
    c = np.zeros(1 << 15, dtype=np.float64)
    watcher.watch_object(c, "c")

    def work():
        c[:100] = 1.0; time.sleep(0.3); c[-100:] = 1.0  # noqa: E702  (one line)

    t = threading.Thread(target=work, name="worker")
    t.start()
    t.join()
    watcher.check_changes()
    assert len(watcher.changes) == 1
    assert watcher.changes[0].thread == "worker"
