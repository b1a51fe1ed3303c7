#!/usr/bin/env bash
# What line events cost, per interpreter (issue 17): the ones memwatch's line mode can use,
# each with a callback that does nothing, on pure-Python work. A benchmark, not a test.
#
# usage: bench/line_events.sh [-r rounds] [-p python]
#
# Builds bench/line_events_probe.c against the interpreter's headers, runs
# bench/line_events_workload.py once per mode and round (each in a process of its own,
# the order alternating from round to round) and prints each mode's median CPU time and
# its ratio to no events at all. On 3.11 only the trace function exists; sys.monitoring
# modes need 3.12 or later. Defaults: 9 rounds, /usr/bin/python3 (or $MEMWATCH_PYTHON).
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=9
usage() { echo "usage: bench/line_events.sh [-r rounds] [-p python]" >&2; exit 2; }
while getopts "r:m:p:h" opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    *) bench_option "$opt" || usage ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
need_python
scratch_dir

read -r include suffix version < <("$python" -c 'import sys, sysconfig
print(sysconfig.get_paths()["include"], sysconfig.get_config_var("EXT_SUFFIX"), "%d.%d" % sys.version_info[:2])')
cc -O2 -shared -fPIC -I"$include" "$here/line_events_probe.c" -o "$tmp/line_events_probe$suffix"
modes=(base settrace)
if "$python" -c 'import sys; sys.exit(not hasattr(sys, "monitoring"))'; then
    modes+=(monitoring local unwind python)
fi

echo "python: $python (Python $version), $rounds rounds, median CPU seconds of the work"
declare -A secs
for ((r = 0; r < rounds; r++)); do
    order=("${modes[@]}")
    ((r % 2)) && order=($(printf '%s\n' "${modes[@]}" | tac))
    for m in "${order[@]}"; do
        secs[$m]="${secs[$m]:-} $(PYTHONPATH="$tmp" "$python" "$here/line_events_workload.py" "$m")"
    done
done
base=$(median_of ${secs[base]})
for m in "${modes[@]}"; do
    t=$(median_of ${secs[$m]})
    awk -v m="$m" -v t="$t" -v b="$base" 'BEGIN { printf "%-12s %8.3fs %6.2fx\n", m, t, t / b }'
done
