# What the benchmarks share; sourced by bench/*.sh, not run. After it: $here (bench/),
# $memwatch and $python (from $MEMWATCH and $MEMWATCH_PYTHON, or the build's memwatch and
# /usr/bin/python3), and the helpers below.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
memwatch=${MEMWATCH:-$here/../build/memwatch}
python=${MEMWATCH_PYTHON:-/usr/bin/python3}

# bench_option OPT: the options every benchmark takes, from getopts: -m memwatch and
# -p python. Returns 1 when OPT is not one of them.
bench_option() {
    case $1 in
    m) memwatch=$OPTARG ;;
    p) python=$OPTARG ;;
    *) return 1 ;;
    esac
}

# need_memwatch, need_python: exit 2 with a message when there is none to run.
need_memwatch() {
    [ -x "$memwatch" ] || { echo "bench: no memwatch binary at '$memwatch' (use -m)" >&2; exit 2; }
}
need_python() {
    [ -x "$python" ] || { echo "bench: no python at '$python' (use -p)" >&2; exit 2; }
}

# scratch_dir [WHAT]: a new directory in $tmp, removed when the benchmark exits; or kept,
# when WHAT (what it will hold) is given, and named.
scratch_dir() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/memwatch-bench.XXXXXX")
    if (($#)); then
        echo "bench: keeping $1 in $tmp"
    else
        trap 'rm -rf "$tmp"' EXIT
    fi
}

# median [FIELD]: the median of field FIELD (default 1) of the lines on stdin; the mean of
# the two middle values for an even count.
median() {
    awk -v f="${1:-1}" '{ print $f }' | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# median_of VALUE...: the median of the values; the lower middle one for an even count, so
# that it is always a value that was measured.
median_of() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
