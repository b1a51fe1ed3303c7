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
# memwatch, creating and closing the trace file: the first row, an empty program
# (`-c pass`), shows that fixed cost alone; the "workloads" row sums the workloads' medians.
# Wall time comes from bash's EPOCHREALTIME and CPU time (user + system, of the whole
# process tree) from bash's `times`, so nothing but bash, the two programs and awk is
# needed. On a busy machine the CPU times are the steadier figures.
#
# Defaults: 7 rounds, memwatch from ./build/memwatch (or $MEMWATCH), python from
# /usr/bin/python3 (or $MEMWATCH_PYTHON); memwatch runs the same one (--python), so the
# ratio compares an interpreter with itself under memwatch.
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=7

usage() {
    echo "usage: bench/interpreter.sh [-r rounds] [-m memwatch] [-p python] [workload.py ...]" >&2
    exit 2
}
while getopts "r:m:p:h" opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    *) bench_option "$opt" || usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
need_memwatch
need_python
if (($#)); then
    workloads=("$@")
else
    workloads=()
    for w in "$here"/workloads/{recursion,dict_str,numpy_loop}.py; do
        # pyenv's interpreters have no numpy (no PyPI here): that workload is left out.
        if [[ $w == *numpy* ]] && ! "$python" -c 'import numpy' 2>/dev/null; then
            echo "bench: $python cannot import numpy: leaving out $(basename "$w")"
            continue
        fi
        workloads+=("$w")
    done
fi
scratch_dir

# measure COMMAND...: runs COMMAND with its output discarded; prints "WALL CPU" in seconds.
# Runs in a subshell ($(...)), so `times` there counts only COMMAND's process tree.
measure() {
    local start=$EPOCHREALTIME
    "$@" >/dev/null 2>"$tmp/stderr" || {
        echo "bench: '$*' failed:" >&2
        cat "$tmp/stderr" >&2
        exit 1
    }
    local end=$EPOCHREALTIME
    # The second line of `times`: the children's user and system time, as 0m0.123s.
    # (Not in a pipe: a pipe's subshell has no children of its own.)
    times >"$tmp/times"
    sed -n 2p "$tmp/times" | awk -v s="$start" -v e="$end" '{
        cpu = 0
        for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); cpu += t[1] * 60 + t[2] }
        printf "%.4f %.4f\n", e - s, cpu }'
}

echo "memwatch: $memwatch ($("$memwatch" --version))"
echo "python:   $python ($("$python" --version 2>&1))"
echo "rounds:   $rounds, alternating which runs first; medians of whole-process times"
echo

# program_args ENTRY: the interpreter arguments of one entry ("empty" is `-c pass`).
program_args() {
    if [[ $1 == empty ]]; then args=(-c pass); else args=("$1"); fi
}
entries=(empty "${workloads[@]}")

# Warm-up: page cache, numpy's import, the trace file's directory.
for e in "${entries[@]}"; do
    program_args "$e"
    measure "$python" "${args[@]}" >/dev/null
    measure "$memwatch" trace --python "$python" -q -f -o "$tmp/t.db" "${args[@]}" >/dev/null
done

declare -A py_times mw_times
for ((r = 1; r <= rounds; r++)); do
    for e in "${entries[@]}"; do
        program_args "$e"
        if ((r % 2)); then
            py_times[$e]+="$(measure "$python" "${args[@]}")"$'\n'
            mw_times[$e]+="$(measure "$memwatch" trace --python "$python" -q -f -o "$tmp/t.db" "${args[@]}")"$'\n'
        else
            mw_times[$e]+="$(measure "$memwatch" trace --python "$python" -q -f -o "$tmp/t.db" "${args[@]}")"$'\n'
            py_times[$e]+="$(measure "$python" "${args[@]}")"$'\n'
        fi
    done
done

printf '%-16s %27s   %27s\n' "" "wall time" "CPU time (user+sys)"
printf '%-16s %9s %9s %7s   %9s %9s %7s\n' workload python3 memwatch ratio python3 memwatch ratio
row() {
    awk -v n="$1" -v pw="$2" -v mw="$3" -v pc="$4" -v mc="$5" 'BEGIN {
        printf "%-16s %8.3fs %8.3fs %7.3f   %8.3fs %8.3fs %7.3f\n", n, pw, mw, mw / pw, pc, mc, mc / pc }'
}
sum_pw=0 sum_mw=0 sum_pc=0 sum_mc=0
add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }
for e in "${entries[@]}"; do
    pw=$(printf '%s' "${py_times[$e]}" | median 1)
    mw=$(printf '%s' "${mw_times[$e]}" | median 1)
    pc=$(printf '%s' "${py_times[$e]}" | median 2)
    mc=$(printf '%s' "${mw_times[$e]}" | median 2)
    if [[ $e == empty ]]; then
        row "empty (-c pass)" "$pw" "$mw" "$pc" "$mc"
        continue
    fi
    row "$(basename "$e" .py)" "$pw" "$mw" "$pc" "$mc"
    sum_pw=$(add "$sum_pw" "$pw") sum_mw=$(add "$sum_mw" "$mw")
    sum_pc=$(add "$sum_pc" "$pc") sum_mc=$(add "$sum_mc" "$mc")
done
row "workloads" "$sum_pw" "$sum_mw" "$sum_pc" "$sum_mc"
