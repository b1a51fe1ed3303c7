#!/usr/bin/env bats
# The Debian package (issue 17): `cpack -G DEB` in the build directory makes one, it holds
# memwatch, its injected libraries, the man pages and the bash completion, declares what
# it depends on, and its files work wherever they are unpacked (memwatch finds its
# libraries relative to its own executable).
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH, MEMWATCH_PYTHON,
# MEMWATCH_PYTHONS (every interpreter memwatch is built for, colon-separated),
# MEMWATCH_BUILD_DIR, MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup_file() {
    : "${MEMWATCH_BUILD_DIR:?}"
    command -v cpack >/dev/null || skip "cpack (CMake's packager) is missing"
    command -v dpkg-deb >/dev/null || skip "dpkg-deb is missing"
    # One package for the whole file: it takes a few seconds to make.
    export PKG_DIR="$BATS_FILE_TMPDIR/pkg"
    cpack -G DEB -B "$PKG_DIR" --config "$MEMWATCH_BUILD_DIR/CPackConfig.cmake" >"$BATS_FILE_TMPDIR/cpack.log" 2>&1 ||
        { cat "$BATS_FILE_TMPDIR/cpack.log" >&3; return 1; }
}

setup() {
    load common
    common_setup
    cd "$BATS_TEST_TMPDIR"
    deb=$(echo "$PKG_DIR"/memwatch_*.deb)
    [[ -f $deb ]] || fail "no memwatch_*.deb in $PKG_DIR"
}

@test "the package holds memwatch, a library per interpreter version, the man pages and the completion" {
    run -0 dpkg-deb -c "$deb"
    assert_line --regexp ' \./usr/bin/memwatch$'
    local p version
    IFS=: read -ra all <<<"${MEMWATCH_PYTHONS:-$MEMWATCH_PYTHON}"
    for p in "${all[@]}"; do
        version=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        assert_line --regexp " \./usr/lib/memwatch/libmemwatch-inject-$version\.so$"
    done
    for page in memwatch memwatch-trace memwatch-query memwatch-diff memwatch-report; do
        assert_line --regexp " \./usr/share/man/man1/$page\.1$"
    done
    assert_line --regexp ' \./usr/share/bash-completion/completions/memwatch$'
    run -0 dpkg-deb -f "$deb" Package Depends
    assert_line "Package: memwatch"
    assert_line --regexp '^Depends: .*python3'
    assert_line --regexp '^Depends: .*libsqlite3-0'
}

@test "unpacked under any directory, it traces a script with each interpreter" {
    dpkg-deb -x "$deb" root
    # Moved elsewhere after unpacking: nothing points at where it was built or unpacked.
    mkdir -p elsewhere/opt
    mv root/usr elsewhere/opt/memwatch
    local mw=$PWD/elsewhere/opt/memwatch/bin/memwatch
    printf 'import memwatch\nb = bytearray(8)\nmemwatch.watch(b, "b")\nb[2] = 9\n' >w.py
    local p
    IFS=: read -ra all <<<"${MEMWATCH_PYTHONS:-$MEMWATCH_PYTHON}"
    for p in "${all[@]}"; do
        run -0 "$mw" trace -q -f -o t.db --python "$p" w.py
        run -0 "$mw" query -f csv --sql "SELECT offset, new_hex, line FROM change_ranges" t.db
        assert_output "$(printf 'offset,new_hex,line\n2,09,4')"
    done
    run -0 "$mw" --version
    run -0 bash -c 'mandoc -Tascii "$1" | col -b' _ elsewhere/opt/memwatch/share/man/man1/memwatch-trace.1
    assert_line "WHICH PYTHON"
}

@test "the installed completion completes subcommands, options and the newest trace's tags" {
    dpkg-deb -x "$deb" root
    local mw=$PWD/root/usr/bin/memwatch
    printf 'import memwatch\nb = bytearray(8)\nmemwatch.watch(b, "weights")\nb[1] = 1\n' >w.py
    "$mw" trace -q --python "$MEMWATCH_PYTHON" -o memwatch-w.1.db w.py
    run -0 bash -c '
        source "$1"
        complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _memwatch; echo "${COMPREPLY[*]}"; }
        complete_words "$2" qu
        complete_words "$2" trace --ch
        complete_words "$2" diff ""' _ root/usr/share/bash-completion/completions/memwatch "$mw"
    assert_line --index 0 "query"
    assert_line --index 1 "--check"
    assert_line --index 2 "weights"
}
