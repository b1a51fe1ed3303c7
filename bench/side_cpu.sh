#!/usr/bin/env bash
# CPU per change on each side of the trace (issue 15): the traced process (the script's
# thread and the channel's sender) and the writer (`memwatch trace` itself). A benchmark,
# not a test.
#
# usage: bench/side_cpu.sh [-r rounds] [-m memwatch] [-p python] small|large
#
#   small  bench/workloads/many_changes.py, --check=manual: 10,000 watched 16-byte
#          bytearrays, one byte of each changed per check (bench/writer.sh's workload)
#   large  bench/workloads/attribution_loops.py whole: `a += 1` on a watched 1 MiB float64
#          array, line mode
#
# Each round runs the workload at two lengths (5 and 45 checks; 40 and 240 changes) and
# divides the difference in CPU by the difference in changes, so that start-up and the
# trace's creation and closing cancel out. The traced process reports its own CPU (getrusage,
# bench/workloads/own_cpu.py); the writer's is the whole run's (the shell's accounting of
# memwatch and its children) minus it. Prints the medians over the rounds, in us per change.
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=5
while getopts "r:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/side_cpu.sh [-r rounds] [-m memwatch] [-p python] small|large" >&2; exit 2; } ;;
    esac
done
shift $((OPTIND - 1))
kind=${1:-}
case $kind in
small) check=(--check=manual) short=("$here/workloads/many_changes.py" 10000 5)
       long=("$here/workloads/many_changes.py" 10000 45) changes=$((10000 * 40)) ;;
large) check=() short=("$here/workloads/attribution_loops.py" whole 40 1)
       long=("$here/workloads/attribution_loops.py" whole 240 1) changes=200 ;;
*) echo "usage: bench/side_cpu.sh [-r rounds] [-m memwatch] [-p python] small|large" >&2; exit 2 ;;
esac
need_memwatch
need_python
scratch_dir

# one WORKLOAD... -> "traced_cpu_s whole_cpu_s"
one() {
    local times
    TIMEFORMAT='%U %S'
    times=$( { time "$memwatch" trace --python "$python" -q -f "${check[@]}" -o "$tmp/t.db" \
        "$here/workloads/own_cpu.py" "$tmp/own" "$@" >/dev/null; } 2>&1 )
    echo "$(cat "$tmp/own") $(awk '{ print $1 + $2 }' <<<"$times")"
}

traced=() writer=()
for ((i = 0; i < runs; i++)); do
    read -r own_a all_a < <(one "${short[@]}")
    read -r own_b all_b < <(one "${long[@]}")
    traced+=("$(awk -v a="$own_a" -v b="$own_b" -v n="$changes" 'BEGIN { printf "%.3f", (b - a) / n * 1e6 }')")
    writer+=("$(awk -v a="$own_a" -v b="$own_b" -v x="$all_a" -v y="$all_b" -v n="$changes" \
        'BEGIN { printf "%.3f", ((y - b) - (x - a)) / n * 1e6 }')")
done
echo "$kind: $runs rounds, $changes changes between the two lengths"
printf '%-44s %s us\n' "traced process CPU per change (median)" "$(median_of "${traced[@]}")" \
    "writer CPU per change (median)" "$(median_of "${writer[@]}")"
