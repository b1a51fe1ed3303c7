/* The report's model of a trace (see report.c, DESIGN): what the first read finds (objects,
 * tags, lanes, quotas) and what the second read aggregates (locations, marks, NaN/Inf
 * events, heatmap cells). Shared by report*.c only.
 *
 * Errors: a phase records the first failure's status and message in the report
 * (mw_report_fail) and returns the status; later failures keep the first message, the one
 * that explains. */
#ifndef MW_TRACE_REPORT_MODEL_H
#define MW_TRACE_REPORT_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "elements.h"
#include "report.h"
#include "report_index.h"

enum {
    TIME_BINS = 1000,          /* density bins per lane */
    TOP_WRITERS = 100,         /* by changes, and again by bytes */
    WRITER_TAGS = 4,           /* tags named per writer */
    NONFINITE_LISTED = 1000,   /* NaN/Inf events listed on the page */
    NONFINITE_MARKS = 5000,    /* NaN/Inf events drawn as marks beyond max_marks */
    PREVIEW = 16,              /* bytes of a mark's first range kept for the page */
    MAX_DIMS = 32,
};

/* Kinds of a NaN/Inf event, as the page names them. */
enum { NF_NONE, NF_NAN, NF_INF, NF_NAN_OR_INF, NF_POSSIBLE };

/* A lane's heatmap (report_heat.c). */
struct heat {
    uint64_t unit;             /* bytes per unit (1 for bytes, itemsize for elements) */
    uint64_t units;            /* in the object */
    uint64_t minor_n;          /* units per major row (units for one dimension) */
    uint64_t major_n;
    uint64_t major_bw, minor_bw;   /* units per bin */
    uint32_t major_bins, minor_bins;
    int transpose;             /* Fortran order: display rows are the minor axis */
    int dims;                  /* 1 or 2 as displayed */
    const char *kind;          /* "bytes" or "elements" */
    int64_t *diff;             /* major_bins * (minor_bins + 1) */
};

struct tag {
    char *name;
    size_t first_object;       /* index into objects */
    uint64_t objects, changes, ranges, bytes;
    uint64_t first_seq, last_seq, first_t, last_t;
    uint64_t nonfinite, nonfinite_possible, nonfinite_gone;
    uint64_t quota, rank, marks;
    int lane;                  /* -1: the "other tags" lane (when there is one) */
    int uniform;               /* every object of the tag has the same geometry */
    int float_checked;         /* NaN/Inf detection applies */
    struct heat heat;          /* lanes only */
};

struct object {
    int64_t id;
    size_t tag;
    uint64_t size;
    uint64_t changes;          /* from the first read */
    char *format, *shape_text, *type_name;
    int itemsize;
    int ndim;
    uint64_t shape[MAX_DIMS];
    char order;                /* 'C', 'F', 'V' (a view with gaps: offsets count bytes of
                                  its value in C order), or 0 (unknown) */
    uint64_t items;            /* product of the shape, when known */
    int float_size;            /* 2, 4, 8 when NaN/Inf can be detected, else 0 */
    int big_endian;            /* of the float: which of its bytes hold the exponent */
    struct mw_elem_scalar fscalar;   /* the float, as elements.c decodes it */
};

struct location {
    char *file, *function, *native;
    int line;
    uint64_t changes, bytes;
    uint32_t tags[WRITER_TAGS];
    int ntags, more_tags;
    int64_t out_index;         /* in the page's location table, -1 when not referenced */
};

struct mark {
    uint64_t seq, t;
    uint32_t tag;
    uint32_t loc;
    uint32_t nranges;
    uint64_t bytes;
    uint64_t off, len;         /* the first range */
    unsigned char new_[PREVIEW], old[PREVIEW];
    uint8_t preview_len, has_old;
    uint8_t not_kept;          /* its bytes: 0 kept, 1 not kept (--values=summary), 2 dropped */
    uint8_t nonfinite;         /* NF_* of the change, 0 none */
    int64_t elements;          /* elements changed (change_stats), -1 unknown */
    int64_t pid;               /* the writing process, 0 unknown */
};

struct nf_event {
    uint64_t seq, t, element;
    uint32_t tag, loc;
    uint8_t kind;
};

struct report {
    sqlite3 *db;
    FILE *out;
    char *err;
    size_t errlen;
    int status;

    struct object *objects;
    size_t nobjects, objects_cap;
    struct tag *tags;
    size_t ntags, tags_cap;
    uint32_t *lane_tags;        /* lane -> tag index */
    uint32_t nlanes;
    int other_lane;             /* 1 when tags beyond the lanes exist */
    uint32_t *density;          /* (nlanes + other_lane) * TIME_BINS */

    uint64_t total_changes, tmax;
    uint32_t max_marks;

    struct location *locs;
    size_t nlocs, locs_cap;
    struct mw_report_index loc_index;

    struct mark *marks;
    size_t nmarks, marks_cap;
    size_t nonfinite_marks;
    struct nf_event *nf;
    size_t nnf;
    uint64_t nf_total, nf_possible, nf_gone;
    uint64_t changes_without_ranges;
    int elements_table;
    int change_stats;           /* the trace has the change_stats table */
    int values_v2;              /* changes keep their bytes as version 2 says (kept) */
    int has_pid;                /* changes name their process (changes.pid) */
    struct mw_value_reader *values;   /* decodes chunks when bytes are shown; made on use */
    int stats_used;             /* some change's NaN/Inf counts came from there */
};

/* FNV-1a over a string, NULL hashing apart from "", for the report's hash tables. */
static inline uint64_t mw_report_hash_str(uint64_t h, const char *s)
{
    if (!s)
        return h * 1099511628211u + 1;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h * 1099511628211u;
}

/* qsort's order of two indices a and b into an array, by counts x and y of their entries:
 * the larger count first, then the lower index. */
static inline int mw_report_rank(uint64_t x, uint64_t y, const void *a, const void *b)
{
    if (x != y)
        return x > y ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

/* Records the first failure (report.c); returns r->status. */
int mw_report_fail(struct report *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* MW_ETRACE with "cannot <what>: <SQLite's message>". */
int mw_report_db_fail(struct report *r, const char *what);
/* The statement for sql, or NULL after mw_report_db_fail(r, what). */
struct sqlite3_stmt *mw_report_prepare(struct report *r, const char *sql, const char *what);
/* -ENOMEM, "out of memory". */
int mw_report_nomem(struct report *r);

#endif
