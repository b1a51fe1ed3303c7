# uffd_unavailable: true only when memwatch refuses --backend uffd because this kernel lacks
# userfaultfd write-protection; any other failure is not a reason to skip a test.
uffd_unavailable() {
    local err
    err=$("$MEMWATCH" trace -q -f -o "$BATS_TEST_TMPDIR/probe.db" --backend uffd -c pass 2>&1 >/dev/null) &&
        return 1
    [[ "$err" == *"backend 'uffd' is not available"* ]]
}
