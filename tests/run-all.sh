#!/bin/sh
# The README's second command: build (installing what is missing) and run the whole suite.
# With MEMWATCH_CI_EXTRA=1 (.ci/run sets it) the sanitizer and bounded-fuzzing stage
# (tests/sanitize.sh) runs first; the suite of the normal build always runs last, so its
# summary is the closing line.
set -eu
cd "$(dirname "$0")/.."
sh cmake/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMWATCH_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
if [ "${MEMWATCH_CI_EXTRA:-0}" = 1 ]; then
    sh tests/sanitize.sh
fi
ctest --test-dir build --output-on-failure -j2 "$@"
