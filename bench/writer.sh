#!/usr/bin/env bash
# Trace writer throughput (issue 4, Performance; target >= 200,000 changes/s end to end;
# issue 15: >= 1,000,000). A benchmark, not a test.
#
# usage: bench/writer.sh [-r rounds] [-n objects] [-k checks] [-m memwatch] [-p python]
#
# Runs bench/workloads/many_changes.py under `memwatch trace --check=manual`: N watched
# 16-byte bytearrays, one byte of each changed per round, one check per round, so each
# check sends N small changes to the trace. The script runs under -p's interpreter (default
# /usr/bin/python3, or $MEMWATCH_PYTHON), given to memwatch with --python, so that no
# version manager's shim on PATH is timed. Prints medians over the runs of:
#   changes/s end to end   changes / whole-process wall time (until the trace is closed)
#   trace bytes per change  final file size / changes
#   writer slowdown         time the script waited for the trace (queue full) / its loop
#                           time: how much the writer slowed the traced program
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=5 n=10000 k=20
while getopts "r:n:k:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;; n) n=$OPTARG ;; k) k=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/writer.sh [-r runs] [-n objects] [-k checks] [-m memwatch] [-p python]" >&2; exit 2; } ;;
    esac
done
need_memwatch
need_python
scratch_dir
rates=() sizes=() slow=()
for ((i = 0; i < runs; i++)); do
    t0=$EPOCHREALTIME
    out=$("$memwatch" trace --python "$python" -q -f --check=manual -o "$tmp/w.db" "$here/workloads/many_changes.py" "$n" "$k")
    t1=$EPOCHREALTIME
    read -r loop changes waited <<<"$out"
    bytes=$(stat -c %s "$tmp/w.db")
    rates+=("$(awk -v c="$changes" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", c / (b - a) }')")
    sizes+=("$(awk -v s="$bytes" -v c="$changes" 'BEGIN { printf "%.1f", s / c }')")
    slow+=("$(awk -v w="$waited" -v l="$loop" 'BEGIN { printf "%.3f", w / l }')")
done
echo "objects=$n checks=$k changes/run=$((n * k)) runs=$runs"
printf '%-26s %s\n' "changes/s end to end" "$(median_of "${rates[@]}")"
printf '%-26s %s\n' "trace bytes per change" "$(median_of "${sizes[@]}")"
printf '%-26s %s\n' "writer slowdown (wait/loop)" "$(median_of "${slow[@]}")"
