#!/usr/bin/env bash
# Watched bytes that share pages with the rest of the program (issue 13, Performance). A
# benchmark, not a test.
#
# usage: bench/neighbours.sh [-c] [-r rounds] [-m memwatch] [-p python] [workload ...]
#
# For each workload of bench/neighbours_workloads.py (idle, bytes, elements, pages, watches,
# shared; all by default, but elements and shared where the interpreter has no numpy), in
# the same run and alternating from round to round:
#   python3      the workload with nothing watched, under python3 alone (the baseline)
#   snapshot     a hand-written copy-and-compare after every write, under python3 alone
#   line, interval:50, manual
#                memwatch trace --check=MODE, the object watched
# and prints the median of the timed part of each, its ratio to python3, the changes
# recorded (or detected, for snapshot) and the cost per change ((t - python3) / changes).
# Times are wall times of the timed part; with -c, CPU times of the traced process.
# For `watches` the cost is per watch() and the last column is the check that follows, with
# nothing written; for `shared` the last column is one check (snapshot: one compare) of a
# page of busy neighbours, nothing written. Defaults: 5 rounds, ./build/memwatch (or $MEMWATCH), /usr/bin/python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=5
memwatch=${MEMWATCH:-$here/../build/memwatch}
python=${MEMWATCH_PYTHON:-/usr/bin/python3}   # memwatch runs the same one (--python)
usage() { echo "usage: bench/neighbours.sh [-c] [-r rounds] [-m memwatch] [-p python] [workload ...]" >&2; exit 2; }
while getopts "cr:m:p:h" opt; do
    case $opt in
    c) export BENCH_CLOCK=cpu ;;
    r) rounds=$OPTARG ;; m) memwatch=$OPTARG ;; p) python=$OPTARG ;; *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
workloads=("$@")
if ((${#workloads[@]} == 0)); then
    workloads=(idle bytes elements pages watches shared)
    # pyenv's interpreters have no numpy (no PyPI here): elements and shared are left out.
    "$python" -c 'import numpy' 2>/dev/null || workloads=(idle bytes pages watches)
fi
script=$here/neighbours_workloads.py
tmp=$(mktemp -d "${TMPDIR:-/tmp}/memwatch-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run WORKLOAD VARIANT -> "seconds changes [check_seconds]"
run() {
    case $2 in
    python3) "$python" "$script" "$1" plain ;;
    snapshot) "$python" "$script" "$1" snapshot ;;
    *) "$memwatch" trace --python "$python" -q -f -o "$tmp/t.db" --check="$2" "$script" "$1" watch ;;
    esac
}

variants=(python3 snapshot line interval:50 manual)
printf '%-9s %-12s %10s %8s %9s %12s %12s\n' workload variant seconds ratio changes \
    "us/change" "check ms"
for w in "${workloads[@]}"; do
    declare -A secs=() chg=() chk=()
    for ((r = 0; r < rounds; r++)); do
        # Alternate the order, so that a slow spell of the machine is shared out.
        order=("${variants[@]}")
        ((r % 2)) && order=($(printf '%s\n' "${variants[@]}" | tac))
        for v in "${order[@]}"; do
            # Command substitution waits for memwatch to finish its trace (a process
            # substitution would let the next run start while this one holds t.db).
            read -r s c k <<<"$(run "$w" "$v")"
            secs[$v]="${secs[$v]:-} $s"
            chg[$v]=$c
            chk[$v]="${chk[$v]:-} ${k:-0}"
        done
    done
    base=$(median ${secs[python3]})
    for v in "${variants[@]}"; do
        t=$(median ${secs[$v]})
        k=$(median ${chk[$v]})
        awk -v w="$w" -v v="$v" -v t="$t" -v b="$base" -v n="${chg[$v]}" -v k="$k" -v wn="$w" '
            BEGIN {
                per = (wn == "watches") ? 100000 : n
                cost = (per > 0 && v != "python3") ? sprintf("%.2f", (t - b) / per * 1e6) : "-"
                printf "%-9s %-12s %10.4f %8.2f %9d %12s %12s\n", w, v, t, t / b, n, cost,
                       (wn == "watches" || wn == "shared" ? sprintf("%.3f", k * 1e3) : "-")
            }'
    done
    unset secs chg chk
done
