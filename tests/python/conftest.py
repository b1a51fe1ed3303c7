import os
import sys

# Fixtures shared by the tests that run inside `memwatch trace -m pytest`.
import pytest


@pytest.fixture
def record():
    """A three-argument callback that keeps what it is given."""
    calls = []

    def callback(tag, old_value, new_value):
        calls.append((tag, old_value, new_value))

    callback.calls = calls
    return callback


@pytest.fixture
def watcher():
    """A MemoryWatcher whose callback keeps each memwatch.Change in .changes; what it
    still watches at the end of the test is unwatched."""
    import memwatch

    class KeepingWatcher(memwatch.MemoryWatcher):   # a subclass: instances take attributes
        pass

    w = KeepingWatcher()
    w.changes = []
    w.set_callback(w.changes.append)
    yield w
    for tag in list(w.watched()):
        w.unwatch(tag)
