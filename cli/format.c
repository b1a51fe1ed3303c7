/* Output formats shared by query and diff (see format.h). */
#include "format.h"

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "json_out.h"
#include "reader.h"
#include "show.h"

/* Rows used to size table columns before streaming the rest: the first TABLE_SAMPLE, or
 * those that came in the first TABLE_SAMPLE_NS (rows of large changes take their time to
 * decode: the first of them should not wait for a thousand). */
#define TABLE_SAMPLE 1000
#define TABLE_SAMPLE_NS (300 * 1000 * 1000ll)
/* Blobs longer than this many bytes are shortened in tables: head ... tail. */
#define TABLE_BLOB_FULL 16
#define TABLE_BLOB_HEAD 6
#define TABLE_BLOB_TAIL 2

struct mw_output {
    FILE *f;
    enum mw_format format;
    int ncols;
    char **names;
    char **shown_names;        /* table: the names as shown (show.h) */
    uint64_t rows;
    int error;
    /* table: rendered cells of the sample, column widths, right alignment */
    char **sample;             /* TABLE_SAMPLE * ncols strings */
    size_t nsample;
    size_t *width;
    int *right;
    int streaming;             /* widths fixed, rows printed as they come */
    int cut;                   /* table: some text was shortened (said at the end) */
    struct timespec first;     /* when the sample's first row came */
};

static long long ns_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - t->tv_sec) * 1000000000ll + (now.tv_nsec - t->tv_nsec);
}

int mw_format_parse(const char *name, enum mw_format *out)
{
    static const struct {
        const char *name;
        enum mw_format f;
    } names[] = {
        {"table", MW_FORMAT_TABLE}, {"csv", MW_FORMAT_CSV},
        {"json", MW_FORMAT_JSON},   {"jsonl", MW_FORMAT_JSONL},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].f;
            return 0;
        }
    return -1;
}

mw_output *mw_output_begin(FILE *f, enum mw_format format, int ncols, const char *const *names)
{
    mw_output *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->f = f;
    o->format = format;
    o->ncols = ncols;
    o->names = calloc((size_t)ncols, sizeof(*o->names));
    o->shown_names = calloc((size_t)ncols, sizeof(*o->shown_names));
    o->width = calloc((size_t)ncols, sizeof(*o->width));
    o->right = calloc((size_t)ncols, sizeof(*o->right));
    if (!o->names || !o->shown_names || !o->width || !o->right)
        goto fail;
    for (int i = 0; i < ncols; i++) {
        const char *n = names[i] ? names[i] : "";
        if (!(o->names[i] = strdup(n)) ||
            (format == MW_FORMAT_TABLE &&
             !(o->shown_names[i] = mw_show(n, strlen(n), MW_SHOW_CELL_MAX, &o->cut))))
            goto fail;
        o->width[i] = o->shown_names[i] ? mw_show_width(o->shown_names[i]) : 0;
        o->right[i] = -1;   /* decided by the first non-NULL cell */
    }
    if (format == MW_FORMAT_TABLE &&
        !(o->sample = calloc((size_t)TABLE_SAMPLE * (size_t)ncols, sizeof(*o->sample))))
        goto fail;
    if (format == MW_FORMAT_JSON)
        fputs("[", f);
    return o;
fail:
    mw_output_end(o);
    return NULL;
}

/* A TEXT or JSON cell's bytes: len when set (text may hold NUL bytes), else up to NUL. */
static size_t text_len(const struct mw_cell *c)
{
    return !c->s ? 0 : c->len ? c->len : strlen(c->s);
}

/* Text of a cell without escaping (malloc'd). */
static char *cell_plain(const struct mw_cell *c, int table)
{
    char *s;
    switch (c->type) {
    case MW_CELL_NULL:
        return strdup(table ? "-" : "");
    case MW_CELL_INT:
        if (asprintf(&s, "%" PRId64, c->i) < 0)
            return NULL;
        return s;
    case MW_CELL_REAL:
        if (asprintf(&s, table ? "%.6f" : "%.17g", c->r) < 0)
            return NULL;
        return s;
    case MW_CELL_TEXT:
    case MW_CELL_JSON:
        if (!(s = malloc(text_len(c) + 1)))
            return NULL;
        memcpy(s, c->s ? c->s : "", text_len(c));
        s[text_len(c)] = '\0';
        return s;
    case MW_CELL_BLOB:
        if (table && c->len > TABLE_BLOB_FULL) {
            char head[2 * TABLE_BLOB_HEAD + 1], tail[2 * TABLE_BLOB_TAIL + 1];
            mw_hex(head, c->blob, TABLE_BLOB_HEAD);
            mw_hex(tail, c->blob + c->len - TABLE_BLOB_TAIL, TABLE_BLOB_TAIL);
            if (asprintf(&s, "%s..%s", head, tail) < 0)
                return NULL;
            return s;
        }
        if (!(s = malloc(2 * c->len + 1)))
            return NULL;
        mw_hex(s, c->blob, c->len);
        return s;
    }
    return NULL;
}

/* Text of a cell for tables and CSV (malloc'd), its length into *len. A table shows text
 * escaped and at most MW_SHOW_CELL_MAX characters (show.h; *cut is set when shortened);
 * CSV keeps the exact bytes. */
static char *cell_text(const struct mw_cell *c, int table, size_t *len, int *cut)
{
    char *s = !table || (c->type != MW_CELL_TEXT && c->type != MW_CELL_JSON)
                  ? cell_plain(c, table)
              : c->flags & MW_CELL_F_REPR ? mw_show_repr(c->s, text_len(c), MW_SHOW_CELL_MAX, cut)
                                          : mw_show(c->s, text_len(c), MW_SHOW_CELL_MAX, cut);
    *len = !s ? 0 : !table && c->type == MW_CELL_TEXT ? text_len(c) : strlen(s);
    return s;
}

/* RFC 4180: a field with a comma, a quote or a line break is quoted, its quotes doubled;
 * the bytes are the value's own, whatever they are. */
static void csv_field(FILE *f, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            putc('"', f);
        putc(s[i], f);
    }
    putc('"', f);
}

static void csv_header(mw_output *o)
{
    for (int i = 0; i < o->ncols; i++) {
        if (i)
            putc(',', o->f);
        csv_field(o->f, o->names[i], strlen(o->names[i]));
    }
    putc('\n', o->f);
}

static void json_value(FILE *f, const struct mw_cell *c)
{
    switch (c->type) {
    case MW_CELL_NULL:
        fputs("null", f);
        return;
    case MW_CELL_INT:
        fprintf(f, "%" PRId64, c->i);
        return;
    case MW_CELL_REAL:
        if (isfinite(c->r))
            fprintf(f, "%.17g", c->r);
        else
            fputs("null", f);
        return;
    case MW_CELL_TEXT:
        mw_json_string(f, c->s ? c->s : "", text_len(c), 0);
        return;
    case MW_CELL_JSON:
        fputs(c->s && *c->s ? c->s : "null", f);
        return;
    case MW_CELL_BLOB:
        mw_json_hex(f, c->blob, c->len);
        return;
    }
}

static void table_line(mw_output *o, char *const *cells)
{
    for (int i = 0; i < o->ncols; i++) {
        const char *s = cells[i] ? cells[i] : "";
        int last = i == o->ncols - 1;
        size_t len = mw_show_width(s);
        size_t pad = o->width[i] > len ? o->width[i] - len : 0;
        if (o->right[i] == 1)
            fprintf(o->f, "%*s%s", (int)pad, "", s);
        else if (last)
            fputs(s, o->f);
        else
            fprintf(o->f, "%s%*s", s, (int)pad, "");
        if (!last)
            fputs("  ", o->f);
    }
    putc('\n', o->f);
}

static void table_flush_sample(mw_output *o)
{
    table_line(o, o->shown_names);
    for (size_t r = 0; r < o->nsample; r++) {
        table_line(o, o->sample + r * (size_t)o->ncols);
        for (int i = 0; i < o->ncols; i++) {
            free(o->sample[r * (size_t)o->ncols + (size_t)i]);
            o->sample[r * (size_t)o->ncols + (size_t)i] = NULL;
        }
    }
    o->nsample = 0;
    o->streaming = 1;
}

int mw_output_row(mw_output *o, const struct mw_cell *cells)
{
    FILE *f = o->f;
    switch (o->format) {
    case MW_FORMAT_TABLE: {
        char **dst = o->streaming ? calloc((size_t)o->ncols, sizeof(char *))
                                  : o->sample + o->nsample * (size_t)o->ncols;
        if (!dst)
            return o->error = -1;
        for (int i = 0; i < o->ncols; i++) {
            size_t len;
            if (!(dst[i] = cell_text(&cells[i], 1, &len, &o->cut)))
                o->error = -1;
            if (o->right[i] == -1 && cells[i].type != MW_CELL_NULL)
                o->right[i] = cells[i].type == MW_CELL_INT || cells[i].type == MW_CELL_REAL;
            if (!o->streaming && dst[i] && mw_show_width(dst[i]) > o->width[i])
                o->width[i] = mw_show_width(dst[i]);
        }
        if (o->streaming) {
            table_line(o, dst);
            for (int i = 0; i < o->ncols; i++)
                free(dst[i]);
            free(dst);
        } else {
            if (o->nsample == 0)
                clock_gettime(CLOCK_MONOTONIC, &o->first);
            if (++o->nsample == TABLE_SAMPLE || ns_since(&o->first) >= TABLE_SAMPLE_NS)
                table_flush_sample(o);
        }
        break;
    }
    case MW_FORMAT_CSV:
        if (o->rows == 0)
            csv_header(o);
        for (int i = 0; i < o->ncols; i++) {
            size_t len;
            char *s = cell_text(&cells[i], 0, &len, NULL);
            if (!s)
                return o->error = -1;
            if (i)
                putc(',', f);
            csv_field(f, s, len);
            free(s);
        }
        putc('\n', f);
        break;
    case MW_FORMAT_JSON:
    case MW_FORMAT_JSONL:
        if (o->format == MW_FORMAT_JSON)
            fputs(o->rows ? ",\n" : "\n", f);
        putc('{', f);
        for (int i = 0; i < o->ncols; i++) {
            if (i)
                fputs(", ", f);
            mw_json_string(f, o->names[i], strlen(o->names[i]), 0);
            fputs(": ", f);
            json_value(f, &cells[i]);
        }
        putc('}', f);
        if (o->format == MW_FORMAT_JSONL)
            putc('\n', f);
        break;
    }
    o->rows++;
    if (ferror(f))
        o->error = -1;
    return o->error;
}

uint64_t mw_output_rows(const mw_output *o)
{
    return o->rows;
}

int mw_output_end(mw_output *o)
{
    if (!o)
        return 0;
    int rc = o->error;
    if (o->f && o->names && o->width && o->right) {
        if (o->format == MW_FORMAT_TABLE && o->sample && !o->streaming && o->nsample > 0)
            table_flush_sample(o);
        else if (o->format == MW_FORMAT_CSV && o->rows == 0)
            csv_header(o);
        else if (o->format == MW_FORMAT_JSON)
            fputs(o->rows ? "\n]\n" : "]\n", o->f);
        if (fflush(o->f) != 0 || ferror(o->f))
            rc = -1;
        if (o->cut)
            mw_cli_error("values longer than %d characters are shortened in this table (their "
                         "middle is %s); --format json, jsonl or csv shows them whole",
                         MW_SHOW_CELL_MAX, MW_SHOW_CUT);
    }
    if (o->sample) {
        for (size_t i = 0; i < o->nsample * (size_t)o->ncols; i++)
            free(o->sample[i]);
        free(o->sample);
    }
    for (int i = 0; i < o->ncols; i++) {
        if (o->names)
            free(o->names[i]);
        if (o->shown_names)
            free(o->shown_names[i]);
    }
    free(o->names);
    free(o->shown_names);
    free(o->width);
    free(o->right);
    free(o);
    return rc;
}

/* ---- trace selection ---- */

/* The newest memwatch-*.db here (by the time of its last write, its -wal included);
 * malloc'd, or NULL when there is none. */
static char *newest_trace(void)
{
    glob_t g;
    if (glob("memwatch-*.db", 0, NULL, &g) != 0)
        return NULL;
    const char *best = NULL;
    struct timespec best_t = {0, 0};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat st;
        const char *p = g.gl_pathv[i];
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct timespec t = st.st_mtim;
        char wal[4096];
        if (snprintf(wal, sizeof(wal), "%s-wal", p) < (int)sizeof(wal) && stat(wal, &st) == 0 &&
            (st.st_mtim.tv_sec > t.tv_sec ||
             (st.st_mtim.tv_sec == t.tv_sec && st.st_mtim.tv_nsec > t.tv_nsec)))
            t = st.st_mtim;
        /* Ties go to the later name, so that the choice does not depend on glob order. */
        if (!best || t.tv_sec > best_t.tv_sec ||
            (t.tv_sec == best_t.tv_sec && t.tv_nsec >= best_t.tv_nsec)) {
            best = p;
            best_t = t;
        }
    }
    char *r = best ? strdup(best) : NULL;
    globfree(&g);
    return r;
}

int mw_cli_open_trace(const char *path, struct mw_trace_reader **out, char **shown_path)
{
    *out = NULL;
    *shown_path = NULL;
    char *p;
    if (path) {
        p = strdup(path);
    } else {
        if (!(p = newest_trace())) {
            mw_cli_error("no trace given, and no memwatch-*.db in the current directory");
            return MW_EXIT_USAGE;
        }
        mw_cli_error("reading %s", mw_show_name(p));
    }
    if (!p) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    mw_trace_reader *r;
    int rc = mw_trace_reader_open(p, &r, NULL);
    if (rc) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        mw_trace_reader_close(r);
        free(p);
        return rc == -ENOMEM ? MW_EXIT_FAILURE : MW_EXIT_USAGE;
    }
    *out = r;
    *shown_path = p;
    return MW_EXIT_OK;
}

int mw_cli_with_trace(const char *path, mw_cli_trace_fn fn, void *ctx)
{
    mw_trace_reader *r;
    char *shown;
    int status = mw_cli_open_trace(path, &r, &shown);
    if (status)
        return status;
    status = fn(r, shown, ctx);
    mw_trace_reader_close(r);
    free(shown);
    return status;
}

void mw_cli_say_empty(const char *path, uint64_t objects)
{
    mw_cli_error("%s is an empty trace: no changes were recorded (%" PRIu64 " object%s watched)",
                 mw_show_name(path), objects, objects == 1 ? "" : "s");
}

int mw_cli_check_tag(struct mw_trace_reader *r, const char *path, const char *tag)
{
    int rc = mw_trace_reader_has_tag(r, tag);
    if (rc == 1)
        return MW_EXIT_OK;
    char **tags;
    size_t n;
    if (rc < 0 || mw_trace_reader_tags(r, &tags, &n) < 0) {
        mw_cli_error("%s", mw_trace_reader_errmsg(r));
        return MW_EXIT_FAILURE;
    }
    if (n == 0) {
        mw_cli_error("unknown tag %s: %s is an empty trace (no objects were watched)",
                     mw_show_name(tag), mw_show_name(path));
        mw_trace_reader_free_tags(tags);
        return MW_EXIT_USAGE;
    }
    /* One line, however many tags there are, and however long or odd they are: each is
     * shown escaped and shortened (show.h). */
    enum { SHOWN = 20 };
    char *list = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&list, &len);
    if (f) {
        for (size_t i = 0; i < n && i < SHOWN; i++)
            fprintf(f, "%s%s", i ? ", " : "", mw_show_name(tags[i]));
        if (n > SHOWN)
            fprintf(f, " and %zu more", n - SHOWN);
        fclose(f);
    }
    mw_cli_error("unknown tag %s; the tags in %s are: %s", mw_show_name(tag), mw_show_name(path),
                 list ? list : "(out of memory)");
    free(list);
    mw_trace_reader_free_tags(tags);
    return MW_EXIT_USAGE;
}
