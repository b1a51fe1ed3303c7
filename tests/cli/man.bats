#!/usr/bin/env bats
# The man pages (issue 2, item 9): clean under `mandoc -Tlint`, and each page's SYNOPSIS
# says what the command's -h says.
#
# Environment (set by ctest, tests/CMakeLists.txt): MEMWATCH (the binary),
# MEMWATCH_SOURCE_DIR.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    command -v mandoc >/dev/null || fail "mandoc is missing: install the Debian package mandoc"
    MAN="$MEMWATCH_SOURCE_DIR/man"
}

# render PAGE: the page as plain text, wide enough that no line is wrapped or hyphenated.
render() {
    mandoc -Tascii -O width=1000 "$1" | sed 's/.\x08//g'
}

# page_synopsis PAGE: one line per form of the page's SYNOPSIS, whitespace normalized.
# A form starts at the section's indentation; more deeply indented lines continue it.
page_synopsis() {
    render "$1" | awk '
        /^[^ \t]/ { insec = ($0 == "SYNOPSIS"); next }
        !insec || /^[ \t]*$/ { next }
        {
            match($0, /^[ \t]*/)
            if (base == "" || RLENGTH <= base) { base = RLENGTH; if (form != "") print form; form = "" }
            form = form " " $0
        }
        END { if (form != "") print form }' | normalize
}

# usage_synopsis ARGS...: one line per form of `memwatch ARGS`'s usage: the first line
# without "usage: ", then the lines that start with whitespace and "memwatch"; other
# indented lines continue the form before them. It stops at the first empty line.
usage_synopsis() {
    "$MEMWATCH" "$@" | awk '
        NR == 1 { if (sub(/^usage: /, "") == 0) exit 1; form = $0; next }
        /^[ \t]*$/ { exit }
        /^[ \t]+memwatch( |$)/ { print form; form = $0; next }
        /^[ \t]/ { form = form " " $0; next }
        { exit }
        END { if (form != "") print form }' | normalize
}

normalize() {
    sed -e 's/[[:space:]]\{1,\}/ /g' -e 's/^ //' -e 's/ $//'
}

# options_of ARGS...: every option `memwatch ARGS` names in its help (-x, --word), once.
options_of() {
    "$MEMWATCH" "$@" | grep -oE '(^|[][ ,(|])--?[A-Za-z][-A-Za-z]*' | sed 's/^[][ ,(|]//' | sort -u
}

# assert_synopsis_matches PAGE ARGS...: PAGE's SYNOPSIS has exactly the forms of
# `memwatch ARGS`'s usage, in the same order, and PAGE mentions every option it lists.
assert_synopsis_matches() {
    # Every failure returns at once: this also runs under `run`, where errexit is off.
    local page=$1
    shift
    [ -f "$page" ] || { fail "missing man page: $page"; return 1; }
    local usage synopsis
    usage=$(usage_synopsis "$@") || { fail "'memwatch $*' does not start with 'usage: '"; return 1; }
    synopsis=$(page_synopsis "$page")
    [ -n "$usage" ] || { fail "'memwatch $*' printed no usage"; return 1; }
    [ -n "$synopsis" ] || { fail "${page##*/} has no SYNOPSIS"; return 1; }
    if [[ $usage != "$synopsis" ]]; then
        fail "$(printf '%s SYNOPSIS differs from memwatch %s\n-- usage:\n%s\n-- page:\n%s' \
            "${page##*/}" "$*" "$usage" "$synopsis")"
        return 1
    fi
    local text opt missing=()
    text=$(render "$page")
    for opt in $(options_of "$@"); do
        grep -qE -- "(^|[^-A-Za-z0-9])$opt([^-A-Za-z0-9]|\$)" <<<"$text" || missing+=("$opt")
    done
    ((${#missing[@]} == 0)) || { fail "${page##*/} does not mention: ${missing[*]}"; return 1; }
}

@test "every man page is clean under mandoc -Tlint" {
    local page n=0
    for page in "$MAN"/*.1; do
        # -W warning: every message but STYLE suggestions.
        run mandoc -Tlint -W warning "$page"
        assert_success
        assert_output ""
        n=$((n + 1))
    done
    ((n >= 4)) || fail "expected at least 4 man pages in $MAN, found $n"
}

@test "memwatch.1 SYNOPSIS matches memwatch --help" {
    assert_synopsis_matches "$MAN/memwatch.1" --help
}

@test "memwatch-trace.1 SYNOPSIS matches memwatch trace -h" {
    assert_synopsis_matches "$MAN/memwatch-trace.1" trace -h
}

@test "memwatch-query.1 SYNOPSIS matches memwatch query -h" {
    assert_synopsis_matches "$MAN/memwatch-query.1" query -h
}

@test "memwatch-diff.1 SYNOPSIS matches memwatch diff -h" {
    assert_synopsis_matches "$MAN/memwatch-diff.1" diff -h
}

@test "every command has a page and every page a command" {
    local cmd
    for cmd in $("$MEMWATCH" --help | awk '/^Commands:/ { on = 1; next } on && /^ +[a-z]/ { print $1 }'); do
        [[ $cmd == help ]] && continue
        [ -f "$MAN/memwatch-$cmd.1" ] || fail "command '$cmd' has no man page"
    done
    local page
    for page in "$MAN"/memwatch-*.1; do
        cmd=${page##*/memwatch-}
        cmd=${cmd%.1}
        run -0 "$MEMWATCH" "$cmd" -h
    done
}

@test "the SYNOPSIS comparison notices a missing option, form or page mention" {
    local page="$BATS_TEST_TMPDIR/memwatch-trace.1"
    # An option in -h but not in the page's SYNOPSIS.
    sed '/^\.Op Fl W Ar arg$/d' "$MAN/memwatch-trace.1" >"$page"
    run ! assert_synopsis_matches "$page" trace -h
    # A form missing: the SYNOPSIS without its third form (-c code).
    awk '/^\.Sh / { s = ($2 == "SYNOPSIS") } s && /^\.Nm / { n++ } !(s && n == 3)' \
        "$MAN/memwatch-trace.1" >"$page"
    run ! assert_synopsis_matches "$page" trace -h
    # The SYNOPSIS intact, but an option (-u) never described.
    sed -e 's/Fl u$/Fl U/' -e 's/Fl u /Fl U /g' "$MAN/memwatch-trace.1" >"$page"
    run -0 page_synopsis "$page"
    assert_equal "$output" "$(page_synopsis "$MAN/memwatch-trace.1")"
    run ! assert_synopsis_matches "$page" trace -h
    assert_output --partial "does not mention: -u"
    # The real page passes.
    run -0 assert_synopsis_matches "$MAN/memwatch-trace.1" trace -h
}

@test "memwatch-report.1 SYNOPSIS matches memwatch report -h" {
    assert_synopsis_matches "$MAN/memwatch-report.1" report -h
}
