#!/bin/bash
# Attribution does not depend on the heap layout (issue 13): the scripts of
# tests/fixtures/layouts.py (a training loop of in-place numpy updates, a bytearray written
# at its last byte, a 2-D float32 array element by element, many small bytearrays written
# in turn, a writer thread) each check that every write is its own change, at the line and
# in the thread that made it. Each runs under 60 layouts — the environment's size shifts
# where the process's memory starts, the seed how much is allocated (and freed) before the
# watch — under each backend (about 25 s each). Sixty, not twenty: about one layout in
# twenty put a watched object's page where memwatch's own check, or the writing thread's
# own interpreter state, wrote beside it hundreds of times, which left the page open with
# its writer unknown (the next write then had no line, or was merged with the following
# ones); the first twenty layouts passed with that bug, layout 40 did not.

load 'helpers/uffd'
load common
bats_require_minimum_version 1.5.0

setup() {
    common_setup
}

LAYOUTS=60

many_layouts() {
    local backend=$1 failed=0 seed padding
    for seed in $(seq 1 "$LAYOUTS"); do
        padding=$(printf '%*s' $((seed * 97)) '' | tr ' ' x)
        run env MEMWATCH_LAYOUT_PADDING="$padding" "$MEMWATCH" trace -q -f \
            -o "$BATS_TEST_TMPDIR/l$seed.db" --backend "$backend" \
            "$MEMWATCH_SOURCE_DIR/tests/fixtures/layouts.py" "$seed"
        if [ "$status" -ne 0 ]; then
            echo "layout $seed ($backend):"
            echo "$output" | grep -v ': ok$'
            failed=1
        fi
    done
    return $failed
}

@test "mprotect: every change at its own line and thread, under 60 heap layouts" {
    many_layouts mprotect
}

@test "uffd: every change at its own line and thread, under 60 heap layouts" {
    if uffd_unavailable; then
        skip "this kernel has no userfaultfd write-protection (memwatch trace --backend uffd refuses)"
    fi
    many_layouts uffd
}
