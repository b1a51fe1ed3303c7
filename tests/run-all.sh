#!/bin/sh
# The README's second command: build (installing what is missing) and run the whole suite.
set -eu
cd "$(dirname "$0")/.."
sh cmake/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMWATCH_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j2 "$@"
# The extra CI stage (sanitizers, bounded fuzzing): .ci/run sets MEMWATCH_CI_EXTRA=1.
if [ "${MEMWATCH_CI_EXTRA:-0}" = 1 ]; then
    sh tests/sanitize.sh
fi
