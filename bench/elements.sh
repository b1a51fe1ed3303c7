#!/usr/bin/env bash
# Typed changes cost the traced program no more than untyped ones (issue 7, Performance:
# target ratio <= 1.10). A benchmark, not a test.
#
# usage: bench/elements.sh [-r runs] [-m memwatch] [-p python] [rounds writes size]
#
# Runs bench/elements_workload.py under `memwatch trace`, watching a float32 numpy array
# (typed: the trace writer decodes every change into elements and a numeric summary) and
# a bytearray of the same size written through a numpy view with the same writes
# (untyped), alternating which goes first, and prints the medians of the script's own
# loop time (the traced program's view) and of the whole process's wall time (which
# includes waiting for the writer to finish), their ratio typed/untyped, and the same loop
# under python3 without memwatch for scale. Defaults: 5 runs, 30 rounds of 2000 float32
# writes spread over 4 MiB (one check per round, about 1000 pages dirty each), memwatch
# from ./build/memwatch (or $MEMWATCH).
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=5
while getopts "r:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/elements.sh [-r runs] [-m memwatch] [-p python] [rounds writes size]" >&2; exit 2; } ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ge 3 ]; then args=("$1" "$2" "$3"); else args=(30 2000 $((4 << 20))); fi
need_memwatch
scratch_dir
work=$tmp
workload=$here/elements_workload.py

# one KIND: appends "loop wall" seconds to $work/KIND
one() {
    local kind=$1 t0 t1 loop
    t0=$EPOCHREALTIME
    if [ "$kind" = plain ]; then
        loop=$("$python" "$workload" typed "${args[@]}")
    else
        loop=$("$memwatch" trace --python "$python" -q -f -o "$work/t.db" "$workload" "$kind" "${args[@]}")
    fi
    t1=$EPOCHREALTIME
    echo "$loop $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')" >> "$work/$kind"
}

for ((i = 0; i < runs; i++)); do
    if ((i % 2)); then one bytes; one typed; else one typed; one bytes; fi
    one plain
done
# sanity: the typed trace has its elements summarised by the writer
"$memwatch" trace --python "$python" -q -f -o "$work/t.db" "$workload" typed 2 10 4096 >/dev/null
stats=$(sqlite3 "$work/t.db" "SELECT count(*), sum(elements) FROM change_stats")

col() { median "$2" <"$work/$1"; }
lt=$(col typed 1) lb=$(col bytes 1) lp=$(col plain 1)
wt=$(col typed 2) wb=$(col bytes 2)
echo "elements benchmark: ${args[0]} rounds x ${args[1]} float32 writes, $((args[2] >> 10)) KiB object, $runs runs (medians)"
printf "%-34s %10s %10s %8s\n" "" "typed" "bytes" "ratio"
printf "%-34s %9.3fs %9.3fs %8.3f\n" "script loop under memwatch trace" "$lt" "$lb" "$(awk -v a="$lt" -v b="$lb" 'BEGIN { print a / b }')"
printf "%-34s %9.3fs %9.3fs %8.3f\n" "whole process (writer included)" "$wt" "$wb" "$(awk -v a="$wt" -v b="$wb" 'BEGIN { print a / b }')"
printf "%-34s %9.3fs\n" "same loop, python3 without memwatch" "$lp"
echo "check: a short typed run stored change_stats rows|elements = $stats"
