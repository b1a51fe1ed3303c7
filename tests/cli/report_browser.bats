#!/usr/bin/env bats
# memwatch report in a real browser (issue 8, Tests): headless Chromium (Debian's chromium
# package) loads the report of a known trace made by `memwatch trace`, and the test checks
# that the console stayed empty, that the page's script ran to the end, and that the
# timeline shows the expected number of marks per tag; it saves screenshots under the
# build directory (tests/report-browser/*.png) for a person to look at.
#
# How the DOM is read: `chromium --headless --dump-dom` prints the DOM after the page's
# scripts ran. The page records its own self-check there: <html data-ready="1"> when its
# script finished, data-console-errors counting window errors, policy violations and
# console.error calls (listed in #mw-errors), and per lane data-mark-count. Independently,
# --enable-logging=stderr makes Chromium log every console message as ":CONSOLE", and the
# page logs none, so any such line is a failure.
#
# Environment (set by ctest): MEMWATCH, MEMWATCH_SOURCE_DIR, MEMWATCH_BUILD_DIR.

bats_require_minimum_version 1.5.0

setup_file() {
    # The issue asks the test set-up to install the browser when it is missing; it is also
    # in cmake/install-deps.sh, so this only runs on a machine set up before it was there.
    if ! command -v chromium >/dev/null; then
        "$MEMWATCH_SOURCE_DIR/cmake/install-deps.sh" >&2 || true
    fi
}

setup() {
    load common
    load trace_fixtures
    common_setup
    : "${MEMWATCH_BUILD_DIR:?set MEMWATCH_BUILD_DIR to the build tree}"
    command -v chromium >/dev/null ||
        fail "chromium is missing: install the Debian package chromium (cmake/install-deps.sh)"
    SHOTS="$MEMWATCH_BUILD_DIR/tests/report-browser"
    mkdir -p "$SHOTS"
    cd "$BATS_TEST_TMPDIR"
}

# browser ARGS... URL: headless Chromium with a fresh profile and nothing that reaches out.
browser() {
    local profile
    profile=$(mktemp -d "$BATS_TEST_TMPDIR/profile.XXXXXX")
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-extensions --user-data-dir="$profile" \
        --window-size=1400,1000 --virtual-time-budget=10000 "$@"
}

# load_page PAGE: sets $dom to the DOM after the page's scripts ran and $console to the
# console messages Chromium logged; fails on any console message or page error.
load_page() {
    local log="$BATS_TEST_TMPDIR/chromium.log"
    dom=$(browser --enable-logging=stderr --v=0 --dump-dom "file://$PWD/$1" 2>"$log") ||
        fail "chromium failed on $1: $(tail -5 "$log")"
    console=$(grep ':CONSOLE' "$log" || true)
    [[ -z $console ]] || fail "console messages while loading $1: $console"
    [[ $dom == *'data-ready="1"'* ]] || fail "the page's script did not finish: $(attr_of html data-console-errors) errors: $(grep -A3 'id="mw-errors"' <<<"$dom")"
    assert_equal "$(attr_of html data-console-errors)" 0
}

# attr_of ELEMENT ATTRIBUTE: the attribute's value on the first such element of $dom.
attr_of() {
    grep -o "<$1 [^>]*" <<<"$dom" | grep -o " $2=\"[^\"]*\"" | head -1 | sed 's/.*="\(.*\)"/\1/'
}

# marks_of TAG: the timeline lane's data-mark-count for TAG.
marks_of() {
    grep -o "<div class=\"lane[^\"]*\" data-tag=\"$1\"[^>]*>" <<<"$dom" | grep -o 'data-mark-count="[0-9]*"' | tr -dc 0-9
}

screenshot() {
    browser --hide-scrollbars --screenshot="$2" "file://$PWD/$1" 2>/dev/null || fail "no screenshot of $1"
    [ -s "$2" ] || fail "empty screenshot $2"
    [[ $(head -c 4 "$2" | od -An -c | tr -d ' ') == '211PNG' ]] || fail "$2 is not a PNG"
}

@test "the report of a traced script loads in Chromium without console errors and shows every change" {
    cat >demo.py <<'PY'
import array
import memwatch
import numpy as np

counter = bytearray(256)
memwatch.watch(counter, "counter")
grid = np.zeros((8, 16), dtype=np.float32)
memwatch.watch(grid, "grid")
vals = array.array("d", [0.0] * 32)
memwatch.watch(vals, "vals")


def bump(i):
    counter[i * 8] = i + 1


def fill(r):
    grid[r, r * 2] = r + 0.5


for i in range(12):
    bump(i)
    memwatch.check()
for r in range(8):
    fill(r)
    memwatch.check()
    vals[r] = r * 1.5 + 1
    memwatch.check()
grid[3, 5] = float("nan")
memwatch.check()
PY
    run_memwatch -0 trace -q -f --check manual -o demo.db demo.py
    run_memwatch -0 report -f demo.db
    load_page demo.html
    # One mark per change: 12 writes of a byte, 8 + 1 of a float32 grid, 8 of doubles.
    assert_equal "$(marks_of counter)" 12
    assert_equal "$(marks_of grid)" 9
    assert_equal "$(marks_of vals)" 8
    assert_equal "$(attr_of body data-aggregated)" false
    # The NaN written at grid[3, 5] is found, named by element, and the line that wrote it.
    [[ $dom == *'data-nonfinite="1"'* ]] || fail "NaN not counted"
    [[ $dom == *'<td class="mono">[3, 5]</td><td>NaN</td>'* ]] || fail "NaN event not listed with its element"
    [[ $dom == *"demo.py:29 &lt;module&gt;"* ]] || fail "the NaN's writer is not shown"
    # A heatmap per tag; the grid's by element row and column.
    [[ $dom == *'<div class="heat" data-tag="grid" data-max="1" data-cells-nonzero="9"'* ]] ||
        fail "grid heatmap: $(grep -o '<div class="heat" data-tag="grid"[^>]*>' <<<"$dom")"
    [[ $dom == *'elements as rows × columns: 8 × 16; C order'* ]] || fail "grid heatmap is not 2-D"
    # Top writers name the functions.
    [[ $dom == *'data-loc="'*'demo.py:14 bump"'* ]] || fail "bump() is not among the writers"
    screenshot demo.html "$SHOTS/demo.png"
}

@test "the report of a 30,000-change trace is aggregated, says so, and loads without errors" {
    make_empty_trace big.db
    sqlite3 big.db <<'SQL'
INSERT INTO objects (id, tag, size, format, itemsize, ndim, shape, strides, watched_ns) VALUES
  (2, 'weights', 40000, '<f', 4, 2, '[100, 100]', '[400, 4]', 0),
  (3, 'bias', 800, '<d', 8, 1, '[100]', '[8]', 0);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
INSERT INTO change_rows (seq, time_ns, object_id, site_id)
SELECT i, i * 10000, 2 + i % 2, 1 + i % 5 FROM n;
INSERT INTO sites (id, file, line, function)
SELECT id, 'train.py', 9 + id, 'step' FROM (SELECT DISTINCT site_id AS id FROM change_rows);
INSERT INTO ranges (seq, offset, length, old, new)
SELECT seq, CASE WHEN seq % 2 = 0 THEN (seq * 4) % 40000 ELSE (seq * 8) % 800 END,
       CASE WHEN seq % 2 = 0 THEN 4 ELSE 8 END, zeroblob(CASE WHEN seq % 2 = 0 THEN 4 ELSE 8 END),
       CASE WHEN seq = 20000 THEN x'0000c07f' WHEN seq % 2 = 0 THEN x'0000803f'
            ELSE x'000000000000f03f' END
  FROM changes;
INSERT INTO meta (key, value) VALUES ('max_trace_size', '1048576'), ('changes_not_recorded', '4200');
SQL
    run_memwatch -0 report big.db
    load_page big.html
    assert_equal "$(attr_of body data-aggregated)" true
    # The changes --max-trace-size left out are named with the run, not only in meta.
    [[ $dom == *"<dt>changes not recorded</dt><dd>4,200 (the trace reached --max-trace-size, 1.00 MiB)</dd>"* ]] ||
        fail "the page does not say that changes were not recorded"
    [[ $dom == *"This trace has 30,000 changes. The timeline draws 20,001 of them"* ]] ||
        fail "the page does not say what was aggregated"
    # 10,000 marks each, plus the NaN event, which is always drawn.
    local w b
    w=$(marks_of weights)
    b=$(marks_of bias)
    assert_equal "$((w + b))" 20001
    assert_equal "$b" 10000
    echo "# redraw of the timeline: $(attr_of html data-redraw-ms) ms" >&3
    screenshot big.html "$SHOTS/big.png"
}
