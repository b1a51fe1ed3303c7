# Workload of bench/elements.sh: the same writes into a watched float32 array (typed) or a
# watched bytearray of the same size (untyped), with a check after each round of writes.
# usage: elements_workload.py typed|bytes [rounds] [writes_per_round] [size_bytes]
# Prints the loop's time in seconds on stdout.
import sys
import time

import numpy as np

try:
    import memwatch
except ImportError:          # plain python3: the baseline without memwatch
    memwatch = None

kind = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
writes = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
size = int(sys.argv[4]) if len(sys.argv) > 4 else 4 << 20

if kind == "typed":
    obj = np.zeros(size // 4, dtype=np.float32)
    view = obj
elif kind == "bytes":
    obj = bytearray(size)
    view = np.frombuffer(obj, dtype=np.float32)   # the same writes, through numpy
else:
    sys.exit("usage: elements_workload.py typed|bytes [rounds] [writes] [size]")
if memwatch:
    memwatch.watch(obj, "w")
# Spread over the whole object, so each round touches many pages.
idx = (np.arange(writes, dtype=np.int64) * 7919) % (size // 4)
start = time.perf_counter()
for r in range(rounds):
    view[idx] = np.float32(r + 1) * np.float32(0.001)   # every byte of each element differs
    if memwatch:
        memwatch.check()
print(f"{time.perf_counter() - start:.6f}")
