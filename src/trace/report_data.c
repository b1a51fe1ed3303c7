/* The report page's data (see report_data.h). */
#include "report_data.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "report_heat.h"

/* ---- JSON pieces ---------------------------------------------------------------------- */

/* Every string of the page data is HTML-safe (see report.c, DESIGN). */
static void jstr(FILE *f, const char *s)
{
    mw_json_string(f, s, s ? strlen(s) : 0, MW_JSON_HTML_SAFE);
}

static void jkey(FILE *f, int *first, const char *key)
{
    if (!*first)
        putc(',', f);
    *first = 0;
    jstr(f, key);
    putc(':', f);
}

/* "key":[...] of n items, item i written by item(r, i). */
static void jarray(const struct report *r, int *first, const char *key, size_t n,
                   void (*item)(const struct report *r, size_t i))
{
    jkey(r->out, first, key);
    putc('[', r->out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            putc(',', r->out);
        item(r, i);
    }
    putc(']', r->out);
}

static const char *jbool(int v)
{
    return v ? "true" : "false";
}

/* One SQLite value as JSON: numbers as numbers, text as strings, blobs as hex strings. */
static void jvalue(FILE *f, sqlite3_stmt *s, int col)
{
    switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER:
        fprintf(f, "%lld", (long long)sqlite3_column_int64(s, col));
        break;
    case SQLITE_FLOAT:
        fprintf(f, "%.17g", sqlite3_column_double(s, col));
        break;
    case SQLITE_TEXT:
        mw_json_string(f, (const char *)sqlite3_column_text(s, col),
                       (size_t)sqlite3_column_bytes(s, col), MW_JSON_HTML_SAFE);
        break;
    case SQLITE_BLOB:
        mw_json_hex(f, sqlite3_column_blob(s, col), (size_t)sqlite3_column_bytes(s, col));
        break;
    default:
        fputs("null", f);
    }
}

/* ---- the run -------------------------------------------------------------------------- */

/* The meta table's key/value rows as one object. */
static void write_meta(struct report *r)
{
    FILE *f = r->out;
    sqlite3_stmt *s = mw_report_prepare(r, "SELECT key, value FROM meta ORDER BY key",
                                        "read the trace");
    putc('{', f);
    if (!s) {
        putc('}', f);
        return;
    }
    int first = 1;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        if (!k)
            continue;
        jkey(f, &first, k);
        jvalue(f, s, 1);
    }
    sqlite3_finalize(s);
    putc('}', f);
}

/* The run row with every column it has, so that columns added by later schemas show up. */
static void write_run(struct report *r)
{
    FILE *f = r->out;
    sqlite3_stmt *s = mw_report_prepare(r, "SELECT * FROM run WHERE id = 1", "read the run");
    if (!s) {
        fputs("{}", f);
        return;
    }
    putc('{', f);
    if (sqlite3_step(s) == SQLITE_ROW) {
        int first = 1;
        for (int i = 0; i < sqlite3_column_count(s); i++) {
            jkey(f, &first, sqlite3_column_name(s, i));
            jvalue(f, s, i);
        }
    }
    putc('}', f);
    sqlite3_finalize(s);
}

static void write_head(struct report *r, const struct mw_report_options *opt, int *first)
{
    FILE *f = r->out;
    jkey(f, first, "report");
    fprintf(f, "{\"format\":1,\"trace\":");
    jstr(f, opt->trace_name);
    fprintf(f, ",\"max_marks\":%u,\"max_lanes\":%u,\"time_bins\":%d,\"tmax_ns\":%" PRIu64
               ",\"elements_table\":%s}",
            r->max_marks, MW_REPORT_MAX_LANES, TIME_BINS, r->tmax, jbool(r->elements_table));
    jkey(f, first, "meta");
    write_meta(r);
    jkey(f, first, "run");
    write_run(r);
}

/* ---- tags and lanes ------------------------------------------------------------------- */

static const char *order_name(char order)
{
    return order == 'C' ? "\"C\"" : order == 'F' ? "\"F\"" : order == 'V' ? "\"V\"" : "null";
}

/* Tag i, its first object's geometry and its totals. */
static void write_tag(const struct report *r, size_t i)
{
    FILE *f = r->out;
    const struct tag *t = &r->tags[i];
    const struct object *o = &r->objects[t->first_object];
    int k = 1;
    putc('{', f);
    jkey(f, &k, "name");
    jstr(f, t->name);
    fprintf(f,
            ",\"objects\":%" PRIu64 ",\"changes\":%" PRIu64 ",\"ranges\":%" PRIu64
            ",\"bytes\":%" PRIu64 ",\"marks\":%" PRIu64 ",\"lane\":%d",
            t->objects, t->changes, t->ranges, t->bytes, t->marks, t->lane);
    if (t->changes)
        fprintf(f,
                ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"first_t\":%" PRIu64
                ",\"last_t\":%" PRIu64,
                t->first_seq, t->last_seq, t->first_t, t->last_t);
    fputs(",\"type\":", f);
    jstr(f, o->type_name);
    fputs(",\"format\":", f);
    jstr(f, o->format);
    fprintf(f, ",\"itemsize\":%d,\"size\":%" PRIu64 ",\"shape\":", o->itemsize, o->size);
    if (o->ndim > 0) {
        putc('[', f);
        for (int d = 0; d < o->ndim; d++)
            fprintf(f, d ? ",%" PRIu64 : "%" PRIu64, o->shape[d]);
        putc(']', f);
    } else {
        fputs("null", f);
    }
    fprintf(f, ",\"order\":%s,\"uniform\":%s,\"float_checked\":%s", order_name(o->order),
            jbool(t->uniform), jbool(t->float_checked));
    fprintf(f,
            ",\"nonfinite\":%" PRIu64 ",\"nonfinite_possible\":%" PRIu64
            ",\"nonfinite_gone\":%" PRIu64 "}",
            t->nonfinite, t->nonfinite_possible, t->nonfinite_gone);
}

/* Lane l with its density bins; the last may be the "other tags" lane. */
static void write_lane(const struct report *r, size_t l)
{
    FILE *f = r->out;
    putc('{', f);
    if (l < r->nlanes) {
        fprintf(f, "\"tag\":%u", r->lane_tags[l]);
    } else {
        uint64_t n = 0, ch = 0;
        for (size_t i = 0; i < r->ntags; i++)
            if (r->tags[i].lane < 0) {
                n++;
                ch += r->tags[i].changes;
            }
        fprintf(f, "\"tag\":-1,\"other_tags\":%" PRIu64 ",\"changes\":%" PRIu64, n, ch);
    }
    fputs(",\"density\":[", f);
    for (int b = 0; b < TIME_BINS; b++)
        fprintf(f, b ? ",%u" : "%u", r->density[l * TIME_BINS + (size_t)b]);
    fputs("]}", f);
}

/* ---- locations and writers ------------------------------------------------------------ */

/* The top writers by changes and by bytes (top entries of each, as location indices). */
struct writers {
    uint32_t *by_changes, *by_bytes;
    size_t top;
};

static const struct location *sort_locs_base;

static int cmp_loc_changes(const void *a, const void *b)
{
    return mw_report_rank(sort_locs_base[*(const uint32_t *)a].changes,
                          sort_locs_base[*(const uint32_t *)b].changes, a, b);
}

static int cmp_loc_bytes(const void *a, const void *b)
{
    return mw_report_rank(sort_locs_base[*(const uint32_t *)a].bytes,
                          sort_locs_base[*(const uint32_t *)b].bytes, a, b);
}

static int writers_rank(const struct report *r, struct writers *w)
{
    w->by_changes = malloc((r->nlocs ? r->nlocs : 1) * sizeof(uint32_t));
    w->by_bytes = malloc((r->nlocs ? r->nlocs : 1) * sizeof(uint32_t));
    if (!w->by_changes || !w->by_bytes)
        return -1;
    for (size_t i = 0; i < r->nlocs; i++)
        w->by_changes[i] = w->by_bytes[i] = (uint32_t)i;
    sort_locs_base = r->locs;
    qsort(w->by_changes, r->nlocs, sizeof(uint32_t), cmp_loc_changes);
    qsort(w->by_bytes, r->nlocs, sizeof(uint32_t), cmp_loc_bytes);
    w->top = r->nlocs < TOP_WRITERS ? r->nlocs : TOP_WRITERS;
    return 0;
}

static void loc_ref(struct report *r, uint32_t i, size_t *n)
{
    if (r->locs[i].out_index < 0)
        r->locs[i].out_index = (int64_t)(*n)++;
}

/* Which locations the page refers to, numbered in order of first reference, then the
 * table of them. */
static int write_locations(struct report *r, const struct writers *w, int *first)
{
    FILE *f = r->out;
    size_t n = 0;
    for (size_t i = 0; i < w->top; i++) {
        loc_ref(r, w->by_changes[i], &n);
        loc_ref(r, w->by_bytes[i], &n);
    }
    for (size_t i = 0; i < r->nmarks; i++)
        loc_ref(r, r->marks[i].loc, &n);
    for (size_t i = 0; i < r->nnf; i++)
        loc_ref(r, r->nf[i].loc, &n);
    struct location **out = calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return -1;
    for (size_t i = 0; i < r->nlocs; i++)
        if (r->locs[i].out_index >= 0)
            out[r->locs[i].out_index] = &r->locs[i];
    jkey(f, first, "locations");
    putc('[', f);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",[" : "[", f);
        jstr(f, out[i]->file);
        fprintf(f, ",%d,", out[i]->line);
        jstr(f, out[i]->function);
        putc(',', f);
        jstr(f, out[i]->native);
        putc(']', f);
    }
    putc(']', f);
    free(out);
    return 0;
}

/* Writers: the union of the top by changes and the top by bytes. */
static void write_writers(const struct report *r, const struct writers *w, int *first)
{
    FILE *f = r->out;
    jkey(f, first, "writers");
    putc('[', f);
    int wfirst = 1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < w->top; i++) {
            uint32_t li = pass ? w->by_bytes[i] : w->by_changes[i];
            const struct location *l = &r->locs[li];
            if (pass) {
                /* already written in the first pass? */
                int seen = 0;
                for (size_t j = 0; j < w->top && !seen; j++)
                    seen = w->by_changes[j] == li;
                if (seen)
                    continue;
            }
            fputs(wfirst ? "{" : ",{", f);
            wfirst = 0;
            fprintf(f, "\"loc\":%" PRId64 ",\"changes\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"tags\":[",
                    l->out_index, l->changes, l->bytes);
            for (int k = 0; k < l->ntags; k++)
                fprintf(f, k ? ",%u" : "%u", l->tags[k]);
            fprintf(f, "],\"more_tags\":%s}", jbool(l->more_tags));
        }
    }
    putc(']', f);
    fprintf(f, ",\"writers_total\":%zu", r->nlocs);
}

/* ---- marks ---------------------------------------------------------------------------- */

/* A column of the marks: one of their uint64_t fields, at field_off. */
static void write_u64s(FILE *f, const char *key, int *first, const struct report *r,
                       size_t field_off)
{
    jkey(f, first, key);
    putc('[', f);
    for (size_t i = 0; i < r->nmarks; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&r->marks[i] + field_off, sizeof(v));
        fprintf(f, i ? ",%" PRIu64 : "%" PRIu64, v);
    }
    putc(']', f);
}

static int64_t mark_tag(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->tag == UINT32_MAX ? -1 : (int64_t)m->tag;
}

static int64_t mark_pid(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->pid;
}

static int64_t mark_loc(const struct report *r, const struct mark *m)
{
    return r->locs[m->loc].out_index;
}

static int64_t mark_not_kept(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->not_kept;
}

static int64_t mark_ranges(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->nranges;
}

static int64_t mark_elements(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->elements;
}

static int64_t mark_nonfinite(const struct report *r, const struct mark *m)
{
    (void)r;
    return m->nonfinite;
}

/* A column of the marks whose values value() gives. */
static void write_i64s(FILE *f, const char *key, int *first, const struct report *r,
                       int64_t (*value)(const struct report *, const struct mark *))
{
    jkey(f, first, key);
    putc('[', f);
    for (size_t i = 0; i < r->nmarks; i++)
        fprintf(f, i ? ",%" PRId64 : "%" PRId64, value(r, &r->marks[i]));
    putc(']', f);
}

/* Marks, column by column (compact, and quick to read into typed arrays). */
static void write_marks(const struct report *r, int *first)
{
    FILE *f = r->out;
    jkey(f, first, "marks");
    putc('{', f);
    int mk = 1;
    write_u64s(f, "seq", &mk, r, offsetof(struct mark, seq));
    write_u64s(f, "t", &mk, r, offsetof(struct mark, t));
    write_u64s(f, "bytes", &mk, r, offsetof(struct mark, bytes));
    write_u64s(f, "off", &mk, r, offsetof(struct mark, off));
    write_u64s(f, "len", &mk, r, offsetof(struct mark, len));
    write_i64s(f, "tag", &mk, r, mark_tag);
    write_i64s(f, "loc", &mk, r, mark_loc);
    write_i64s(f, "ranges", &mk, r, mark_ranges);
    write_i64s(f, "elements", &mk, r, mark_elements);
    write_i64s(f, "nf", &mk, r, mark_nonfinite);
    write_i64s(f, "not_kept", &mk, r, mark_not_kept);
    write_i64s(f, "pid", &mk, r, mark_pid);
    fputs(",\"new\":[", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        if (i)
            putc(',', f);
        if (r->marks[i].not_kept)
            fputs("null", f);
        else
            mw_json_hex(f, r->marks[i].new_, r->marks[i].preview_len);
    }
    fputs("],\"old\":[", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        if (i)
            putc(',', f);
        if (r->marks[i].has_old)
            mw_json_hex(f, r->marks[i].old, r->marks[i].preview_len);
        else
            fputs("null", f);
    }
    fputs("]}", f);
}

/* ---- heatmaps, NaN/Inf, totals -------------------------------------------------------- */

/* The heatmap of lane l's tag. */
static void write_heat(const struct report *r, size_t l)
{
    mw_report_heat_write(r->out, r->lane_tags[l], &r->tags[r->lane_tags[l]].heat);
}

static const char *nf_name(int kind)
{
    switch (kind) {
    case NF_NAN: return "NaN";
    case NF_INF: return "Inf";
    case NF_NAN_OR_INF: return "NaN or Inf";
    case NF_POSSIBLE: return "possibly NaN or Inf";
    default: return NULL;
    }
}

/* NaN/Inf: "source" says whether the counts are the writer's (change_stats) or were found in
 * the bytes only (float_event), and the page says which. */
static void write_nonfinite(const struct report *r, int *first)
{
    FILE *f = r->out;
    jkey(f, first, "nonfinite");
    fprintf(f,
            "{\"total\":%" PRIu64 ",\"possible\":%" PRIu64 ",\"gone\":%" PRIu64
            ",\"listed\":%zu,\"source\":\"%s\",\"events\":[",
            r->nf_total, r->nf_possible, r->nf_gone, r->nnf,
            r->stats_used ? "change_stats" : "bytes");
    for (size_t i = 0; i < r->nnf; i++) {
        const struct nf_event *e = &r->nf[i];
        fprintf(f,
                "%s{\"seq\":%" PRIu64 ",\"t\":%" PRIu64 ",\"tag\":%u,\"element\":%" PRId64
                ",\"loc\":%" PRId64 ",\"kind\":\"%s\"}",
                i ? "," : "", e->seq, e->t, e->tag,
                e->element == UINT64_MAX ? (int64_t)-1 : (int64_t)e->element,
                r->locs[e->loc].out_index, nf_name(e->kind));
    }
    fputs("]}", f);
}

static void write_totals(const struct report *r, int *first)
{
    FILE *f = r->out;
    jkey(f, first, "totals");
    fprintf(f,
            "{\"objects\":%zu,\"tags\":%zu,\"changes\":%" PRIu64 ",\"marks\":%zu"
            ",\"nonfinite_marks\":%zu,\"changes_without_ranges\":%" PRIu64 "}",
            r->nobjects, r->ntags, r->total_changes, r->nmarks, r->nonfinite_marks,
            r->changes_without_ranges);
}

int mw_report_write_data(struct report *r, const struct mw_report_options *opt)
{
    FILE *f = r->out;
    int first = 1;
    putc('{', f);
    write_head(r, opt, &first);
    jarray(r, &first, "tags", r->ntags, write_tag);   /* in watch order */
    jarray(r, &first, "lanes", r->nlanes + (size_t)r->other_lane, write_lane);
    struct writers w = {0};
    int rc = writers_rank(r, &w);
    if (rc == 0)
        rc = write_locations(r, &w, &first);
    if (rc == 0)
        write_writers(r, &w, &first);
    free(w.by_changes);
    free(w.by_bytes);
    if (rc < 0)
        return mw_report_nomem(r);
    write_marks(r, &first);
    jarray(r, &first, "heat", r->nlanes, write_heat);   /* of the lanes' tags */
    write_nonfinite(r, &first);
    write_totals(r, &first);
    putc('}', f);
    return r->status;
}
