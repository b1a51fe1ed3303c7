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
