#!/usr/bin/env bash
# The cost of writer attribution and automatic checks (issue 5, Performance). A benchmark,
# not a test.
#
# usage: bench/attribution.sh [-r runs] [-s single_writes] [-w whole_array_ops] [-m memwatch]
#
# Two loops (bench/workloads/attribution_loops.py) on a 1 MiB float64 numpy array:
#   single  N single-element writes          (default 100,000)
#   whole   N whole-array in-place ops (+=)  (default 2,000; every op rewrites 256 pages)
# Each runs unwatched and watched under --check=line, interval:50 and manual, all under
# `memwatch trace` in the same run; prints the median loop time, its ratio to unwatched,
# the changes recorded, and the cost per recorded change ((watched - unwatched) / changes).
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=3 single=100000 whole=2000
while getopts "r:s:w:m:h" opt; do
    case $opt in
    r) runs=$OPTARG ;; s) single=$OPTARG ;; w) whole=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/attribution.sh [-r runs] [-s n] [-w n] [-m memwatch]" >&2; exit 2; } ;;
    esac
done
need_memwatch
scratch_dir

measure() {   # kind count watch check -> "median_seconds changes"
    local times=() changes=0
    local out
    for ((i = 0; i < runs; i++)); do
        out=$("$memwatch" trace --python "$python" -q -f --check="$4" -o "$tmp/a$i.db" \
            "$here/workloads/attribution_loops.py" "$1" "$2" "$3")
        read -r t changes _ <<<"$out"
        times+=("$t")
    done
    echo "$(median_of "${times[@]}") $changes"
}

printf '%-7s %-12s %12s %9s %10s %14s\n' loop mode seconds ratio changes "us/change"
for kind in single whole; do
    count=$single
    [ "$kind" = whole ] && count=$whole
    out=$(measure "$kind" "$count" 0 manual)   # $(...) waits for the run to end
    read -r base _ <<<"$out"
    printf '%-7s %-12s %12.4f %9s %10s %14s\n' "$kind" unwatched "$base" 1.00 - -
    for mode in line interval:50 manual; do
        out=$(measure "$kind" "$count" 1 "$mode")
        read -r t n _ <<<"$out"
        awk -v k="$kind" -v m="$mode" -v t="$t" -v b="$base" -v n="$n" 'BEGIN {
            printf "%-7s %-12s %12.4f %9.2f %10d %14s\n", k, m, t, t / b, n,
                   (n > 0 ? sprintf("%.2f", (t - b) / n * 1e6) : "-") }'
    done
done
