#!/bin/bash
# Closing or resizing watched mmap memory (issue 14, item 11): mmap.close(), mmap.resize()
# and SharedMemory.close() work as under python3 while the memory is watched; what was
# written before is in the trace, found by a last check when the memory goes, and the watch
# ends there. In every --check mode, where only that last check can find it.

load common
bats_require_minimum_version 1.5.0

setup() {
    common_setup
    cat > "$BATS_TEST_TMPDIR/close.py" <<'PY'
import mmap
import tempfile
from multiprocessing import shared_memory
import memwatch

m = mmap.mmap(-1, 8192)
memwatch.watch(m, "m")
m[0:3] = b"abc"
m.close()
shm = shared_memory.SharedMemory(create=True, size=4096)
memwatch.watch(shm.buf, "shm")
shm.buf[5] = 9
shm.close()
shm.unlink()
f = tempfile.TemporaryFile()
f.write(bytes(4096))
f.flush()
r = mmap.mmap(f.fileno(), 4096)     # (python3 itself cannot grow an anonymous one)
memwatch.watch(r, "r")
r[7] = 7
r.resize(3 * 4096)
r[8000] = 1
print("watched after:", memwatch.stats()["tracked_objects"])
PY
}

closes_in_mode() {
    cd "$BATS_TEST_TMPDIR"
    run_memwatch -0 trace -q -f --check "$1" -o t.db close.py
    assert_output "watched after: 0"
    run sqlite3 t.db "SELECT o.tag || ':' || c.line FROM changes c JOIN objects o ON o.id = c.object_id ORDER BY c.seq"
    assert_output "$(printf 'm:8\nshm:12\nr:20')"
}

@test "line: close and resize of watched mmap memory work; the writes before are recorded" {
    closes_in_mode line
}

@test "manual: close and resize of watched mmap memory work; the writes before are recorded" {
    closes_in_mode manual
}

@test "interval: close and resize of watched mmap memory work; the writes before are recorded" {
    closes_in_mode interval:10000
}

# A large numpy array's data has a mapping of its own from the C library, which moves or
# unmaps it itself (its internal mremap and munmap) when the array is resized in place.
@test "resize(refcheck=False) of a large watched numpy array works under each backend; the writes before are recorded" {
    require_module numpy python3-numpy
    cd "$BATS_TEST_TMPDIR"
    cat > resize.py <<'PY'
import numpy as np
import memwatch
a = np.zeros(1 << 20, dtype=np.uint8)
memwatch.watch(a, "a")
a[5] = 1
a.resize(3 << 20, refcheck=False)
a[7] = 2
a.resize(1 << 16, refcheck=False)
a[9] = 3
print("resized:", a[5], a[7], a[9], "watched after:", memwatch.stats()["tracked_objects"])
PY
    # Under a sanitized build's allocator the old block is kept aside, not unmapped, and
    # its watch stays (tests/sanitize.sh).
    local backend after=0
    if grep -qx 'MEMWATCH_SANITIZE:BOOL=ON' "${MEMWATCH_BUILD_DIR:-$(dirname "$MEMWATCH")}/CMakeCache.txt" 2>/dev/null; then
        after=1
    fi
    for backend in mprotect uffd; do
        run_memwatch -0 trace -q -f --backend "$backend" -o t.db resize.py
        assert_output "resized: 1 2 3 watched after: $after"
        run sqlite3 t.db "SELECT o.tag || ':' || c.line || ':' || c.offset || ':' || hex(c.new)
                            FROM changes c JOIN objects o ON o.id = c.object_id ORDER BY c.seq"
        assert_output "a:5:5:01"
    done
}
