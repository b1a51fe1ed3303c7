/* Several traces as one timeline: opening them, naming them, merging their rows by wall
 * clock (timeline.h). */
#include "timeline.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "format.h"
#include "show.h"

/* A rank in a file name: "rank" (any case), at most one of - _ . = and its digits, e.g.
 * t.rank3.db, trace-RANK_12.db. 1 and *rank, or 0. */
static int rank_in_name(const char *path, int64_t *rank)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (const char *p = base; *p; p++) {
        if (strncasecmp(p, "rank", 4) != 0)
            continue;
        const char *d = p + 4;
        if (*d == '-' || *d == '_' || *d == '.' || *d == '=')
            d++;
        int64_t v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*d) && digits < 10)
            v = v * 10 + (*d++ - '0'), digits++;
        if (digits > 0 && !isdigit((unsigned char)*d)) {
            *rank = v;
            return 1;
        }
    }
    return 0;
}

/* The rank memwatch trace recorded (meta key rank, a decimal number): 1 and *rank, 0 when
 * there is none or it is not a plain number (a hand-made trace), negative on error. */
static int rank_in_meta(sqlite3 *db, int64_t *rank)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'rank'", -1, &s, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(s);
        return -1;
    }
    int found = 0, rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        uint64_t n;
        char *end;
        errno = 0;
        n = v && isdigit((unsigned char)*v) ? strtoull(v, &end, 10) : 0;
        if (v && isdigit((unsigned char)*v) && !errno && !*end && n <= INT32_MAX) {
            *rank = (int64_t)n;
            found = 1;
        }
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(s);
    return found;
}

/* The run's wall-clock start: 0 and *ns, 1 when the trace has none, negative on error. */
static int run_start(sqlite3 *db, int64_t *ns)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT start_unix_ns FROM run WHERE id = 1", -1, &s, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(s);
        return -1;
    }
    int rc = sqlite3_step(s), status = 1;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_INTEGER) {
        *ns = sqlite3_column_int64(s, 0);
        status = *ns >= 0 ? 0 : 1;   /* before 1970: not a start memwatch wrote */
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        status = -1;
    }
    sqlite3_finalize(s);
    return status;
}

/* Reads what places trace t on the timeline and names it. 0, or the exit status after
 * the message. */
static int describe_trace(struct mw_timeline_trace *t)
{
    sqlite3 *db = mw_trace_reader_db(t->r);
    int rc = run_start(db, &t->start_unix_ns);
    if (rc == 1) {
        mw_cli_error("%s has no start time in its run table: it cannot be placed on a "
                     "timeline", mw_show_name(t->path));
        return MW_EXIT_USAGE;
    }
    if (rc == 0)
        rc = rank_in_meta(db, &t->rank);
    if (rc < 0) {
        const char *why = mw_trace_reader_guard_reason(t->r);
        mw_cli_error("cannot read %s: %s", mw_show_name(t->path), why ? why : sqlite3_errmsg(db));
        return MW_EXIT_FAILURE;
    }
    if (rc == 1) {
        t->has_rank = 1;
        t->rank_from = "meta";
    } else if (rank_in_name(t->path, &t->rank)) {
        t->has_rank = 1;
        t->rank_from = "file name";
    }
    return MW_EXIT_OK;
}

/* Each trace's name: its rank, else its file name; the paths as given when two names
 * would be the same. 0 or -ENOMEM. */
static int name_traces(struct mw_timeline *tl)
{
    for (size_t i = 0; i < tl->n; i++) {
        struct mw_timeline_trace *t = &tl->t[i];
        const char *base = strrchr(t->path, '/');
        base = base && base[1] ? base + 1 : t->path;
        if (t->has_rank ? asprintf(&t->label, "rank %" PRId64, t->rank) < 0
                        : !(t->label = strdup(base))) {
            t->label = NULL;
            return -ENOMEM;
        }
    }
    int clash = 0;
    for (size_t i = 0; i < tl->n && !clash; i++)
        for (size_t j = i + 1; j < tl->n && !clash; j++)
            clash = strcmp(tl->t[i].label, tl->t[j].label) == 0;
    for (size_t i = 0; clash && i < tl->n; i++) {
        free(tl->t[i].label);
        if (!(tl->t[i].label = strdup(tl->t[i].path)))
            return -ENOMEM;
    }
    return 0;
}

/* The same file given twice (under any name) would show each change twice: refused. */
static int refuse_repeats(const struct mw_timeline *tl)
{
    struct stat *st = calloc(tl->n, sizeof *st);
    if (!st) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int status = MW_EXIT_OK;
    for (size_t i = 0; i < tl->n && !status; i++) {
        if (stat(tl->t[i].path, &st[i]) != 0) {
            mw_cli_error("cannot read %s: %s", mw_show_name(tl->t[i].path), strerror(errno));
            status = MW_EXIT_USAGE;
        }
        for (size_t j = 0; j < i && !status; j++)
            if (st[i].st_dev == st[j].st_dev && st[i].st_ino == st[j].st_ino) {
                mw_cli_error("%s is the same file as %s: give each trace once",
                             mw_show_name(tl->t[i].path), mw_show_name(tl->t[j].path));
                status = MW_EXIT_USAGE;
            }
    }
    free(st);
    return status;
}

int mw_timeline_open(char *const *paths, size_t n, struct mw_timeline *tl)
{
    memset(tl, 0, sizeof *tl);
    if (n > MW_TIMELINE_MAX_TRACES) {
        mw_cli_error("%zu traces given: at most %d can be read as one timeline", n,
                     MW_TIMELINE_MAX_TRACES);
        return MW_EXIT_USAGE;
    }
    if (!(tl->t = calloc(n, sizeof *tl->t))) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int status = MW_EXIT_OK;
    for (size_t i = 0; i < n && !status; i++) {
        /* The one-trace opening, with its guards and messages (format.h). */
        status = mw_cli_open_trace(paths[i], &tl->t[i].r, &tl->t[i].path);
        if (!status)
            tl->n = i + 1;
    }
    if (!status)
        status = refuse_repeats(tl);
    for (size_t i = 0; i < tl->n && !status; i++)
        status = describe_trace(&tl->t[i]);
    if (!status && name_traces(tl) < 0) {
        mw_cli_error("out of memory");
        status = MW_EXIT_FAILURE;
    }
    if (status) {
        mw_timeline_close(tl);
        return status;
    }
    tl->origin_unix_ns = tl->t[0].start_unix_ns;
    for (size_t i = 1; i < n; i++)
        if (tl->t[i].start_unix_ns < tl->origin_unix_ns)
            tl->origin_unix_ns = tl->t[i].start_unix_ns;
    for (size_t i = 0; i < n; i++)
        tl->t[i].offset_ns = (uint64_t)(tl->t[i].start_unix_ns - tl->origin_unix_ns);
    return MW_EXIT_OK;
}

void mw_timeline_close(struct mw_timeline *tl)
{
    for (size_t i = 0; i < tl->n; i++) {
        mw_trace_reader_close(tl->t[i].r);
        free(tl->t[i].path);
        free(tl->t[i].label);
    }
    free(tl->t);
    memset(tl, 0, sizeof *tl);
}

uint64_t mw_timeline_time(const struct mw_timeline *tl, size_t i, uint64_t time_ns)
{
    uint64_t off = tl->t[i].offset_ns;
    return time_ns > UINT64_MAX - off ? UINT64_MAX : time_ns + off;
}

/* ---- the merge ---- */

struct head {
    size_t trace;
    uint64_t time;            /* on the timeline */
    struct mw_trace_row row;
};

struct mw_timeline_iter {
    struct mw_timeline *tl;
    mw_trace_iter **its;      /* one per trace */
    struct head *heap;        /* traces with a current row, earliest first */
    size_t nheap;
    size_t last;              /* the trace whose row was handed out last, or SIZE_MAX */
};

static int before(const struct head *a, const struct head *b)
{
    return a->time < b->time || (a->time == b->time && a->trace < b->trace);
}

static void sift_down(struct head *h, size_t n, size_t i)
{
    for (;;) {
        size_t m = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(&h[l], &h[m]))
            m = l;
        if (r < n && before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        struct head tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static void sift_up(struct head *h, size_t i)
{
    while (i > 0 && before(&h[i], &h[(i - 1) / 2])) {
        struct head tmp = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

/* Reads trace i's next row into the heap. 0, or negative after the message. */
static int advance(mw_timeline_iter *it, size_t i)
{
    struct head h = {.trace = i};
    int rc = mw_trace_iter_next(it->its[i], &h.row);
    if (rc < 0) {
        mw_cli_error("cannot read %s: %s", mw_show_name(it->tl->t[i].path),
                     mw_trace_reader_errmsg(it->tl->t[i].r));
        return rc;
    }
    if (rc == 1) {
        h.time = mw_timeline_time(it->tl, i, h.row.time_ns);
        it->heap[it->nheap] = h;
        sift_up(it->heap, it->nheap++);
    }
    return 0;
}

void mw_timeline_iter_finish(mw_timeline_iter *it)
{
    if (!it)
        return;
    for (size_t i = 0; it->its && i < it->tl->n; i++)
        if (it->its[i])
            mw_trace_iter_finish(it->its[i]);
    free(it->its);
    free(it->heap);
    free(it);
}

int mw_timeline_iter_start(struct mw_timeline *tl, const struct mw_trace_filter *f,
                           mw_timeline_iter **out)
{
    *out = NULL;
    mw_timeline_iter *it = calloc(1, sizeof *it);
    if (!it || !(it->its = calloc(tl->n, sizeof *it->its)) ||
        !(it->heap = calloc(tl->n, sizeof *it->heap))) {
        if (it)
            free(it->its);
        free(it);
        mw_cli_error("out of memory");
        return -ENOMEM;
    }
    it->tl = tl;
    it->last = SIZE_MAX;
    struct mw_trace_filter each = *f;
    each.limit = 0;
    for (size_t i = 0; i < tl->n; i++) {
        int rc = mw_trace_iter_start(tl->t[i].r, &each, &it->its[i]);
        if (rc < 0) {
            mw_cli_error("cannot read %s: %s", mw_show_name(tl->t[i].path),
                         mw_trace_reader_errmsg(tl->t[i].r));
            mw_timeline_iter_finish(it);
            return rc;
        }
    }
    for (size_t i = 0; i < tl->n; i++) {
        int rc = advance(it, i);
        if (rc < 0) {
            mw_timeline_iter_finish(it);
            return rc;
        }
    }
    *out = it;
    return 0;
}

int mw_timeline_iter_next(mw_timeline_iter *it, struct mw_trace_row *row, size_t *trace,
                          uint64_t *time_ns)
{
    /* The row handed out last stays valid until now: only then is its trace read on. */
    if (it->last != SIZE_MAX) {
        size_t i = it->last;
        it->last = SIZE_MAX;
        int rc = advance(it, i);
        if (rc < 0)
            return rc;
    }
    if (it->nheap == 0)
        return 0;
    struct head h = it->heap[0];
    it->heap[0] = it->heap[--it->nheap];
    sift_down(it->heap, it->nheap, 0);
    *row = h.row;
    *trace = h.trace;
    *time_ns = h.time;
    it->last = h.trace;
    return 1;
}

int mw_timeline_check_tag(struct mw_timeline *tl, const char *tag)
{
    for (size_t i = 0; i < tl->n; i++) {
        int rc = mw_trace_reader_has_tag(tl->t[i].r, tag);
        if (rc == 1)
            return MW_EXIT_OK;
        if (rc < 0) {
            mw_cli_error("cannot read %s: %s", mw_show_name(tl->t[i].path),
                         mw_trace_reader_errmsg(tl->t[i].r));
            return MW_EXIT_FAILURE;
        }
    }
    mw_cli_error("unknown tag %s: none of the %zu traces watched an object under it",
                 mw_show_name(tag), tl->n);
    return MW_EXIT_USAGE;
}
