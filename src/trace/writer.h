/* The trace writer: turns the record stream from the traced process into rows of the
 * trace file (schemas/trace.sql), in batched transactions on a WAL database.
 *
 * It runs in the `memwatch trace` process, not in the traced one (see record.h). */
#ifndef MW_TRACE_WRITER_H
#define MW_TRACE_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "record.h"
#include "value_store.h"

typedef struct mw_trace_writer mw_trace_writer;

struct mw_run_info {
    const char *mode;             /* "script", "module" or "command" */
    const char *target;           /* script path, module name or the command text */
    int argc;                     /* the script's sys.argv */
    char *const *argv;
    const char *cwd;
    int64_t start_unix_ns;        /* wall clock, for people */
    const char *python_path;      /* the interpreter run (meta python_path), or NULL */
    const char *python_chosen_by; /* how it was chosen (meta python_chosen_by), or NULL */
    const char *rank;             /* the process's rank in a job (meta rank), or NULL */
    const char *rank_from;        /* the variable it came from (meta rank_from) */
};

struct mw_run_end {
    int64_t end_unix_ns;
    int64_t duration_ns;
    int exit_status;              /* when it exited: the status; else -1 */
    int signal;                   /* when a signal ended it: the signal number; else 0 */
    int core_dumped;
};

/* What the end-of-run line says. */
struct mw_trace_totals {
    uint64_t objects;
    uint64_t changes;
    uint64_t ranges;
    uint64_t short_of_memory, lost_for_memory;   /* from the run's statistics (record.h) */
};

/* Creates the trace file with the schema. An existing file is an error (-EEXIST) unless
 * force is set, in which case it may be replaced if it is a memwatch trace or empty, and
 * no other run writes it (outfile.h: other statuses, each with its message in err, which
 * may be NULL). A new trace is written in place; one that replaces a file is written next
 * to it and moved over it by mw_trace_writer_finish. The file stays locked against other
 * writers until then. Runs before the script starts, so an unusable path fails early. */
int mw_trace_writer_open(const char *path, int force, mw_trace_writer **out, char *err,
                         size_t errlen);
/* mw_trace_writer_open without the message. */
int mw_trace_writer_create(const char *path, int force, mw_trace_writer **out);
int mw_trace_writer_begin_run(mw_trace_writer *w, const struct mw_run_info *run);
/* Applies one decoded record inside the current batch. */
int mw_trace_writer_apply(mw_trace_writer *w, const struct mw_rec_decoded *rec);
/* Commits the current batch (no-op when empty). */
int mw_trace_writer_commit(mw_trace_writer *w);
/* Drops the open batch, after a record could not be stored (a full disk): what the trace
 * keeps is then what earlier commits saved, the records in the order they came up to a
 * point, never a later record without an earlier one. */
void mw_trace_writer_abandon(mw_trace_writer *w);
/* Commits the batch when it is due (100 ms old, or a few thousand records); *timeout_ms
 * is then how long until the open batch is due (-1: none open). serve.h reads the
 * records and calls this between them. */
int mw_trace_writer_due(mw_trace_writer *w, int *timeout_ms);
/* A connection's stream ended: stores the change it was sending as far as it came, and
 * counts it dropped when cut_change (its last frame was cut off). */
int mw_trace_writer_end_stream(mw_trace_writer *w, int cut_change);

/* A process of the run (the processes table). argv: its arguments each NUL-terminated. */
struct mw_trace_process {
    int64_t pid, ppid;
    int root, forked, traced;
    const char *argv;
    uint32_t argv_len;
    int64_t start_unix_ns;
};
int mw_trace_writer_process(mw_trace_writer *w, const struct mw_trace_process *p);
/* The process said it is exiting (MW_REC_END), or its connection closed: what the writer
 * kept for its changes goes (a process that connects again after losing its socket stops
 * counting on it: src/python/held.h). */
void mw_trace_writer_process_exiting(mw_trace_writer *w, int64_t pid);
/* Its end as far as known: 0, -1 and 0 leave a field as it is. */
int mw_trace_writer_process_end(mw_trace_writer *w, int64_t pid, int64_t end_unix_ns,
                                int exit_status, int signal);
/* Reads records from fd (one stream, e.g. a pipe) until end of file, as serve.h reads a
 * connection. 0 at end of file. Defined in serve.c. */
int mw_trace_writer_consume_fd(mw_trace_writer *w, int fd);
/* A change that cannot be stored (run.changes_dropped). */
void mw_trace_writer_note_dropped(mw_trace_writer *w);
/* Sets the writer's error: status, and message as mw_trace_writer_errmsg gives it. */
int mw_trace_writer_fail(mw_trace_writer *w, int status, const char *message);
/* A number in meta. */
int mw_trace_writer_meta(mw_trace_writer *w, const char *key, uint64_t value);
int mw_trace_writer_end_run(mw_trace_writer *w, const struct mw_run_end *end);
void mw_trace_writer_totals(const mw_trace_writer *w, struct mw_trace_totals *out);

/* A watched float object in which a NaN or Inf appeared (for the end-of-run line). The
 * writer decodes each change of a typed object into elements as it stores it (see
 * elements.h and the change_stats table), so this costs the traced program nothing. */
struct mw_trace_nonfinite {
    const char *tag;
    uint64_t object_id;
    uint64_t nan_appeared, inf_appeared;   /* over the whole run */
    uint64_t first_seq;                    /* the first change where one appeared */
    uint64_t first_nan, first_inf;         /* how many appeared in that change */
    const char *first_file;                /* its location; NULL unknown */
    int first_line;                        /* 0 unknown */
};
/* The i-th such object in watch order: 1 and *out (valid until the writer is closed), or
 * 0 when there are no more. */
int mw_trace_writer_nonfinite(const mw_trace_writer *w, size_t i, struct mw_trace_nonfinite *out);
/* What --values and --max-trace-size left out so far: changes whose values were dropped,
 * their bytes, and changes not recorded at all for lack of room. */
void mw_trace_writer_dropped(const mw_trace_writer *w, uint64_t *values_changes,
                             uint64_t *values_bytes, uint64_t *not_recorded);
/* Which values the trace keeps (--values, --max-trace-size); before any record is
 * applied. The default: --values=full, no size limit. */
int mw_trace_writer_set_values(mw_trace_writer *w, const struct mw_values_config *cfg);
/* Commits, finishes the file (meta of the values, the end-of-run index), checkpoints and
 * closes the database, and puts the trace in its place: 0, or a
 * negative status with the message on the writer (-ENOENT: the trace was removed while
 * the run went on, -ESTALE: another file took its name; either way its changes are lost).
 * Totals stay readable; only mw_trace_writer_close may follow. */
int mw_trace_writer_finish(mw_trace_writer *w);
/* After mw_trace_writer_finish: 1 when the trace is at the path it was opened with (even
 * if finishing failed on the way: it holds what it holds), 0 when it is not. */
int mw_trace_writer_placed(const mw_trace_writer *w);
/* Finishes (when mw_trace_writer_finish did not run) and frees. Accepts NULL. */
int mw_trace_writer_close(mw_trace_writer *w);
/* The last error in words (SQLite's message or ours). */
const char *mw_trace_writer_errmsg(const mw_trace_writer *w);

#endif
