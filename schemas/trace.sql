-- memwatch trace file, schema version 3.
--
-- This file is the single source of truth for the trace format: the memwatch binary embeds
-- it at build time and runs it to create every trace, so what you read here is what is in
-- the file. A trace is an ordinary SQLite database; nothing but the sqlite3 CLI (or any
-- SQLite library) is needed to read it.
--
-- WHAT IS WHERE
--   meta      key/value facts about the file: memwatch_version, schema_version,
--             read_compat, page_size, backend; at the end of the run how changes were found
--             (changes_found_by_trap: a trap named the writer; changes_found_by_comparison:
--             a page left open because its neighbours were busy was compared at a line
--             boundary) and what watching did to memory (isolated_objects_peak and
--             isolated_pages_peak: objects moved to pages of watched data only;
--             open_pages_peak: pages left open at once); the interpreter that ran the
--             script (python_path, and python_chosen_by: --python, MEMWATCH_PYTHON,
--             VIRTUAL_ENV, PATH or default; its version is run.python_version); follow
--             (1: fork children traced too, 0: --no-follow); changes_undelivered (changes
--             a traced process could not deliver to memwatch, e.g. without a file
--             descriptor to connect with). Traces
--             made under any supported CPython (3.11 to 3.13) have the same tables.
--   run       one row: how the traced program was started, how it ended, engine counters
--   processes one row per process of the run: pid, parent, command line, start, end,
--             exit status or signal when known (meta follow = 0: children not followed)
--   objects   one row per watched object (a tag may be watched more than once)
--   changes   (view) one row per change: one check found that one object's bytes differ;
--             seq is global and increasing, time_ns counts from the start of the run. A
--             change of one range (most of them) has it in its row. Read changes here:
--             it is change_rows with the columns of the change's site
--   change_rows   what changes shows, as stored: a change's own columns, and its site_id
--   sites     who wrote: one row per process, thread, source line and native code seen
--             writing (changes written from the same place share one)
--   ranges    the changed byte ranges of the changes that have more than one
--   chunks    bulk bytes, compressed (VALUES below)
--   change_ranges   (view) one row per changed range with its tag, hex bytes and location
--   tag_summary     (view) one row per tag: changes, ranges, bytes changed, first/last seq
--   change_stats    numeric summary of each change of an object with an element type
--                   (numpy, torch, array.array, ctypes, typed memoryview): elements changed,
--                   min/max/mean of new - old, NaN and Inf that appeared or went away
--   change_numbers  (view) change_stats with each change's tag and location
--   tag_numbers     (view) change_stats per tag
--
-- STORAGE: a change is one row of change_rows: a few numbers, and its bytes when it is
-- small. Where it was written from (process, thread, file, line, function, native code)
-- is a row of sites that every change written from there shares, so no row repeats a
-- file name: a one-byte change takes about 50 bytes of the file. The view changes puts
-- them back together with version 2's columns, so every query of version 2 runs as it
-- did; to write a trace by hand, insert into change_rows (and sites).
--
-- Byte values in rows are BLOBs of exactly `length` bytes. `old` is NULL when the old bytes
-- could not be kept (memory limit reached while the program ran); `complete` is then 0.
-- A range is element-aligned for typed objects, and may include a few unchanged bytes
-- between changed ones (at most 64): they are equal in its old and new bytes;
-- changes.changed_bytes counts the bytes that differ.
--
-- VALUES: where the old and new bytes of a change are (changes.kept)
--   1  in its rows: changes.old/new (change_rows.old/new) for a change of one range,
--      ranges.old/new otherwise.
--      Changes of at most 256 bytes are kept this way under --values=full without
--      --max-trace-size, readable with any SQLite.
--   2  in chunks: larger changes; the rows' old and new are NULL.
--   0  nowhere: --values=summary keeps the ranges, changed_bytes and change_stats only.
--   3  nowhere any more: dropped to honour --values=last:N or --max-trace-size (meta's
--      values_dropped_changes and values_dropped_bytes count them).
--   NULL: in the rows (traces made by hand, as in version 1).
-- memwatch decodes them for you: `memwatch query`, `diff` and `report` show them, and
-- `memwatch query --sql` has three functions, each NULL where the bytes were not kept:
--   mw_old(seq, offset), mw_new(seq, offset)   a range's old and new bytes
--   mw_value(seq)          the object's whole value just after change seq (--values=full)
--   e.g. memwatch query --sql "SELECT seq, offset, length(mw_new(seq, offset))
--                                FROM change_ranges WHERE tag = 'weights'"
-- How chunks decode, for other readers. A chunk is a piece of one byte stream of one change:
--   role 0  the object's whole value just before change seq: its base, stored with its
--           first change under --values=full when that change does not cover the whole
--           object (so every byte of the object is known);
--   role 1  the old bytes of change seq's ranges, one range after the other in offset
--           order (zeros for a range whose old bytes are unavailable, complete = 0):
--           stored where the history cannot tell them, e.g. the first change of an
--           object, or the first one kept after older values were dropped;
--   role 2  the new bytes of its ranges, likewise.
--   part numbers the pieces of a stream (at most 1 MiB, `size` bytes once decoded).
--   codec 0: data is the bytes. codec 1: data is a zstd frame of the bytes shuffled by
--   lane. codec 2: a zstd frame of the difference to the old bytes, shuffled by lane.
--   Shuffled by lane L (1, 2, 4 or 8): the stream is read as n = size / L little-endian
--   integers of L bytes (a tail shorter than L is left as it is, byte by byte, after
--   them); byte j of integer i is stored at j * n + i. The difference of codec 2 is, per
--   integer, d = new - old modulo 2^(8L), stored zigzag-coded: (d << 1) ^ (d >> (8L - 1))
--   with an arithmetic shift, so -1 -> 1, 1 -> 2; decode with old + ((z >> 1) ^ -(z & 1)).
--   These rules have not changed since the first version 2 trace (the writer computes
--   them sixteen integers at a time where it can, to the same bytes).
--   The old bytes of a change are its role 1 stream when it has one, else the object's
--   value just before it: its base (role 0) with the new bytes of each of its earlier
--   changes (in seq order) written over it.
--
-- EXAMPLES (sqlite3 -header -column memwatch-train.1234.db)
--
--   What was watched?
--     SELECT tag, type_name, size, format, shape FROM objects;
--
--   What changed in tag 'weights', when, from what to what?
--     SELECT seq, time_ns, offset, length, old_hex, new_hex, location
--       FROM change_ranges WHERE tag = 'weights' ORDER BY seq, offset;
--
--   Which lines wrote to 'weights', and how often?
--     SELECT location, count(*) FROM change_ranges WHERE tag = 'weights'
--      GROUP BY location ORDER BY 2 DESC;
--
--   The 4 bytes at offset 16 of 'weights' as they changed over time:
--     SELECT seq, hex(substr(new, 16 - offset + 1, 4)) FROM change_ranges
--      WHERE tag = 'weights' AND offset <= 16 AND offset + length >= 20;
--
--   Where did a NaN or Inf first appear in a watched float array?
--     SELECT tag, seq, nan_appeared, inf_appeared, location FROM change_numbers
--      WHERE nan_appeared + inf_appeared > 0 ORDER BY seq LIMIT 1;
--
--   Per tag totals, and how the run ended:
--     SELECT * FROM tag_summary;
--     SELECT target, exit_status, end_signal, ended_by, changes_dropped FROM run;
--
--   From Python:
--     import sqlite3
--     db = sqlite3.connect("file:memwatch-train.1234.db?mode=ro", uri=True)
--     for seq, off, old, new in db.execute(
--             "SELECT seq, offset, old, new FROM change_ranges WHERE tag = ?", ("weights",)):
--         print(seq, off, old, new)         # old and new are bytes (old may be None)
--
-- ELEMENTS
--   An object's element type is objects.format (struct-module / PEP 3118 format: '<f',
--   'd', 'Zf' complex, '?' bool, 'T{<i:x:<d:y:}' a structure with fields x and y), with
--   itemsize, shape and strides. `memwatch query --elements` and `memwatch diff` turn the
--   ranges into elements: there is no table of elements, because one change of a large
--   array is millions of them, while its ranges are one row.
--   Where an element is: for an object whose strides leave no gaps (C or Fortran order)
--   a range's offset counts bytes of memory from the object's lowest byte, so the item at
--   offset b is number b / itemsize in memory order and its index follows from the
--   strides; for a view with gaps (a[:, ::2]) offsets count bytes of the view's value in C
--   order (what tobytes() gives), so item k of the view in C order starts at k * itemsize.
--   Ranges of typed objects are widened to whole items by the traced process, so each
--   range decodes on its own; in Python, for a C-order float32 array (format '<f' or 'f'):
--     import struct
--     for seq, off, old, new in db.execute("SELECT seq, offset, old, new FROM change_ranges"
--                                          " WHERE tag = ?", ("weights",)):
--         for i in range(0, len(new), 4):
--             print(seq, (off + i) // 4, struct.unpack_from("<f", old, i)[0] if old else None,
--                   struct.unpack_from("<f", new, i)[0])
--
-- VERSIONING
--   PRAGMA user_version is the schema version. Later versions only add tables, columns,
--   views and meta keys; meta.read_compat is the oldest reader version that can still
--   read the file. A reader refuses a file whose read_compat is newer than itself.
--   change_stats and its views came later within version 1: a reader finds them in
--   sqlite_master, and traces without them read as before.
--   Version 2 (read_compat 2: a version 1 reader cannot find its bytes) added the columns
--   of changes after native_library, the chunks table, meta's values keys, and made
--   ranges.new nullable; memwatch reads version 1 traces as before.
--   Version 3 (read_compat 3: a version 2 reader finds changes a view) stores changes in
--   change_rows and sites; the view changes has version 2's columns in their order, and
--   tag_summary counts from change_rows. memwatch reads version 1 and 2 traces as before
--   (schemas/trace-v1.sql and trace-v2.sql are their schemas).
--   Readers check this schema before reading a trace (src/trace/reader_schema.c): each
--   table here must be a table with at least these columns, none computed; each view here
--   that a file has must be exactly the definition below, comments and spacing included,
--   and changes, which readers read, must be there; no trigger or virtual table anywhere.
--   Within a version a view is never redefined: a later version may, and readers check
--   older traces against the schema of their version.

PRAGMA user_version = 3;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT
) WITHOUT ROWID;

-- The run: exactly one row, id 1.
CREATE TABLE run (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    mode            TEXT CHECK (mode IN ('script', 'module', 'command')),
    target          TEXT,      -- script path, module name or command text
    argv            TEXT,      -- the script's sys.argv as a JSON array of strings
    cwd             TEXT,
    python_version  TEXT,      -- sys.version of the traced interpreter
    pid             INTEGER,   -- of the traced process
    start_unix_ns   INTEGER,   -- wall clock, ns since 1970
    end_unix_ns     INTEGER,
    duration_ns     INTEGER,
    exit_status     INTEGER,   -- when it exited: its status; else NULL
    end_signal      INTEGER,   -- when a signal ended it: the signal number; else NULL
    core_dumped     INTEGER,   -- 1 when it left a core dump
    ended_by        TEXT CHECK (ended_by IN ('exit', 'signal')),  -- NULL: the run never
                               -- finished (memwatch itself was killed)
    changes_dropped INTEGER NOT NULL DEFAULT 0,  -- changes lost; memwatch drops none, so 0
                               -- unless the traced process died in the middle of sending one
    -- engine statistics at the end of the run; NULL when the traced process did not get to
    -- send them (killed)
    faults               INTEGER,
    checks               INTEGER,
    changes              INTEGER,
    old_unavailable      INTEGER,
    tracked_objects_peak INTEGER
);

CREATE TABLE objects (
    id           INTEGER PRIMARY KEY,  -- unique in the run
    tag          TEXT NOT NULL,        -- the name given to memwatch.watch()
    type_name    TEXT,                 -- Python type, e.g. 'numpy.ndarray'
    address      INTEGER,              -- of the first watched byte in the traced process
    size         INTEGER NOT NULL,     -- watched bytes
    readonly     INTEGER NOT NULL DEFAULT 0,
    format       TEXT,                 -- struct-module element format, e.g. '<f'; NULL unknown
    itemsize     INTEGER,              -- bytes per element; NULL unknown
    ndim         INTEGER,              -- NULL unknown
    shape        TEXT,                 -- JSON array, e.g. '[3, 4]'; NULL unknown
    strides      TEXT,                 -- JSON array, in bytes; NULL unknown
    watched_ns   INTEGER NOT NULL,     -- since the start of the run
    unwatched_ns INTEGER               -- NULL: watched until the end
);
CREATE INDEX objects_by_tag ON objects (tag);

-- Who wrote: a process, a thread, and where in its code. The writer gives one row to each
-- it sees (it may give a place seen again after a long while a new row: ids are not
-- unique places). Columns as changes shows them.
CREATE TABLE sites (
    id             INTEGER PRIMARY KEY,
    pid            INTEGER,               -- the writing process (processes.pid); NULL unknown
    thread_id      INTEGER,               -- kernel thread id of the writer
    thread_name    TEXT,
    file           TEXT,                  -- Python source of the write; NULL unknown
    line           INTEGER,               -- NULL unknown
    function       TEXT,
    native_symbol  TEXT,                  -- native code that wrote, when known
    native_library TEXT
);

-- The changes as stored; read them through the view changes below.
CREATE TABLE change_rows (
    seq            INTEGER PRIMARY KEY,   -- global order of changes in the run
    time_ns        INTEGER NOT NULL,      -- since the start of the run
    object_id      INTEGER NOT NULL REFERENCES objects (id),
    site_id        INTEGER REFERENCES sites (id),   -- NULL: the writer is unknown
    -- NULL in changes made by hand, whose ranges are all in `ranges`.
    nranges        INTEGER,               -- its changed ranges
    changed_bytes  INTEGER,               -- of their bytes, those that differ from before
    kept           INTEGER,               -- where its bytes are: VALUES above
    offset         INTEGER,               -- its range, when it has one (else in `ranges`)
    length         INTEGER,
    old            BLOB,                  -- kept = 1: the range's bytes; NULL: unavailable
    new            BLOB,
    complete       INTEGER                -- 0 when the old bytes are unavailable
);

-- One row per change, with the columns of version 2's changes table in their order.
CREATE VIEW changes AS
SELECT c.seq AS seq, c.time_ns AS time_ns, c.object_id AS object_id,
       s.thread_id AS thread_id, s.thread_name AS thread_name, s.file AS file,
       s.line AS line, s.function AS function, s.native_symbol AS native_symbol,
       s.native_library AS native_library, c.nranges AS nranges,
       c.changed_bytes AS changed_bytes, c.kept AS kept, c.offset AS offset,
       c.length AS length, c.old AS old, c.new AS new, c.complete AS complete,
       s.pid AS pid
  FROM change_rows AS c
  LEFT JOIN sites AS s ON s.id = c.site_id;

-- Every process of the run memwatch knows of: the script's own (root = 1) and, unless
-- `memwatch trace --no-follow`, its Python children, forked (fork without exec) or exec'd
-- (spawn, forkserver, subprocess of the interpreter), each traced into this one trace
-- over its own connection, and programs a traced process started that ran untraced
-- (traced = 0). A pid names one process of the run: one that exec'd keeps its row, which
-- describes its last image.
CREATE TABLE processes (
    pid           INTEGER PRIMARY KEY,
    ppid          INTEGER,              -- its parent's pid
    root          INTEGER NOT NULL DEFAULT 0,  -- 1: the process memwatch trace started
    forked        INTEGER NOT NULL DEFAULT 0,  -- 1: a fork child of a traced process
    argv          TEXT,                 -- its command line, a JSON array of strings
    start_unix_ns INTEGER,              -- wall clock when it started (or forked)
    end_unix_ns   INTEGER,              -- when its connection closed; NULL: never seen to end
    exit_status   INTEGER,              -- when known: its exit status
    end_signal    INTEGER,              -- when known: the signal that ended it
    traced        INTEGER NOT NULL DEFAULT 1   -- 0: it ran untraced
);

-- The ranges of changes with more than one (and of changes made by hand).
CREATE TABLE ranges (
    seq      INTEGER NOT NULL REFERENCES change_rows (seq),
    offset   INTEGER NOT NULL,            -- from the object's first byte
    length   INTEGER NOT NULL,
    old      BLOB,                        -- kept = 1: old bytes; NULL: unavailable
    new      BLOB,                        -- kept = 1: new bytes (NOT NULL in version 1)
    complete INTEGER NOT NULL DEFAULT 1,  -- 0 when old is unavailable
    PRIMARY KEY (seq, offset)
) WITHOUT ROWID;

-- Bulk bytes (VALUES above): pieces of one stream of one change.
CREATE TABLE chunks (
    id        INTEGER PRIMARY KEY,
    object_id INTEGER NOT NULL REFERENCES objects (id),
    seq       INTEGER NOT NULL,           -- the change
    role      INTEGER NOT NULL,           -- 0 base, 1 old bytes, 2 new bytes
    part      INTEGER NOT NULL,           -- 0, 1, ...: the stream's pieces in order
    codec     INTEGER NOT NULL,           -- 0 raw, 1 zstd, 2 zstd of the difference
    lane      INTEGER NOT NULL,           -- 1, 2, 4 or 8
    size      INTEGER NOT NULL,           -- bytes once decoded
    data      BLOB NOT NULL
);
CREATE INDEX chunks_by_change ON chunks (object_id, seq, role, part);

-- One row per changed range, for people. Hex is lower case; old_hex is NULL when the old
-- bytes are unavailable; location is 'file:line function'. old, new and their hex are
-- NULL where the bytes are not in the rows (kept: 'chunks', 'none', 'dropped'; memwatch
-- query --sql's mw_old and mw_new decode chunks).
CREATE VIEW change_ranges AS
SELECT seq, time_ns, tag, object_id, offset, length,
       CASE WHEN old IS NULL THEN NULL ELSE lower(hex(old)) END AS old_hex,
       CASE WHEN new IS NULL THEN NULL ELSE lower(hex(new)) END AS new_hex,
       complete, file, line, function, location, thread_id, thread_name, old, new, kept
  FROM (SELECT c.seq AS seq, c.time_ns AS time_ns, o.tag AS tag, c.object_id AS object_id,
               coalesce(r.offset, c.offset) AS offset,
               coalesce(r.length, c.length) AS length,
               coalesce(r.complete, c.complete, 1) AS complete,
               c.file AS file, c.line AS line, c.function AS function,
               CASE WHEN c.file IS NULL THEN c.native_symbol
                    ELSE c.file || ':' || coalesce(c.line, '?') || coalesce(' ' || c.function, '')
               END AS location,
               c.thread_id AS thread_id, c.thread_name AS thread_name,
               CASE WHEN r.seq IS NULL THEN c.old ELSE r.old END AS old,
               CASE WHEN r.seq IS NULL THEN c.new ELSE r.new END AS new,
               CASE coalesce(c.kept, 1) WHEN 1 THEN 'rows' WHEN 2 THEN 'chunks'
                    WHEN 0 THEN 'none' ELSE 'dropped' END AS kept
          FROM changes AS c
          LEFT JOIN ranges AS r ON r.seq = c.seq
          JOIN objects AS o ON o.id = c.object_id
         WHERE r.seq IS NOT NULL OR c.offset IS NOT NULL);

-- One row per tag (from change_rows: it needs no site, and a view joined from the right
-- of a LEFT JOIN would be built whole first).
CREATE VIEW tag_summary AS
SELECT o.tag             AS tag,
       count(c.seq)      AS changes,
       coalesce(sum(coalesce(c.nranges,
                             (SELECT count(*) FROM ranges AS r WHERE r.seq = c.seq))), 0)
                         AS ranges,
       coalesce(sum(coalesce(c.changed_bytes,
                             (SELECT sum(r.length) FROM ranges AS r WHERE r.seq = c.seq))), 0)
                         AS bytes_changed,
       min(c.seq)        AS first_seq,
       max(c.seq)        AS last_seq
  FROM objects AS o
  LEFT JOIN change_rows AS c ON c.object_id = o.id
 GROUP BY o.tag;

-- Numeric summary of one change of a typed object, computed by the writer (the `memwatch
-- trace` process, not the traced one) from the change's ranges. One row per change of an
-- object with an element type; none for bytes (bytearray, mmap, watch_buffer). An element
-- is one scalar: one per field of a structure, one per entry of a sub-array.
CREATE TABLE change_stats (
    seq          INTEGER PRIMARY KEY REFERENCES change_rows (seq),
    elements     INTEGER NOT NULL,            -- elements whose value changed
    unknown      INTEGER NOT NULL DEFAULT 0,  -- of which the old (or new) value is unknown
    deltas       INTEGER NOT NULL DEFAULT 0,  -- of which new - old is counted below: both
                                              -- known, a number, not complex, finite
    delta_min    REAL,                        -- NULL when deltas = 0
    delta_max    REAL,
    delta_mean   REAL,
    nan_appeared INTEGER NOT NULL DEFAULT 0,  -- float elements that became NaN
    nan_gone     INTEGER NOT NULL DEFAULT 0,  -- ... that were NaN and are not any more
    inf_appeared INTEGER NOT NULL DEFAULT 0,  -- ... that became +-Inf
    inf_gone     INTEGER NOT NULL DEFAULT 0
);

-- change_stats with each change's tag and location ('file:line function').
CREATE VIEW change_numbers AS
SELECT c.seq AS seq, c.time_ns AS time_ns, o.tag AS tag, c.object_id AS object_id,
       s.elements AS elements, s.unknown AS unknown, s.deltas AS deltas,
       s.delta_min AS delta_min, s.delta_max AS delta_max, s.delta_mean AS delta_mean,
       s.nan_appeared AS nan_appeared, s.nan_gone AS nan_gone,
       s.inf_appeared AS inf_appeared, s.inf_gone AS inf_gone,
       CASE WHEN c.file IS NULL THEN c.native_symbol
            ELSE c.file || ':' || coalesce(c.line, '?') || coalesce(' ' || c.function, '')
       END AS location
  FROM change_stats AS s
  JOIN changes AS c ON c.seq = s.seq
  JOIN objects AS o ON o.id = c.object_id;

-- change_stats per tag; delta_mean weighs each change by its counted deltas.
CREATE VIEW tag_numbers AS
SELECT tag, count(*) AS changes, sum(elements) AS elements, sum(unknown) AS unknown,
       min(delta_min) AS delta_min, max(delta_max) AS delta_max,
       sum(delta_mean * deltas) / nullif(sum(deltas), 0) AS delta_mean,
       sum(nan_appeared) AS nan_appeared, sum(nan_gone) AS nan_gone,
       sum(inf_appeared) AS inf_appeared, sum(inf_gone) AS inf_gone,
       min(CASE WHEN nan_appeared + inf_appeared > 0 THEN seq END) AS first_nonfinite_seq
  FROM change_numbers
 GROUP BY tag;

INSERT INTO meta (key, value) VALUES ('schema_version', '3'), ('read_compat', '3');
INSERT INTO run (id) VALUES (1);

-- AT THE END OF THE RUN. `memwatch trace` runs what follows when the run ends (and when
-- it is done with a trace it could not finish): keeping this index up to date while
-- changes arrive costs the writer two thirds of its speed, building it once costs little.
-- A trace whose memwatch was killed has no such index; it reads the same, more slowly.
-- Every index entry ends with its row's seq (the rowid), so one object's changes come in
-- seq order without naming seq: naming it would store it twice and sort a third longer.
CREATE INDEX changes_by_object ON change_rows (object_id);
