#!/usr/bin/env bash
# How fast unwatched Python code runs under `memwatch trace`, against python3 itself
# (issue 2, Performance; target: ratio <= 1.02). A benchmark, not a test.
#
# usage: bench/interpreter.sh [-r rounds] [-m memwatch] [-p python] [workload.py ...]
#
# Runs each workload (bench/workloads/*.py by default: recursion, dict and string work, a
# numpy loop) under `memwatch trace -q -f -o <tmp>.db` and under python3, alternating which
# goes first from round to round, and prints for each workload the median whole-process
# wall time of both and their ratio. The time includes starting the interpreter and, for
# memwatch, creating and closing the trace file. Wall time comes from bash's
# EPOCHREALTIME, so nothing but bash, the two programs and awk is needed.
#
# Defaults: 7 rounds, memwatch from ./build/memwatch (or $MEMWATCH), python from
# /usr/bin/python3 (or $MEMWATCH_PYTHON): the interpreter memwatch runs scripts in.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=7
memwatch=${MEMWATCH:-$here/../build/memwatch}
python=${MEMWATCH_PYTHON:-/usr/bin/python3}

usage() {
    echo "usage: bench/interpreter.sh [-r rounds] [-m memwatch] [-p python] [workload.py ...]" >&2
    exit 2
}
while getopts "r:m:p:h" opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    m) memwatch=$OPTARG ;;
    p) python=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
[ -x "$memwatch" ] || { echo "bench: no memwatch binary at '$memwatch' (use -m)" >&2; exit 2; }
[ -x "$python" ] || { echo "bench: no python at '$python' (use -p)" >&2; exit 2; }
if (($#)); then workloads=("$@"); else workloads=("$here"/workloads/*.py); fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memwatch-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# seconds COMMAND...: runs COMMAND with its output discarded; prints its wall time.
seconds() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>"$tmp/stderr" || {
        echo "bench: '$*' failed:" >&2
        cat "$tmp/stderr" >&2
        exit 1
    }
    local end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.4f\n", e - s }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "memwatch: $memwatch ($("$memwatch" --version))"
echo "python:   $python ($("$python" --version 2>&1))"
echo "rounds:   $rounds, alternating; whole-process wall time, median"
echo

# Warm-up: page cache, numpy's import, the trace file's directory.
for w in "${workloads[@]}"; do
    seconds "$python" "$w" >/dev/null
    seconds "$memwatch" trace -q -f -o "$tmp/t.db" "$w" >/dev/null
done

declare -A py_times mw_times
for ((r = 1; r <= rounds; r++)); do
    for w in "${workloads[@]}"; do
        name=$(basename "$w" .py)
        if ((r % 2)); then
            py_times[$name]+="$(seconds "$python" "$w") "
            mw_times[$name]+="$(seconds "$memwatch" trace -q -f -o "$tmp/t.db" "$w") "
        else
            mw_times[$name]+="$(seconds "$memwatch" trace -q -f -o "$tmp/t.db" "$w") "
            py_times[$name]+="$(seconds "$python" "$w") "
        fi
    done
done

printf '%-14s %10s %10s %8s\n' workload python3 memwatch ratio
total_py=0 total_mw=0
for w in "${workloads[@]}"; do
    name=$(basename "$w" .py)
    py=$(tr ' ' '\n' <<<"${py_times[$name]}" | grep . | median)
    mw=$(tr ' ' '\n' <<<"${mw_times[$name]}" | grep . | median)
    awk -v n="$name" -v p="$py" -v m="$mw" 'BEGIN { printf "%-14s %9.3fs %9.3fs %8.3f\n", n, p, m, m / p }'
    total_py=$(awk -v a="$total_py" -v b="$py" 'BEGIN { print a + b }')
    total_mw=$(awk -v a="$total_mw" -v b="$mw" 'BEGIN { print a + b }')
done
awk -v p="$total_py" -v m="$total_mw" 'BEGIN { printf "%-14s %9.3fs %9.3fs %8.3f\n", "all", p, m, m / p }'
