"""Every example of the original design document, run verbatim inside `memwatch trace`.

Each test keeps the example's lines as written and only adds a recording callback (where the
example has none) and assertions about what the callback received."""
import ctypes
import json
import os

import pytest


def test_quick_start(capsys):
    from memwatch import MemoryWatcher

    # Create watcher with 2GB RAM limit
    watcher = MemoryWatcher(max_memory_mb=2048)

    seen = []

    # Define callback for changes
    def on_change(tag, old_value, new_value):
        seen.append((tag, old_value, new_value))
        print(f"✓ {tag} changed")
        print(f"  Old: {old_value[:20]}...")
        print(f"  New: {new_value[:20]}...")

    watcher.set_callback(on_change)

    # Track any Python object
    data = bytearray(b"Hello, World!")
    watcher.watch_object(data, name="my_data")

    # Modify and detect
    data[0:5] = b"HELLO"
    found = watcher.check_changes()  # Callback invoked!

    assert found == 1
    assert seen == [("my_data", b"Hello, World!", b"HELLO, World!")]
    out = capsys.readouterr().out
    assert "✓ my_data changed" in out
    assert "Old: b'Hello, World!'..." in out


def test_numpy_weights(record):
    np = pytest.importorskip("numpy")
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher(max_memory_mb=4096)
    watcher.set_callback(record)

    # Track neural network weights
    weights = np.random.randn(1000, 1000).astype(np.float32)
    before = weights.tobytes()
    watcher.watch_object(weights, "layer1_weights")

    # Any modification is detected
    weights += 0.01 * np.random.randn(1000, 1000)
    found = watcher.check_changes()

    assert found == 1
    [(tag, old, new)] = record.calls
    assert tag == "layer1_weights"
    assert old == before
    assert new == weights.tobytes()
    assert len(new) == 1000 * 1000 * 4


def test_pytorch_tensor(record):
    torch = pytest.importorskip("torch")
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher(max_memory_mb=8192)
    watcher.set_callback(record)

    # Track GPU tensor (on CPU memory)
    tensor = torch.randn(512, 512)
    before = tensor.numpy().tobytes()
    watcher.watch_object(tensor, "model_params")

    # Training updates detected
    with torch.no_grad():
        tensor *= 0.99  # Gradient step
    found = watcher.check_changes()

    assert found == 1
    [(tag, old, new)] = record.calls
    assert tag == "model_params"
    assert old == before
    assert new == tensor.numpy().tobytes()


def test_multiple_object_tracking(record):
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher(max_memory_mb=2048)
    watcher.set_callback(record)

    # Track multiple buffers
    buffers = [bytearray(1024 * 1024) for i in range(100)]
    for i, buf in enumerate(buffers):
        watcher.watch_object(buf, f"buffer_{i}")

    # All changes detected
    for buf in buffers:
        buf[0:100] = b'X' * 100

    watcher.check_changes()
    stats = watcher.get_stats()
    print(f"Tracking {stats['tracked_objects']} objects")

    assert stats["tracked_objects"] == 100
    assert sorted(tag for tag, _, _ in record.calls) == sorted(f"buffer_{i}" for i in range(100))
    expected_new = b"X" * 100 + bytes(1024 * 1024 - 100)
    for tag, old, new in record.calls:
        assert old == bytes(1024 * 1024)
        assert new == expected_new


def test_custom_change_logging(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from memwatch import MemoryWatcher
    import json
    from datetime import datetime

    watcher = MemoryWatcher()

    # Sophisticated change logger
    change_history = []

    def detailed_logger(tag, old_value, new_value):
        change = {
            'timestamp': datetime.now().isoformat(),
            'variable': tag,
            'old_size': len(old_value),
            'new_size': len(new_value),
            'old_hash': hash(old_value),
            'new_hash': hash(new_value),
        }
        change_history.append(change)

        # Save to file
        with open('changes.jsonl', 'a') as f:
            f.write(json.dumps(change) + '\n')

    watcher.set_callback(detailed_logger)

    state = bytearray(b"state-0")
    watcher.watch_object(state, "state")
    state[-1:] = b"1"
    assert watcher.check_changes() == 1

    assert len(change_history) == 1
    assert change_history[0]["variable"] == "state"
    assert change_history[0]["old_hash"] == hash(b"state-0")
    assert change_history[0]["new_hash"] == hash(b"state-1")
    logged = [json.loads(line) for line in open("changes.jsonl")]
    assert [c["variable"] for c in logged] == ["state"]


def test_direct_buffer_tracking(record):
    from memwatch import MemoryWatcher
    import ctypes

    watcher = MemoryWatcher()
    watcher.set_callback(record)

    # Allocate raw buffer
    buffer = (ctypes.c_char * 1024)()
    addr = ctypes.addressof(buffer)
    size = ctypes.sizeof(buffer)

    # Track directly
    watcher.watch_buffer(addr, size, "raw_buffer")

    # Modify
    buffer[0:10] = b'0123456789'
    watcher.check_changes()

    assert record.calls == [("raw_buffer", bytes(1024), b"0123456789" + bytes(1014))]


def test_configuration_memory_limits():
    from memwatch import MemoryWatcher

    # Configure memory usage
    watcher = MemoryWatcher(
        max_memory_mb=4096,        # 4GB limit
        capture_full_values=True    # Full value capture
    )

    # Check usage
    stats = watcher.get_stats()
    print(f"Used: {stats['memory_used_bytes'] / 1024**2:.1f} MB")
    print(f"Limit: {stats['memory_limit_bytes'] / 1024**2:.1f} MB")

    assert stats["memory_limit_bytes"] == 4096 * 1024 * 1024
    assert 0 <= stats["memory_used_bytes"] < stats["memory_limit_bytes"]


def test_configuration_performance_tuning():
    from memwatch import MemoryWatcher

    # Maximum performance - minimal capture
    watcher = MemoryWatcher(
        max_memory_mb=512,
        capture_full_values=False  # Only track changes, no values
    )
    calls = []
    watcher.set_callback(lambda t, o, n: calls.append((t, o, n)))
    data = bytearray(64)
    watcher.watch_object(data, "fast")
    data[1] = 9
    assert watcher.check_changes() == 1
    assert calls == [("fast", None, None)]

    # Maximum detail - full capture
    watcher = MemoryWatcher(
        max_memory_mb=8192,
        capture_full_values=True   # Complete old/new values
    )
    calls = []
    watcher.set_callback(lambda t, o, n: calls.append((t, o, n)))
    data = bytearray(64)
    watcher.watch_object(data, "full")
    data[1] = 9
    watcher.check_changes()
    assert calls == [("full", bytes(64), b"\x00\x09" + bytes(62))]


def test_common_issue_temporary_object_cannot_crash(record):
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher()
    watcher.set_callback(record)
    # The original design's "Bad" example: memwatch pins the object, so nothing can go wrong.
    watcher.watch_object(bytearray(100), "temp")
    import gc
    gc.collect()
    junk = [bytearray(100) for _ in range(1000)]
    assert watcher.check_changes() == 0
    watcher.unwatch("temp")
    del junk


def test_common_issue_callback_needs_check(record):
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher()
    watcher.set_callback(record)
    data = bytearray(4)
    watcher.watch_object(data, "data")
    data[0] = 42
    watcher.check_changes()  # Required!
    assert record.calls == [("data", bytes(4), b"\x2a" + bytes(3))]


def test_use_case_performance_profiling_lambda(capsys):
    from memwatch import MemoryWatcher

    watcher = MemoryWatcher()
    # Identify unexpected in-place modifications
    watcher.set_callback(lambda t, o, n: print(f"Mutation: {t}"))
    state = bytearray(8)
    watcher.watch_object(state, "state")
    state[2] = 1
    watcher.check_changes()
    assert capsys.readouterr().out == "Mutation: state\n"
