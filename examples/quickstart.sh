#!/bin/sh
# The README's first command: install what is missing, build, and trace the bundled example.
set -eu
cd "$(dirname "$0")/.."
sh cmake/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cd examples
../build/memwatch trace -f -o weights.db weights.py
../build/memwatch query weights.db --limit 10
