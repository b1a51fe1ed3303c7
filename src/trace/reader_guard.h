/* The guards around a reader's SQLite connection (reader.c): a trace is a file anyone can
 * hand to memwatch, and SQLite runs what a database says. A view named like one of the
 * trace's tables is a query of the file's own choosing (a recursive CTE that never ends,
 * values built with zeroblob that fill the memory), a trigger or a virtual table is code,
 * and a FIFO in place of the file blocks the open. So a reader:
 *   - opens only regular files, without blocking (reader.c);
 *   - opens them read-only, in SQLite's defensive mode, with trusted_schema off, without
 *     triggers, extension loading or FTS3 tokenizers;
 *   - checks the schema before it reads anything (reader_schema.c);
 *   - bounds the work of everything it runs on the file, its own queries and the user's
 *     (query --sql) alike: a budget of virtual machine steps that grows with the file's
 *     size, so that any real trace reads in full and a small hostile one stops at once;
 *   - bounds memory: no value longer than MW_READER_MAX_VALUE, and SQLite's heap in the
 *     process at most MW_READER_HEAP_LIMIT;
 *   - lets statements only read, through an authorizer that admits reads, the SQL
 *     functions on a list of safe ones (no fts3_tokenizer, no load_extension) and PRAGMAs
 *     that only tell something; no ATTACH, no write, no PRAGMA that sets.
 * When one of these stops a statement, the statement fails and the guard says why. */
#ifndef MW_TRACE_READER_GUARD_H
#define MW_TRACE_READER_GUARD_H

#include <stdint.h>

typedef struct sqlite3 sqlite3;

/* Every trace may take this many virtual machine steps (about a second), plus
 * MW_READER_STEPS_PER_BYTE per byte of the file (and of its -wal). Reading a real trace
 * takes less than one step per byte in every command (measured on traces of 200,000
 * changes and of 100,000 tags: query, query -e, query -s, diff, report: 0.1 to 0.5), so
 * the budget only stops what no trace of that size needs. */
#define MW_READER_BASE_STEPS (50ull * 1000 * 1000)
#define MW_READER_STEPS_PER_BYTE 100ull
/* The longest string or BLOB a reader takes: twice the writer's own bound (a record frame,
 * MW_REC_MAX_FRAME), so every value a real trace holds is read. */
#define MW_READER_MAX_VALUE (64 << 20)
/* SQLite's memory in a reading process, set by the first reader unless something set a
 * limit already; a real trace needs a few MiB (the page cache, one row, the sorter). */
#define MW_READER_HEAP_LIMIT (512ll << 20)

struct mw_reader_guard {
    uint64_t budget;          /* steps the connection may take, in all */
    uint64_t used;
    int stopped;              /* the budget ran out: every long statement since fails */
    char denied[192];         /* what the authorizer refused last, for people */
    int denied_write;         /* ... and whether it was a change to the database */
};

/* Opens path read-only with the guards above (g is kept by the connection: it must
 * outlive it); bytes is the size of the file and its -wal. limit_heap: set SQLite's
 * process-wide heap limit (a reader of traces; not a writer checking what it replaces).
 * Returns SQLite's status; *db is set whenever SQLite made a handle (close it). */
int mw_reader_guard_open(const char *path, uint64_t bytes, int limit_heap,
                         struct mw_reader_guard *g, sqlite3 **db);
/* After a statement on the connection failed: why, in words, when a guard stopped it
 * (the budget, the memory bounds, the authorizer); else NULL. */
const char *mw_reader_guard_reason(const struct mw_reader_guard *g, sqlite3 *db, char *buf,
                                   unsigned size);

#endif
