"""Writer throughput: N watched objects, one byte of each changed per round, then a check.

Prints: loop seconds, changes, seconds the program waited for the trace (queue full)."""
import sys
import time

import memwatch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
buffers = [bytearray(16) for _ in range(n)]
for i, b in enumerate(buffers):
    memwatch.watch(b, f"b{i}")
memwatch.check()
start = time.perf_counter()
changes = 0
for r in range(1, rounds + 1):
    for b in buffers:
        b[0] = r % 256
    changes += memwatch.check()
elapsed = time.perf_counter() - start
print(f"{elapsed:.6f} {changes} {memwatch.stats()['trace_wait_seconds']:.6f}")
