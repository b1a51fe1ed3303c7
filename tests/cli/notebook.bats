#!/usr/bin/env bats
# Notebooks (issue 16): a notebook's code runs in a kernel, a Python child of the process
# that runs the notebook (nbconvert here, the notebook server interactively). Under
# `memwatch trace` the kernel is traced into the same trace, so a cell that imports
# memwatch and watches an array has its writes recorded with the cell's line.

bats_require_minimum_version 1.5.0

setup() {
    load common
    common_setup
    : "${MEMWATCH_PYTHON:=/usr/bin/python3}"
    require_module nbconvert python3-nbconvert
    require_module ipykernel python3-ipykernel
    require_module numpy python3-numpy
    cd "$BATS_TEST_TMPDIR"
    # Jupyter's runtime files (the kernel's connection file) stay in the test's directory.
    export JUPYTER_RUNTIME_DIR="$BATS_TEST_TMPDIR/runtime" IPYTHONDIR="$BATS_TEST_TMPDIR/ipython"
    db="$BATS_TEST_TMPDIR/nb.db"
}

q() {
    sqlite3 "$db" "$1"
}

# write_notebook FILE CELL...: a notebook of code cells, for the python3 kernel.
write_notebook() {
    "$MEMWATCH_PYTHON" - "$@" <<'PY'
import json, sys
cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
          "outputs": [], "source": src} for i, src in enumerate(sys.argv[2:])]
nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
      "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
with open(sys.argv[1], "w") as f:
    json.dump(nb, f)
PY
}

@test "memwatch trace -m nbconvert --execute: a cell's write to a watched numpy array is in the trace with the kernel's pid and the cell's line" {
    write_notebook nb.ipynb \
        $'import numpy as np\nimport memwatch\na = np.zeros(8, dtype=np.uint8)\nmemwatch.watch(a, "cell")' \
        $'x = 1\na[2:4] = (7, 8)\nprint(bytes(a).hex())'
    run -0 --separate-stderr timeout 240 "$MEMWATCH" trace -q --python "$MEMWATCH_PYTHON" -o "$db" \
        -m nbconvert --to notebook --execute nb.ipynb --output out.ipynb
    # the notebook ran as it does under python3: its cell printed the array's new bytes
    run -0 "$MEMWATCH_PYTHON" -c 'import json; print(json.load(open("out.ipynb"))["cells"][1]["outputs"][0]["text"])'
    assert_output --partial "0000070800000000"
    # the kernel: an exec'd Python child of the script, traced
    kernel=$(q "SELECT pid FROM processes WHERE argv LIKE '%ipykernel_launcher%' AND traced = 1 AND forked = 0")
    [[ $kernel =~ ^[0-9]+$ ]]
    assert_equal "$(q "SELECT ppid = (SELECT pid FROM processes WHERE root = 1) FROM processes WHERE pid = $kernel")" 1
    assert_equal "$(q "SELECT group_concat(c.pid || ':' || o.tag || ':' || c.line || ':' || c.function || ':' || c.offset || ':' || hex(c.old) || '>' || hex(c.new), ' ')
                       FROM changes c JOIN objects o ON o.id = c.object_id")" \
        "$kernel:cell:2:<module>:2:0000>0708"
    # the cell's code, as ipykernel names it
    assert_equal "$(q "SELECT file LIKE '%ipykernel_$kernel%' FROM changes")" 1
}
