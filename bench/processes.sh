#!/usr/bin/env bash
# Fork workers writing a watched shared block (issue 16, Performance). A benchmark, not a
# test.
#
# usage: bench/processes.sh [-r rounds] [-n lines] [-s starts] [-m memwatch] [-p python]
#
# bench/processes_workload.py writes a watched 1 MiB anonymous MAP_SHARED block line by
# line (8 bytes per line, each line on the next page, so each line is one trap and one
# change), in the same run and alternating from round to round:
#   single   one process writes N lines, under memwatch trace (line mode, the default)
#   pool     a multiprocessing Pool of 2 fork workers, N/2 lines each, under memwatch trace
#   named    the same, the block a SharedMemory the workers attach by name (each maps it
#            again; memwatch watches it there because the parent does)
# each also under python3 alone, nothing watched (the baseline). The writing loops are
# timed inside the processes that run them (summed over the workers). Prints the medians
# of the per-change cost, (traced - python3) / changes recorded, and pool / single.
#
# Then a traced child that watches nothing (issue 16: start-up within 10% of python3's):
# a script starts S children `python -c pass` with subprocess.run, under memwatch trace
# (each child is traced: it connects, receives the run's shared memory, starts its
# engine) and under python3 (the baseline), alternating from round to round; each run
# reports the median time of a child's subprocess.run and the children's mean CPU time
# (less sensitive to a busy machine). Prints the medians over rounds and traced / python3.
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=5 n=4000 starts=20
while getopts "r:n:s:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;; n) n=$OPTARG ;; s) starts=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/processes.sh [-r rounds] [-n lines] [-s starts] [-m memwatch] [-p python]" >&2; exit 2; } ;;
    esac
done
need_memwatch
need_python
scratch_dir
work=$here/processes_workload.py
declare -A cost=()
for ((i = 0; i < runs; i++)); do
    for mode in single pool named; do
        out=$("$python" "$work" "$mode" "$n" plain)
        plain=${out%% *}
        rm -f "$tmp/$mode.db"
        out=$("$memwatch" trace --python "$python" -q -o "$tmp/$mode.db" "$work" "$mode" "$n" watch)
        traced=${out%% *}
        changes=$(sqlite3 "$tmp/$mode.db" "SELECT count(*) FROM changes")
        procs=$(sqlite3 "$tmp/$mode.db" "SELECT count(DISTINCT pid) FROM changes")
        [ "$changes" -ge "$n" ] || { echo "bench: $mode recorded $changes changes for $n lines" >&2; exit 1; }
        cost[$mode]+="$(awk -v t="$traced" -v p="$plain" -v c="$changes" 'BEGIN { printf "%.2f", (t - p) / c * 1e6 }') "
    done
done
single=$(median_of ${cost[single]})
pool=$(median_of ${cost[pool]})
named=$(median_of ${cost[named]})
echo "lines=$n rounds=$runs python=$python (writing processes in pool: $procs)"
printf '%-34s %s us\n' "per change, one process (line mode)" "$single"
printf '%-34s %s us\n' "per change, Pool of 2 fork workers" "$pool"
printf '%-34s %s us\n' "per change, workers attach by name" "$named"
printf '%-34s %s\n' "ratio pool / single" "$(awk -v a="$pool" -v b="$single" 'BEGIN { printf "%.2f", a / b }')"
printf '%-34s %s\n' "ratio named / single" "$(awk -v a="$named" -v b="$single" 'BEGIN { printf "%.2f", a / b }')"

# A traced child that watches nothing: its start-up against python3's.
startup_plain="" startup_traced="" cpu_plain="" cpu_traced=""
for ((i = 0; i < runs; i++)); do
    out=$("$python" "$work" startup "$starts" plain)
    read -r wall _ cpu <<<"$out"
    startup_plain+="$wall " cpu_plain+="$cpu "
    rm -f "$tmp/startup.db"
    out=$("$memwatch" trace --python "$python" -q -o "$tmp/startup.db" "$work" startup "$starts" plain)
    read -r wall _ cpu <<<"$out"
    startup_traced+="$wall " cpu_traced+="$cpu "
    traced_children=$(sqlite3 "$tmp/startup.db" "SELECT count(*) FROM processes WHERE root = 0 AND traced = 1")
    [ "$traced_children" -eq "$starts" ] ||
        { echo "bench: $traced_children of $starts children were traced" >&2; exit 1; }
done
ms() { awk -v s="$1" 'BEGIN { printf "%.2f", s * 1e3 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
plain=$(median_of $startup_plain) traced=$(median_of $startup_traced)
plain_cpu=$(median_of $cpu_plain) traced_cpu=$(median_of $cpu_traced)
echo "children started per round=$starts rounds=$runs"
printf '%-34s %s ms (CPU %s ms)\n' "child start-up, python3" "$(ms "$plain")" "$(ms "$plain_cpu")"
printf '%-34s %s ms (CPU %s ms)\n' "child start-up, traced child" "$(ms "$traced")" "$(ms "$traced_cpu")"
printf '%-34s %s (CPU %s)\n' "ratio traced / python3" "$(ratio "$traced" "$plain")" "$(ratio "$traced_cpu" "$plain_cpu")"
