-- Kept as it was when version 2 came: the last schema of version 1, which readers check
-- version 1 traces against (src/trace/reader_schema.c). New traces are made by trace.sql.
--
-- memwatch trace file, schema version 1.
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
--             VIRTUAL_ENV, PATH or default; its version is run.python_version). Traces
--             made under any supported CPython (3.11 to 3.13) have the same tables.
--   run       one row: how the traced program was started, how it ended, engine counters
--   objects   one row per watched object (a tag may be watched more than once)
--   changes   one row per change: one check found that one object's bytes differ; seq is
--             global and increasing, time_ns counts from the start of the run
--   ranges    the changed byte ranges of each change, with their old and new bytes
--   change_ranges   (view) one row per changed range with its tag, hex bytes and location
--   tag_summary     (view) one row per tag: changes, ranges, bytes changed, first/last seq
--   change_stats    numeric summary of each change of an object with an element type
--                   (numpy, torch, array.array, ctypes, typed memoryview): elements changed,
--                   min/max/mean of new - old, NaN and Inf that appeared or went away
--   change_numbers  (view) change_stats with each change's tag and location
--   tag_numbers     (view) change_stats per tag
--
-- Byte values are BLOBs of exactly `length` bytes. `old` is NULL when the old bytes could
-- not be kept (memory limit reached while the program ran); `complete` is then 0.
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
--   Readers check this schema before reading a trace (src/trace/reader_schema.c): each
--   table here must be a table with at least these columns, none computed; each view here
--   that a file has must be exactly the definition below, comments and spacing included;
--   no trigger or virtual table anywhere. So a view is never redefined: a later version
--   adds a new one.

PRAGMA user_version = 1;

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

CREATE TABLE changes (
    seq            INTEGER PRIMARY KEY,   -- global order of changes in the run
    time_ns        INTEGER NOT NULL,      -- since the start of the run
    object_id      INTEGER NOT NULL REFERENCES objects (id),
    thread_id      INTEGER,               -- kernel thread id of the writer
    thread_name    TEXT,
    file           TEXT,                  -- Python source of the write; NULL unknown
    line           INTEGER,               -- NULL unknown
    function       TEXT,
    native_symbol  TEXT,                  -- native code that wrote, when known
    native_library TEXT
);
CREATE INDEX changes_by_object ON changes (object_id, seq);

CREATE TABLE ranges (
    seq      INTEGER NOT NULL REFERENCES changes (seq),
    offset   INTEGER NOT NULL,            -- from the object's first byte
    length   INTEGER NOT NULL,
    old      BLOB,                        -- NULL: old bytes unavailable
    new      BLOB NOT NULL,
    complete INTEGER NOT NULL DEFAULT 1,  -- 0 when old is unavailable
    PRIMARY KEY (seq, offset)
) WITHOUT ROWID;

-- One row per changed range, for people. Hex is lower case; old_hex is NULL when the old
-- bytes are unavailable; location is 'file:line function'.
CREATE VIEW change_ranges AS
SELECT c.seq          AS seq,
       c.time_ns      AS time_ns,
       o.tag          AS tag,
       c.object_id    AS object_id,
       r.offset       AS offset,
       r.length       AS length,
       CASE WHEN r.old IS NULL THEN NULL ELSE lower(hex(r.old)) END AS old_hex,
       lower(hex(r.new)) AS new_hex,
       r.complete     AS complete,
       c.file         AS file,
       c.line         AS line,
       c.function     AS function,
       CASE WHEN c.file IS NULL THEN c.native_symbol
            ELSE c.file || ':' || coalesce(c.line, '?') || coalesce(' ' || c.function, '')
       END            AS location,
       c.thread_id    AS thread_id,
       c.thread_name  AS thread_name,
       r.old          AS old,
       r.new          AS new
  FROM changes AS c
  JOIN ranges AS r ON r.seq = c.seq
  JOIN objects AS o ON o.id = c.object_id;

-- One row per tag.
CREATE VIEW tag_summary AS
SELECT o.tag             AS tag,
       count(DISTINCT c.seq) AS changes,
       count(r.seq)      AS ranges,
       coalesce(sum(r.length), 0) AS bytes_changed,
       min(c.seq)        AS first_seq,
       max(c.seq)        AS last_seq
  FROM objects AS o
  LEFT JOIN changes AS c ON c.object_id = o.id
  LEFT JOIN ranges AS r ON r.seq = c.seq
 GROUP BY o.tag;

-- Numeric summary of one change of a typed object, computed by the writer (the `memwatch
-- trace` process, not the traced one) from the change's ranges. One row per change of an
-- object with an element type; none for bytes (bytearray, mmap, watch_buffer). An element
-- is one scalar: one per field of a structure, one per entry of a sub-array.
CREATE TABLE change_stats (
    seq          INTEGER PRIMARY KEY REFERENCES changes (seq),
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

INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('read_compat', '1');
INSERT INTO run (id) VALUES (1);
