"""Issue 5's loops: single-element writes to a watched numpy array, and whole-array in-place
ops on a 1 MiB array. argv: kind (single|whole), count, watch (0|1). Prints loop seconds,
changes found, and the CPU seconds of this process until then."""
import sys
import time

import numpy as np

import memwatch

kind, count, watch = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
arr = np.zeros(1 << 17, dtype=np.float64)        # 1 MiB
if watch:
    memwatch.watch(arr, "arr")
start = time.perf_counter()
if kind == "single":
    for i in range(count):
        arr[i % arr.size] = i
else:
    for _ in range(count):
        arr += 1.0
elapsed = time.perf_counter() - start
if watch:
    memwatch.check()
print(f"{elapsed:.6f} {memwatch.stats()['changes'] if watch else 0} {time.process_time():.3f}")
