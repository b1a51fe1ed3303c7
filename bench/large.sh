#!/usr/bin/env bash
# Large objects and long runs (issue 15, Performance). A benchmark, not a test.
#
# usage: bench/large.sh [-r rounds] [-s steps] [-l lr] [-m memwatch] [-p python]
#
# 1. The 24 MiB MLP (bench/workloads/mlp.py, 6.3M float32 parameters, SGD), every
#    parameter watched, STEPS steps (default 20): unwatched, --values=full and
#    --values=summary, each under `memwatch trace` in the same run. Prints per mode the
#    median of the rounds: the training steps' seconds (the script's own clock) and the
#    whole run's (trace closed), their ratio to unwatched, the trace's bytes per step, and
#    the CPU seconds of `memwatch trace` itself (the writer), which the load of a shared
#    machine does not inflate as it does times.
# 2. `a += 1` on a watched 1 MiB float64 array, line mode: ms per change, and the CPU per
#    change of each side (the traced process's up to the end of its loop, and the writer's;
#    less an unwatched run's).
# 3. A trace holding about 1 GB of values (the MLP, 40 steps: 40 x 24 MiB new bytes): the
#    time to the first row of `memwatch query` and of `memwatch diff`.
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=3 steps=20 lr=1e-2
while getopts "r:s:l:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;; s) steps=$OPTARG ;; l) lr=$OPTARG ;;
    *) bench_option "$opt" ||
        { echo "usage: bench/large.sh [-r rounds] [-s steps] [-l lr] [-m memwatch]" >&2; exit 2; } ;;
    esac
done
need_memwatch
need_python
"$python" -c 'import torch' 2>/dev/null || { echo "bench: python3-torch is needed" >&2; exit 2; }
scratch_dir

now() { date +%s.%N; }

# cpu_run CMD... -> CMD's output line, then CMD's own CPU seconds (not its children's), read
# from /proc every 5 ms while it runs: a `memwatch trace` command's is the writer's.
cpu_run() {
    "$python" -c 'import os, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
tick, cpu = os.sysconf("SC_CLK_TCK"), 0.0
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
    except (OSError, IndexError, ValueError):
        pass
    time.sleep(0.005)
print(p.stdout.read().strip(), f"{cpu:.3f}")' "$@"
}

# mlp WATCH VALUES -> "loop_seconds wall_seconds trace_bytes writer_cpu_seconds"
mlp() {
    local t0 t1 loop cpu writer
    t0=$(now)
    read -r loop cpu writer < <(cpu_run "$memwatch" trace --python "$python" -q -f --values="$2" \
        -o "$tmp/m.db" "$here/workloads/mlp.py" "$steps" "$1" "$lr")
    t1=$(now)
    echo "$loop $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(stat -c %s "$tmp/m.db")" \
        "$writer"
}

echo "== MLP, 6.3M float32 parameters, $steps SGD steps (lr $lr), $runs rounds"
printf '%-22s %10s %8s %10s %8s %14s %12s\n' mode loop_s ratio wall_s ratio "trace/step" \
    "writer_cpu_s"
declare -A loop wall size wcpu
for mode in unwatched full summary; do
    loops=() walls=() sizes=() cpus=()
    for ((i = 0; i < runs; i++)); do
        if [ $mode = unwatched ]; then
            read -r l w s c < <(mlp 0 full)
        else
            read -r l w s c < <(mlp 1 $mode)
        fi
        loops+=("$l") walls+=("$w") sizes+=("$s") cpus+=("$c")
    done
    loop[$mode]=$(median_of "${loops[@]}")
    wall[$mode]=$(median_of "${walls[@]}")
    size[$mode]=$(median_of "${sizes[@]}")
    wcpu[$mode]=$(median_of "${cpus[@]}")
done
for mode in unwatched full summary; do
    awk -v m="$mode" -v l="${loop[$mode]}" -v w="${wall[$mode]}" -v s="${size[$mode]}" \
        -v lu="${loop[unwatched]}" -v wu="${wall[unwatched]}" -v n="$steps" -v c="${wcpu[$mode]}" 'BEGIN {
        per = s / n
        unit = per >= 1048576 ? sprintf("%.2f MiB", per / 1048576) : sprintf("%.1f KiB", per / 1024)
        printf "%-22s %10.3f %8.2f %10.3f %8.2f %14s %12.2f\n", m, l, l / lu, w, w / wu,
               (m == "unwatched" ? "-" : unit), c }'
done

echo "== a += 1 on a watched 1 MiB float64 array, --check=line"
per_change() {   # A B -> (A - B) / n in thousandths
    awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.3f", (a - b) / n * 1000 }'
}
pluses=() traced=() writer=()
for ((i = 0; i < runs; i++)); do
    read -r t n pc wc < <(cpu_run "$memwatch" trace --python "$python" -q -f -o "$tmp/a.db" \
        "$here/workloads/attribution_loops.py" whole 200 1)
    read -r tb _ pcb wcb < <(cpu_run "$memwatch" trace --python "$python" -q -f -o "$tmp/b.db" \
        "$here/workloads/attribution_loops.py" whole 200 0)
    pluses+=("$(per_change "$t" "$tb")") traced+=("$(per_change "$pc" "$pcb")")
    writer+=("$(per_change "$wc" "$wcb")")
done
printf '%-40s %s ms per change (%s changes); CPU per change: traced %s ms, writer %s ms\n' \
    "median over $runs rounds" "$(median_of "${pluses[@]}")" "$n" "$(median_of "${traced[@]}")" \
    "$(median_of "${writer[@]}")"

echo "== first row on a trace holding 1 GB of values (MLP, 40 steps, --values=full)"
"$memwatch" trace --python "$python" -q -f -o "$tmp/big.db" "$here/workloads/mlp.py" 40 1 "$lr" >/dev/null
echo "trace: $(stat -c %s "$tmp/big.db") bytes for $((40 * 25264168)) bytes of new values"
first_row() {   # CMD... -> seconds until the first line of output
    "$python" - "$@" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdout.readline()
p.stdout.readline()     # the header, then the first row
print(f"{time.perf_counter() - t:.3f}")
p.kill()
p.wait()
PY
}
fq=() fd=() fs=()
for ((i = 0; i < runs; i++)); do
    fq+=("$(first_row "$memwatch" query "$tmp/big.db")")
    fd+=("$(first_row "$memwatch" diff -t "$tmp/big.db" 2.weight)")
    fs+=("$(first_row "$memwatch" query --since 150 "$tmp/big.db")")
done
printf '%-40s %s s\n' "memwatch query: first row" "$(median_of "${fq[@]}")"
printf '%-40s %s s\n' "memwatch diff 2.weight: first row" "$(median_of "${fd[@]}")"
printf '%-40s %s s\n' "memwatch query --since 150: first row" "$(median_of "${fs[@]}")"
