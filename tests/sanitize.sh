#!/bin/sh
# The extra CI stage (issue 9): the suite again under sanitizers, and a bounded fuzz run.
# tests/run-all.sh calls it when MEMWATCH_CI_EXTRA=1 (.ci/run sets it); run it alone with
#   sh tests/sanitize.sh [stage ...]      stages: asan tsan leaks fuzz (default: all four)
#
#   asan   build-asan: -DMEMWATCH_SANITIZE=ON (ASan + UBSan, fault-path code included) and
#          the whole ctest suite. Traced scripts run in Debian's python3, which is not
#          sanitized: the launcher puts the ASan runtime first in LD_PRELOAD, ahead of the
#          injected library (cli/launch.c, MEMWATCH_SANITIZE_PRELOAD), and sets
#          ASAN_OPTIONS=detect_leaks=0 for the interpreter (its leaks are not ours).
#   tsan   build-tsan: the C unit tests and the writer stress test under ThreadSanitizer
#          (see TSAN_EXCLUDE below for what is left out and why).
#   leaks  the C unit tests of build-asan again with LeakSanitizer made explicit
#          (detect_leaks=1): any leak fails them.
#   fuzz   build-fuzz (clang, -DMEMWATCH_FUZZ=ON): tests/fuzz/fuzz_trace_readers for
#          MEMWATCH_FUZZ_SECONDS (60) over tests/fuzz/corpus. A crash leaves its input in
#          build-fuzz/artifacts/; copy it into tests/fuzz/regressions/ with the fix, and
#          the normal suite (fuzz.replay) replays it from then on.
# Build directories go under MEMWATCH_SANITIZE_ROOT (default: the source tree).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
root=${MEMWATCH_SANITIZE_ROOT:-$src}
jobs=$(nproc)
stages=${*:-asan tsan leaks fuzz}

# The unit tests ThreadSanitizer cannot run: they take SIGSEGV/SIGBUS on protected pages
# and single-step with SIGTRAP inside the handler. TSan defers asynchronous signals and
# wraps handlers in its own, and the engine's handler deliberately runs lock-free code
# that TSan cannot see paired with the faulting thread's accesses (the page copy in one
# thread's handler and another thread's write are ordered by the page's protection, which
# TSan does not model, so it reports them as a race); the fault path is covered by the
# ASan+UBSan run and by test_uffd_concurrency and the soak test instead.
TSAN_EXCLUDE='unit\.test_(detect_mprotect|detect_uffd|signal_chain|watcher|uffd_concurrency|shadow|coalesce_gap)$'

# The tests AddressSanitizer cannot run: a fork child that memwatch follows starts a thread
# of its own, and GCC 12's ASan allocator takes no fork handlers, so an allocator lock held
# by another of the parent's threads at the fork is never released in the child, and that
# thread's first allocation waits forever (seen as a hung Pool worker). The fork paths run
# in the plain build's suite; the rest of the suite runs under ASan.
ASAN_EXCLUDE='^cli\.(processes|shared_memory)(\.py3\.[0-9]+)?$'

# Each stage's own time, so CI's budget can be checked stage by stage.
stamp() { printf '== %s: %s (%ss)\n' "$1" "$2" "$(( $(date +%s) - start ))"; }

for stage in $stages; do
    start=$(date +%s)
    case $stage in
    asan)
        cmake -S . -B "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMWATCH_WERROR=ON \
            -DMEMWATCH_SANITIZE=ON >/dev/null
        cmake --build "$root/build-asan" -j"$jobs"
        # halt_on_error: the first report fails the test that made it.
        # verify_asan_link_order=0: tests that run memwatch with the user's own LD_PRELOAD
        # (fidelity.bats) put that library ahead of the runtime of the sanitized binary.
        ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:verify_asan_link_order=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
            ctest --test-dir "$root/build-asan" --output-on-failure -j2 --timeout 600 \
            -E "$ASAN_EXCLUDE"
        stamp asan "whole suite passed under ASan+UBSan"
        ;;
    tsan)
        cmake -S . -B "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMWATCH_WERROR=ON \
            -DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
            -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
            -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
        targets=$(cd tests/unit && ls test_*.c | sed 's/\.c$//')
        # shellcheck disable=SC2086
        cmake --build "$root/build-tsan" -j"$jobs" --target $targets
        TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
        MW_STRESS_CHANGES=${MW_STRESS_CHANGES:-20000} \
            ctest --test-dir "$root/build-tsan" --output-on-failure -j2 -R '^unit\.' \
            -E "$TSAN_EXCLUDE"
        stamp tsan "C unit tests and writer stress passed under TSan"
        ;;
    leaks)
        [ -d "$root/build-asan" ] || { echo "sanitize.sh: run the asan stage first" >&2; exit 2; }
        ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
            ctest --test-dir "$root/build-asan" --output-on-failure -j2 -R '^unit\.'
        stamp leaks "no leaks in the C unit tests"
        ;;
    fuzz)
        CC=clang cmake -S . -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DMEMWATCH_FUZZ=ON >/dev/null
        cmake --build "$root/build-fuzz" -j"$jobs" --target fuzz_trace_readers fuzz_replay
        work=$(mktemp -d)
        mkdir -p "$root/build-fuzz/artifacts"
        # New inputs go to a scratch directory; the corpus in the tree is only read.
        # allocator_may_return_null: a trace that claims a huge object must get an error,
        # not abort inside malloc; -rss_limit_mb still catches real runaway memory.
        ASAN_OPTIONS=allocator_may_return_null=1:halt_on_error=1 \
            "$root/build-fuzz/fuzz_trace_readers" -max_total_time="${MEMWATCH_FUZZ_SECONDS:-60}" \
            -timeout=30 -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
            -artifact_prefix="$root/build-fuzz/artifacts/" \
            "$work" tests/fuzz/corpus tests/fuzz/values-corpus tests/fuzz/regressions || {
                rm -rf "$work"
                echo "sanitize.sh: the fuzzer found a crash: see $root/build-fuzz/artifacts/" >&2
                exit 1
            }
        rm -rf "$work"
        stamp fuzz "bounded fuzz run of the trace readers found nothing"
        ;;
    *)
        echo "sanitize.sh: unknown stage '$stage' (asan tsan leaks fuzz)" >&2
        exit 2
        ;;
    esac
done
