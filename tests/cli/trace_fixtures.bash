# Trace fixtures for the query, diff and report tests, made with nothing but the sqlite3 CLI
# and the schema file memwatch embeds: that the schema is usable this way is part of what
# these tests check. Needs $MEMWATCH_SOURCE_DIR; trace_fixture_setup needs common.bash.

# trace_fixture_setup: common_setup, then make_trace's trace as t.db in the test's own
# directory, the current one.
trace_fixture_setup() {
    common_setup
    cd "$BATS_TEST_TMPDIR"
    make_trace t.db
}

# The rows every fixture trace shares, whatever its schema version.
trace_fixture_head() {
    cat <<'SQL'
INSERT INTO meta (key, value) VALUES ('memwatch_version', 'test'), ('backend', 'test');
UPDATE run SET mode = 'script', target = 'train.py', argv = '["train.py"]', cwd = '/tmp',
               exit_status = 0, ended_by = 'exit';
INSERT INTO objects (id, tag, type_name, address, size, format, itemsize, ndim, shape,
                     strides, watched_ns) VALUES
  (1, 'weights', 'bytearray', 4096, 64, 'B', 1, 1, '[64]', '[1]', 1000),
  (2, 'bias', 'array.array', 8192, 16, 'f', 4, 1, '[4]', '[4]', 2000);
INSERT INTO ranges (seq, offset, length, old, new, complete) VALUES
  (1, 0, 4, x'00000000', x'01020304', 1),
  (1, 20, 1, x'00', x'41', 1),
  (2, 4, 4, x'0000803f', x'00000040', 1),
  (3, 2, 2, x'0304', x'ffff', 1),
  (3, 40, 24, NULL, x'000102030405060708090a0b0c0d0e0f1011121314151617', 0);
SQL
}

# make_trace FILE: two tags, three changes, one range with its old bytes unavailable. The
# changes are rows of change_rows naming their sites (where they were written from).
make_trace() {
    sqlite3 "$1" < "$MEMWATCH_SOURCE_DIR/schemas/trace.sql" || return
    { trace_fixture_head; cat <<'SQL'; } | sqlite3 "$1"
INSERT INTO sites (id, thread_id, thread_name, file, line, function) VALUES
  (1, 101, 'MainThread', 'train.py', 10, 'step'),
  (2, 101, 'MainThread', 'train.py', 11, 'step'),
  (3, 102, 'worker', 'train.py', 20, 'update');
INSERT INTO change_rows (seq, time_ns, object_id, site_id) VALUES
  (1, 1500000, 1, 1),
  (2, 2500000, 2, 2),
  (3, 3500000, 1, 3);
SQL
}

# make_trace_v2 FILE: make_trace's trace as version 2 wrote it (schemas/trace-v2.sql),
# where changes is a table with the site's columns in each row.
make_trace_v2() {
    sqlite3 "$1" < "$MEMWATCH_SOURCE_DIR/schemas/trace-v2.sql" || return
    { trace_fixture_head; cat <<'SQL'; } | sqlite3 "$1"
INSERT INTO changes (seq, time_ns, object_id, thread_id, thread_name, file, line, function)
VALUES
  (1, 1500000, 1, 101, 'MainThread', 'train.py', 10, 'step'),
  (2, 2500000, 2, 101, 'MainThread', 'train.py', 11, 'step'),
  (3, 3500000, 1, 102, 'worker', 'train.py', 20, 'update');
SQL
}

# make_empty_trace FILE: a trace of a run that watched one object and saw no change.
make_empty_trace() {
    sqlite3 "$1" < "$MEMWATCH_SOURCE_DIR/schemas/trace.sql" || return
    sqlite3 "$1" "INSERT INTO objects (id, tag, size, watched_ns) VALUES (1, 'idle', 8, 0);"
}

# trace_as_v2 SRC DST: the trace SRC (version 3) rewritten as version 2 wrote it
# (schemas/trace-v2.sql): each change a row of the table changes, with its site's columns.
trace_as_v2() {
    sqlite3 "$2" < "$MEMWATCH_SOURCE_DIR/schemas/trace-v2.sql" || return
    sqlite3 "$2" <<SQL
ATTACH '$1' AS s;
DELETE FROM meta; INSERT INTO meta SELECT * FROM s.meta;
UPDATE meta SET value = '2' WHERE key IN ('schema_version', 'read_compat');
DELETE FROM run; INSERT INTO run SELECT * FROM s.run;
INSERT INTO objects SELECT * FROM s.objects;
INSERT INTO processes SELECT * FROM s.processes;
INSERT INTO changes SELECT * FROM s.changes;
INSERT INTO ranges SELECT * FROM s.ranges;
INSERT INTO chunks SELECT * FROM s.chunks;
INSERT INTO change_stats SELECT * FROM s.change_stats;
SQL
}
