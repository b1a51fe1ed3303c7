#!/usr/bin/env bash
# Which coding of bulk values is best in time and size (issue 15). A benchmark, not a test.
#
# usage: bench/codec.sh [-r rounds] [-p python]
#
# Makes snapshots of real changes (bench/workloads/codec_data.py: SGD steps of the MLP of
# bench/large.sh at two learning rates, `a += 1` on float64, random edits of bytes, an
# image's `+= 1`) and codes each new snapshot against its old one with build/bench_codec,
# every way it knows: per way, the size as a share of the raw new bytes and the encode and
# decode speed (best of the rounds, one core). Then, for the SGD cases, the entropy floor
# of the coded difference (bench/workloads/codec_entropy.py).
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=3
while getopts "r:m:p:h" opt; do
    case $opt in
    r) runs=$OPTARG ;;
    *) bench_option "$opt" || { echo "usage: bench/codec.sh [-r rounds] [-p python]" >&2; exit 2; } ;;
    esac
done
need_python
bin=$here/../build/bench_codec
[ -x "$bin" ] || { echo "bench: no $bin (cmake --build build --target bench_codec)" >&2; exit 2; }
scratch_dir
"$python" "$here/workloads/codec_data.py" "$tmp"
for lane_file in "$tmp"/*.lane; do
    case=$(basename "$lane_file" .lane)
    echo "== $case ($(stat -c %s "$tmp/$case.new") bytes, lane $(cat "$lane_file"))"
    "$bin" "$tmp/$case.old" "$tmp/$case.new" "$(cat "$lane_file")" "$runs"
done
"$python" "$here/workloads/codec_entropy.py" "$tmp"
