/* Several traces read as one timeline (issue 16, item 3): `memwatch query`, `diff` and
 * `report` given two or more traces, typically one per rank of a job that torchrun, mpirun
 * or srun started with `memwatch trace` in each process, on one machine or several.
 *
 * DESIGN: each trace is opened with the readers' own guards (reader.h: regular files only,
 * schema checked, work and memory bounded), exactly as a single trace is. A trace's place
 * on the timeline is its run's wall-clock start (run.start_unix_ns) plus each change's
 * time_ns (time since that start); the timeline's zero is the earliest start. Rows are
 * merged by that wall-clock time with one open iterator per trace and a heap of their
 * current rows: memory is one row per trace, whatever the traces hold. Ties go to the
 * trace given first, so a change's ranges stay together and the order is reproducible.
 *
 * Each trace is named by its rank when one is known, else by its file name: the rank
 * recorded at trace time (meta key `rank`: memwatch trace copies RANK,
 * OMPI_COMM_WORLD_RANK, SLURM_PROCID or PMI_RANK), else a rank in the file's name
 * (`t.rank3.db`, `rank-3`, `rank_3`). When two traces would get the same name, every
 * trace is named by its path as given. */
#ifndef MW_CLI_TIMELINE_H
#define MW_CLI_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "reader.h"

/* At most this many traces in one timeline: each holds an open SQLite connection and a
 * file descriptor or two. */
#define MW_TIMELINE_MAX_TRACES 256

struct mw_timeline_trace {
    char *path;               /* as given on the command line */
    mw_trace_reader *r;
    int64_t start_unix_ns;    /* its run's wall-clock start */
    uint64_t offset_ns;       /* start - the timeline's earliest start */
    int has_rank;
    int64_t rank;
    const char *rank_from;    /* "meta" or "file name"; NULL without a rank */
    char *label;              /* "rank 3" or the file name (or path): shown raw by callers
                                 through show.h */
};

struct mw_timeline {
    struct mw_timeline_trace *t;
    size_t n;
    int64_t origin_unix_ns;   /* the earliest start */
};

/* Opens every path (n >= 1) as a trace. Refuses, with one line naming the file, a trace
 * the readers refuse, one without a run start time, and a file given twice (the same file
 * under any name). 0 on success, else the exit status after the message (MW_EXIT_USAGE
 * for unusable input, MW_EXIT_FAILURE when out of memory). */
int mw_timeline_open(char *const *paths, size_t n, struct mw_timeline *tl);
void mw_timeline_close(struct mw_timeline *tl);

/* The time of a row of trace i on the timeline: ns since the earliest start (saturated). */
uint64_t mw_timeline_time(const struct mw_timeline *tl, size_t i, uint64_t time_ns);

/* The traces' rows merged by wall clock. The filter applies to each trace (its limit is
 * ignored: callers count merged rows); seq bounds are each trace's own numbers. */
typedef struct mw_timeline_iter mw_timeline_iter;
int mw_timeline_iter_start(struct mw_timeline *tl, const struct mw_trace_filter *f,
                           mw_timeline_iter **out);
/* 1 with *row (valid until the next call), *trace (its index) and *time_ns (on the
 * timeline); 0 at the end; negative on error, after the message naming the trace. */
int mw_timeline_iter_next(mw_timeline_iter *it, struct mw_trace_row *row, size_t *trace,
                          uint64_t *time_ns);
void mw_timeline_iter_finish(mw_timeline_iter *it);

/* 0 when some trace has the tag; else the message (the tags of the traces) and its exit
 * status. */
int mw_timeline_check_tag(struct mw_timeline *tl, const char *tag);

/* `memwatch diff TAG TRACE...` (timeline_diff.c): fn, the one-trace diff, shows each trace
 * that has the tag; their blocks are merged by wall clock. The exit status. */
int mw_timeline_diff(char *const *paths, size_t n, const char *tag, mw_cli_trace_fn fn,
                     void *ctx);
/* `memwatch report TRACE... -o FILE` (timeline_report.c): one page, a lane per trace, then
 * each trace's report. The exit status. */
int mw_timeline_report(char *const *paths, size_t n, const char *output, int force,
                       uint32_t marks);

#endif
