/* Shared by `memwatch query` and `memwatch diff`: output formats (rows of typed cells as
 * an aligned table, CSV with RFC 4180 quoting, a JSON array of objects, or JSON Lines; JSON
 * text itself is src/trace/json_out.h's), and opening the trace a command names (or the
 * newest one here) with its messages.
 *
 * Tables are aligned on the first TABLE_SAMPLE rows and streamed after that, so that a
 * long trace starts printing at once and memory stays bounded. */
#ifndef MW_CLI_FORMAT_H
#define MW_CLI_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum mw_format { MW_FORMAT_TABLE, MW_FORMAT_CSV, MW_FORMAT_JSON, MW_FORMAT_JSONL };

/* 0 and *out for "table", "csv", "json", "jsonl"; -1 otherwise. */
int mw_format_parse(const char *name, enum mw_format *out);

/* MW_CELL_JSON: s is JSON text (an array of indices), written as is in json/jsonl and as
 * text in tables and CSV. */
enum mw_cell_type { MW_CELL_NULL, MW_CELL_INT, MW_CELL_REAL, MW_CELL_TEXT, MW_CELL_BLOB,
                    MW_CELL_JSON };

/* A TEXT cell that is a value's repr (b'\x1b'): a table shows it unquoted (show.h). */
#define MW_CELL_F_REPR 0x1u

struct mw_cell {
    enum mw_cell_type type;
    unsigned flags;              /* MW_CELL_F_* */
    int64_t i;
    double r;
    const char *s;               /* TEXT: len bytes when len is set, else up to NUL */
    const unsigned char *blob;   /* BLOB: hex in every format (shortened in tables) */
    size_t len;
};

typedef struct mw_output mw_output;

/* Starts output of ncols columns named names[] (copied). */
mw_output *mw_output_begin(FILE *f, enum mw_format format, int ncols, const char *const *names);
/* One row of ncols cells. Returns 0, or -1 on a write error or when out of memory. */
int mw_output_row(mw_output *o, const struct mw_cell *cells);
/* Flushes, closes the JSON array, frees. Returns 0 or -1 as above. Accepts NULL. */
int mw_output_end(mw_output *o);
/* Rows written so far. */
uint64_t mw_output_rows(const mw_output *o);

/* Trace selection, shared by query and diff. Opens path, or when path is NULL the newest
 * memwatch-*.db in the current directory (saying which on stderr). On failure prints the
 * one-line message and returns the exit status (MW_EXIT_USAGE for unusable input); 0 and
 * *out on success. *shown_path (the caller frees it) is the file opened, for messages. */
struct mw_trace_reader;
int mw_cli_open_trace(const char *path, struct mw_trace_reader **out, char **shown_path);
/* Opens the trace as mw_cli_open_trace does, calls fn with it and the name it was opened
 * by, and closes it: fn's exit status, or the opening's. */
typedef int (*mw_cli_trace_fn)(struct mw_trace_reader *r, const char *path, void *ctx);
int mw_cli_with_trace(const char *path, mw_cli_trace_fn fn, void *ctx);
/* "'path' is an empty trace: no changes were recorded (N objects watched)": not an error,
 * the run changed nothing that was watched. */
void mw_cli_say_empty(const char *path, uint64_t objects);
/* Prints the unknown-tag message (listing the tags that exist) and returns its exit
 * status; or, when the lookup itself fails, its message and MW_EXIT_FAILURE. */
int mw_cli_check_tag(struct mw_trace_reader *r, const char *path, const char *tag);

#endif
