/* memwatch diff: one watched object's history, one block per change: for an object with
 * an element type (numpy, torch, array.array, ctypes, typed memoryview) its changed
 * elements with their old and new values, NaN and Inf that appeared flagged; for bytes
 * (or with --bytes) hexdumps, old above new, changed bytes marked. Or (--from/--to) the
 * net difference between two points of that history.
 *
 * DESIGN: a trace holds the changed bytes only, not whole objects. The context around a
 * change is rebuilt from the rest of the history: a byte's value before the first change
 * that touched it is that change's old byte, and after a change its new byte. So each
 * object's state is replayed in seq order over the extent of bytes the history touches;
 * bytes the trace never saw are shown as `??` (and context rows made only of them are left
 * out). The state of object X "at seq S" is the state after every change numbered <= S. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "elements.h"
#include "format.h"
#include "mw_error.h"
#include "reader.h"

const char *const diff_usage[] = {
    "usage: memwatch diff [-t trace] [--from seq] [--to seq] [-C rows] [--bytes] [--color[=when]] tag",
    "",
    "Show how the object watched under tag changed, one block per change. For typed objects",
    "(numpy, torch, array.array, ctypes) each changed element: name[index]: old -> new, with",
    "NaN and Inf that appeared flagged (!!). For bytes, a hexdump: the bytes before (-)",
    "above the bytes after (+), changed bytes marked.",
    "",
    "    -t, --trace trace   read this trace (default: the newest memwatch-*.db here)",
    "    --from seq          with --to: the net change after change seq (default: the start)",
    "    --to seq            ... up to and including change seq (default: the end)",
    "    -C, --context rows  rows of 16 bytes shown around each change (default 1)",
    "    -b, --bytes         hexdumps for typed objects too",
    "    --color[=when]      mark changes with color: auto (the default), always, never",
    "    -h, --help          show this help",
    "",
    "Bytes the trace never saw are shown as ?? (blank on the right). Color is used on a",
    "terminal unless NO_COLOR is set.",
    NULL,
};

enum { OPT_FROM = 256, OPT_TO, OPT_COLOR };

static const struct option diff_options[] = {
    {"trace", required_argument, NULL, 't'},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"context", required_argument, NULL, 'C'},
    {"bytes", no_argument, NULL, 'b'},
    {"color", optional_argument, NULL, OPT_COLOR},
    {"colour", optional_argument, NULL, OPT_COLOR},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define ROW 16
/* Objects whose touched extent is larger than this are shown without context. */
#define MAX_EXTENT ((uint64_t)256 << 20)

#define RED "\033[31m"
#define GREEN "\033[32m"
#define BOLD "\033[1m"
#define RESET "\033[0m"

/* Byte states in a replay. */
enum { UNSEEN = 0, KNOWN = 1, UNKNOWN = 2 };

struct range {
    uint64_t offset, length;
    unsigned char *old;   /* NULL: unavailable */
    unsigned char *new_;
};

struct change {
    uint64_t seq, time_ns;
    size_t obj;           /* index into objects */
    char *file, *function, *thread_name, *native_symbol;
    int line;
    int64_t thread_id;
    size_t first, n;      /* its ranges */
};

struct object {
    uint64_t id, size;
    const struct mw_elem_layout *layout;   /* NULL: shown as bytes */
    uint64_t lo, hi;      /* extent of the bytes the history touches */
    unsigned char *val, *state;   /* hi - lo bytes each; NULL when the extent is too large */
};

struct history {
    struct change *ch;
    size_t nch, capch;
    struct range *rg;
    size_t nrg, caprg;
    struct object *obj;
    size_t nobj;
};

static void history_free(struct history *h)
{
    for (size_t i = 0; i < h->nch; i++) {
        free(h->ch[i].file);
        free(h->ch[i].function);
        free(h->ch[i].thread_name);
        free(h->ch[i].native_symbol);
    }
    for (size_t i = 0; i < h->nrg; i++) {
        free(h->rg[i].old);
        free(h->rg[i].new_);
    }
    for (size_t i = 0; i < h->nobj; i++) {
        free(h->obj[i].val);
        free(h->obj[i].state);
    }
    free(h->ch);
    free(h->rg);
    free(h->obj);
}

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

static unsigned char *dup_bytes(const unsigned char *p, uint64_t n, int *oom)
{
    if (!p)
        return NULL;
    unsigned char *d = malloc(n ? (size_t)n : 1);
    if (!d) {
        *oom = 1;
        return NULL;
    }
    memcpy(d, p, (size_t)n);
    return d;
}

static int grow(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 64;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Loads the tag's whole history, in seq order. */
static int load(mw_trace_reader *r, const char *tag, struct history *h)
{
    struct mw_trace_filter f = {.tag = tag};
    mw_trace_iter *it;
    if (mw_trace_iter_start(r, &f, &it) < 0)
        return -1;
    struct mw_trace_row row;
    int rc, oom = 0;
    while (!oom && (rc = mw_trace_iter_next(it, &row)) == 1) {
        size_t oi;
        for (oi = 0; oi < h->nobj && h->obj[oi].id != row.object_id; oi++)
            ;
        if (oi == h->nobj) {
            struct object *o = realloc(h->obj, (h->nobj + 1) * sizeof(*o));
            if (!o) {
                oom = 1;
                break;
            }
            h->obj = o;
            memset(&o[oi], 0, sizeof(o[oi]));
            o[oi].id = row.object_id;
            o[oi].size = row.object_size;
            o[oi].lo = UINT64_MAX;
            h->nobj++;
        }
        if (h->nch == 0 || h->ch[h->nch - 1].seq != row.seq) {
            if (grow((void **)&h->ch, &h->capch, h->nch, sizeof(*h->ch))) {
                oom = 1;
                break;
            }
            struct change *c = &h->ch[h->nch++];
            memset(c, 0, sizeof(*c));
            c->seq = row.seq;
            c->time_ns = row.time_ns;
            c->obj = oi;
            c->file = dup_or_null(row.file, &oom);
            c->function = dup_or_null(row.function, &oom);
            c->thread_name = dup_or_null(row.thread_name, &oom);
            c->native_symbol = dup_or_null(row.native_symbol, &oom);
            c->line = row.line;
            c->thread_id = row.thread_id;
            c->first = h->nrg;
        }
        if (grow((void **)&h->rg, &h->caprg, h->nrg, sizeof(*h->rg))) {
            oom = 1;
            break;
        }
        struct range *g = &h->rg[h->nrg++];
        g->offset = row.offset;
        g->length = row.length;
        g->old = dup_bytes(row.old, row.length, &oom);
        g->new_ = dup_bytes(row.new_, row.length, &oom);
        h->ch[h->nch - 1].n++;
        struct object *o = &h->obj[oi];
        if (row.offset < o->lo)
            o->lo = row.offset;
        if (row.offset + row.length > o->hi)
            o->hi = row.offset + row.length;
        /* A hand-made trace may claim bytes past the object's end. */
        if (o->hi > o->size)
            o->size = o->hi;
    }
    mw_trace_iter_finish(it);
    if (oom) {
        errno = ENOMEM;
        return -2;
    }
    return rc < 0 ? -1 : 0;
}

/* Sets up each object's replay state: every byte at its value before the history began,
 * where some change's old bytes tell it. */
static void replay_init(struct history *h)
{
    for (size_t i = 0; i < h->nobj; i++) {
        struct object *o = &h->obj[i];
        if (o->lo >= o->hi || o->hi - o->lo > MAX_EXTENT)
            continue;
        o->val = calloc(1, (size_t)(o->hi - o->lo));
        o->state = calloc(1, (size_t)(o->hi - o->lo));
        if (!o->val || !o->state) {
            free(o->val);
            free(o->state);
            o->val = o->state = NULL;
        }
    }
    for (size_t c = 0; c < h->nch; c++) {
        struct object *o = &h->obj[h->ch[c].obj];
        if (!o->state)
            continue;
        for (size_t k = 0; k < h->ch[c].n; k++) {
            const struct range *g = &h->rg[h->ch[c].first + k];
            for (uint64_t b = 0; b < g->length; b++) {
                size_t at = (size_t)(g->offset + b - o->lo);
                if (o->state[at] != UNSEEN)
                    continue;
                if (g->old) {
                    o->val[at] = g->old[b];
                    o->state[at] = KNOWN;
                } else {
                    o->state[at] = UNKNOWN;
                }
            }
        }
    }
    for (size_t i = 0; i < h->nobj; i++)
        if (h->obj[i].state)
            for (uint64_t b = 0; b < h->obj[i].hi - h->obj[i].lo; b++)
                if (h->obj[i].state[b] == UNSEEN)
                    h->obj[i].state[b] = UNKNOWN;   /* not touched: never seen */
}

static void replay_apply(struct history *h, const struct change *c)
{
    struct object *o = &h->obj[c->obj];
    if (!o->state)
        return;
    for (size_t k = 0; k < c->n; k++) {
        const struct range *g = &h->rg[c->first + k];
        memcpy(o->val + (g->offset - o->lo), g->new_, (size_t)g->length);
        memset(o->state + (g->offset - o->lo), KNOWN, (size_t)g->length);
    }
}

/* The byte at offset b of the current replay state: 1 and *v when known. */
static int state_byte(const struct object *o, uint64_t b, unsigned char *v)
{
    if (!o->state || b < o->lo || b >= o->hi || o->state[b - o->lo] != KNOWN)
        return 0;
    *v = o->val[b - o->lo];
    return 1;
}

/* One block's view: for each byte of the object that the block shows, before/after values
 * and whether they are known and changed. Sparse: only rows that matter are kept. */
struct view {
    uint64_t size;
    uint64_t *rows;       /* row numbers (offset / ROW), sorted, unique */
    size_t nrows, caprows;
};

static void view_add_rows(struct view *v, uint64_t first, uint64_t last, unsigned ctx)
{
    uint64_t maxrow = v->size ? (v->size - 1) / ROW : 0;
    uint64_t a = first > ctx ? first - ctx : 0;
    uint64_t b = last + ctx > maxrow ? maxrow : last + ctx;
    for (uint64_t row = a; row <= b; row++) {
        if (v->nrows && v->rows[v->nrows - 1] >= row)
            continue;   /* ranges arrive in offset order: only the tail can overlap */
        if (grow((void **)&v->rows, &v->caprows, v->nrows, sizeof(*v->rows)))
            return;
        v->rows[v->nrows++] = row;
    }
}

struct bytes_at {
    int before_known, after_known, changed;
    unsigned char before, after;
};

/* How the block describes one byte: implemented by the history and net views. */
typedef void (*describe_fn)(void *ctx, uint64_t b, struct bytes_at *out);

static void hex_line(char sign, uint64_t off, const struct bytes_at *row, int n, int after,
                     int color)
{
    const char *on = after ? GREEN : RED;
    printf("%c %08" PRIx64 " ", sign, off);
    for (int i = 0; i < ROW; i++) {
        if (i == 8)
            putchar(' ');
        if (i >= n) {
            fputs("   ", stdout);
            continue;
        }
        int known = after ? row[i].after_known : row[i].before_known;
        unsigned char v = after ? row[i].after : row[i].before;
        int mark = color && row[i].changed && sign != ' ';
        putchar(' ');
        if (mark)
            fputs(on, stdout);
        if (known)
            printf("%02x", v);
        else
            fputs("??", stdout);
        if (mark)
            fputs(RESET, stdout);
    }
    fputs("  |", stdout);
    for (int i = 0; i < n; i++) {
        int known = after ? row[i].after_known : row[i].before_known;
        unsigned char v = after ? row[i].after : row[i].before;
        int mark = color && row[i].changed && sign != ' ';
        if (mark)
            fputs(on, stdout);
        putchar(!known ? ' ' : (v >= 0x20 && v < 0x7f ? v : '.'));
        if (mark)
            fputs(RESET, stdout);
    }
    fputs("|\n", stdout);
}

static void marker_line(const struct bytes_at *row, int n)
{
    fputs("           ", stdout);   /* "+ 00000000 " */
    int last = -1;
    for (int i = 0; i < n; i++)
        if (row[i].changed)
            last = i;
    for (int i = 0; i <= last; i++) {
        if (i == 8)
            putchar(' ');
        fputs(row[i].changed ? " ^^" : "   ", stdout);
    }
    putchar('\n');
}

static void print_rows(const struct view *v, describe_fn describe, void *ctx, int color)
{
    struct bytes_at row[ROW];
    for (size_t i = 0; i < v->nrows; i++) {
        if (i > 0 && v->rows[i] != v->rows[i - 1] + 1)
            puts("  ...");
        uint64_t off = v->rows[i] * ROW;
        int n = (int)(v->size - off < ROW ? v->size - off : ROW);
        int changed = 0, known = 0;
        for (int k = 0; k < n; k++) {
            describe(ctx, off + (uint64_t)k, &row[k]);
            changed |= row[k].changed;
            known |= row[k].before_known | row[k].after_known;
        }
        if (changed) {
            hex_line('-', off, row, n, 0, color);
            hex_line('+', off, row, n, 1, color);
            if (!color)
                marker_line(row, n);
        } else if (known) {
            hex_line(' ', off, row, n, 0, color);
        }
    }
}

/* ---- history: one block per change ---- */

struct change_ctx {
    struct history *h;
    const struct change *c;
};

static void describe_change(void *vctx, uint64_t b, struct bytes_at *out)
{
    struct change_ctx *x = vctx;
    const struct object *o = &x->h->obj[x->c->obj];
    memset(out, 0, sizeof(*out));
    out->before_known = state_byte(o, b, &out->before);
    out->after_known = out->before_known;
    out->after = out->before;
    for (size_t k = 0; k < x->c->n; k++) {
        const struct range *g = &x->h->rg[x->c->first + k];
        if (b < g->offset || b >= g->offset + g->length)
            continue;
        if (g->old) {
            out->before = g->old[b - g->offset];
            out->before_known = 1;
        }
        out->after = g->new_[b - g->offset];
        out->after_known = 1;
        out->changed = !out->before_known || out->before != out->after;
    }
}

static void where_text(char *buf, size_t n, const struct change *c)
{
    if (c->file)
        snprintf(buf, n, "  %s:%d%s%s", c->file, c->line, c->function ? " " : "",
                 c->function ? c->function : "");
    else if (c->native_symbol)
        snprintf(buf, n, "  %s", c->native_symbol);
    else
        buf[0] = '\0';
}

/* ---- elements ---- */

/* The changed elements of one block, as lines, with their NaN/Inf counts. */
struct elem_lines {
    char **line;
    size_t n, cap;
    uint64_t nan, inf;
    int oom;
    /* the widened ranges' known-byte masks, to tell decoded values from guesses */
    const struct mw_rec_range *wr;
    unsigned char *const *old_known, *const *new_known;
    size_t nwr;
    const char *tag;
    int color;
};

static void elem_lines_free(struct elem_lines *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->line[i]);
    free(e->line);
}

static int all_set(const unsigned char *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!m[i])
            return 0;
    return 1;
}

static int elem_line(const struct mw_elem_change *c, void *vctx)
{
    struct elem_lines *e = vctx;
    size_t k = 0;
    while (k + 1 < e->nwr && e->wr[k].offset + e->wr[k].length <= c->offset)
        k++;
    size_t at = (size_t)(c->offset - e->wr[k].offset), size = c->scalar->size;
    const unsigned char *old = all_set(e->old_known[k] + at, size) ? c->old : NULL;
    const unsigned char *new_ = all_set(e->new_known[k] + at, size) ? c->new_ : NULL;
    unsigned flags = c->flags;
    if (!new_)
        flags = 0;
    else if (!old)
        flags &= MW_ELEM_F_NONFINITE_APPEARED;
    char name[1024], ov[512], nv[512];
    mw_elem_format_name(e->tag, c->ndim, c->index, c->scalar, name, sizeof name);
    mw_elem_format_value(c->scalar, old, ov, sizeof ov);
    mw_elem_format_value(c->scalar, new_, nv, sizeof nv);
    const char *flag = flags & MW_ELEM_F_NAN_APPEARED   ? "NaN appeared"
                       : flags & MW_ELEM_F_INF_APPEARED ? "Inf appeared"
                       : flags & MW_ELEM_F_NAN_GONE     ? "NaN gone"
                       : flags & MW_ELEM_F_INF_GONE     ? "Inf gone"
                                                        : NULL;
    int alarm = (flags & MW_ELEM_F_NONFINITE_APPEARED) != 0;
    e->nan += (flags & MW_ELEM_F_NAN_APPEARED) != 0;
    e->inf += (flags & MW_ELEM_F_INF_APPEARED) != 0;
    char *line;
    int n;
    if (e->color)
        n = asprintf(&line, "  %s: " RED "%s" RESET " -> " GREEN "%s" RESET "%s%s%s%s", name, ov, nv,
                     flag ? "  " : "", flag && alarm ? BOLD RED "!! " : "", flag ? flag : "",
                     flag && alarm ? RESET : "");
    else
        n = asprintf(&line, "  %s: %s -> %s%s%s%s", name, ov, nv, flag ? "  " : "",
                     flag && alarm ? "!! " : "", flag ? flag : "");
    if (n < 0 || grow((void **)&e->line, &e->cap, e->n, sizeof(*e->line))) {
        if (n >= 0)
            free(line);
        e->oom = 1;
        return 1;
    }
    e->line[e->n++] = line;
    return 0;
}

/* Decodes the elements under byte runs [runs[2i], runs[2i+1]) of object o, with each byte's
 * before and after values from describe (so bytes the change did not touch come from the
 * rest of the history, like the hexdump's context). */
static int collect_elements(const struct object *o, const uint64_t *runs, size_t nruns,
                            describe_fn describe, void *dctx, struct elem_lines *e)
{
    size_t is = mw_elem_layout_itemsize(o->layout);
    struct mw_rec_range *wr = calloc(nruns ? nruns : 1, sizeof *wr);
    unsigned char **ok = calloc(nruns ? nruns : 1, sizeof *ok);
    unsigned char **nk = calloc(nruns ? nruns : 1, sizeof *nk);
    size_t n = 0;
    int rc = -1;
    if (!wr || !ok || !nk)
        goto out;
    for (size_t i = 0; i < nruns; i++) {
        uint64_t a = runs[2 * i] / is * is, b = (runs[2 * i + 1] + is - 1) / is * is;
        if (b > o->size)
            b = o->size;
        if (a >= b)
            continue;
        if (n && wr[n - 1].offset + wr[n - 1].length >= a) {
            if (b > wr[n - 1].offset + wr[n - 1].length)
                wr[n - 1].length = b - wr[n - 1].offset;
            continue;
        }
        wr[n++] = (struct mw_rec_range){a, b - a, NULL, NULL};
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)wr[i].length;
        unsigned char *ob = malloc(len), *nb = malloc(len);
        ok[i] = malloc(len);
        nk[i] = malloc(len);
        wr[i].old = ob;
        wr[i].new_ = nb;
        if (!ob || !nb || !ok[i] || !nk[i])
            goto out;
        for (size_t b = 0; b < len; b++) {
            struct bytes_at ba;
            describe(dctx, wr[i].offset + b, &ba);
            ob[b] = ba.before_known ? ba.before : 0;
            nb[b] = ba.after_known ? ba.after : 0;
            ok[i][b] = (unsigned char)ba.before_known;
            nk[i][b] = (unsigned char)ba.after_known;
        }
    }
    e->wr = wr;
    e->old_known = ok;
    e->new_known = nk;
    e->nwr = n;
    rc = n ? mw_elem_diff(o->layout, wr, n, NULL, NULL, 0, elem_line, e) : 0;
    if (rc == MW_EINVAL)
        rc = -2;   /* bytes past the elements the object's shape has (a hand-made trace) */
    else if (e->oom || rc)
        rc = -1;
out:
    for (size_t i = 0; wr && i < n; i++) {
        free((void *)wr[i].old);
        free((void *)wr[i].new_);
        free(ok[i]);
        free(nk[i]);
    }
    free(wr);
    free(ok);
    free(nk);
    return rc;
}

static void print_nonfinite(const struct elem_lines *e, int color)
{
    if (!e->nan && !e->inf)
        return;
    char what[96];
    if (e->nan && e->inf)
        snprintf(what, sizeof what, "%" PRIu64 " NaN and %" PRIu64 " Inf appeared", e->nan, e->inf);
    else if (e->nan)
        snprintf(what, sizeof what, "%" PRIu64 " NaN appeared", e->nan);
    else
        snprintf(what, sizeof what, "%" PRIu64 " Inf appeared", e->inf);
    printf("%s!! %s%s\n", color ? BOLD RED : "", what, color ? RESET : "");
}

static void print_lines(const struct elem_lines *e)
{
    for (size_t i = 0; i < e->n; i++)
        puts(e->line[i]);
}

static int print_change_elements(struct history *h, const struct change *c, const char *tag,
                                 int color)
{
    const struct object *o = &h->obj[c->obj];
    uint64_t *runs = malloc(2 * (c->n ? c->n : 1) * sizeof *runs);
    if (!runs)
        return -1;
    for (size_t k = 0; k < c->n; k++) {
        runs[2 * k] = h->rg[c->first + k].offset;
        runs[2 * k + 1] = h->rg[c->first + k].offset + h->rg[c->first + k].length;
    }
    struct elem_lines e = {.tag = tag, .color = color};
    struct change_ctx x = {h, c};
    int rc = collect_elements(o, runs, c->n, describe_change, &x, &e);
    free(runs);
    if (rc) {
        elem_lines_free(&e);
        return rc;
    }
    char where[1024], thread[96] = "", obj[48] = "";
    where_text(where, sizeof(where), c);
    if (c->thread_name)
        snprintf(thread, sizeof(thread), "  thread %s", c->thread_name);
    else if (c->thread_id)
        snprintf(thread, sizeof(thread), "  thread %" PRId64, c->thread_id);
    if (h->nobj > 1)
        snprintf(obj, sizeof(obj), " (object %" PRIu64 ")", o->id);
    printf("%sseq %" PRIu64 "  %.6fs  %s%s  %zu element%s%s%s%s\n", color ? BOLD : "", c->seq,
           (double)c->time_ns / 1e9, tag, obj, e.n, e.n == 1 ? "" : "s", where, thread,
           color ? RESET : "");
    print_nonfinite(&e, color);
    print_lines(&e);
    elem_lines_free(&e);
    return 0;
}

static void print_change(struct history *h, const struct change *c, const char *tag,
                         unsigned ctx, int color)
{
    const struct object *o = &h->obj[c->obj];
    char where[1024], thread[96] = "", obj[48] = "";
    where_text(where, sizeof(where), c);
    if (c->thread_name)
        snprintf(thread, sizeof(thread), "  thread %s", c->thread_name);
    else if (c->thread_id)
        snprintf(thread, sizeof(thread), "  thread %" PRId64, c->thread_id);
    if (h->nobj > 1)
        snprintf(obj, sizeof(obj), " (object %" PRIu64 ")", o->id);
    uint64_t bytes = 0;
    for (size_t k = 0; k < c->n; k++)
        bytes += h->rg[c->first + k].length;
    printf("%sseq %" PRIu64 "  %.6fs  %s%s  %zu range%s, %" PRIu64 " byte%s%s%s%s\n",
           color ? BOLD : "", c->seq, (double)c->time_ns / 1e9, tag, obj, c->n,
           c->n == 1 ? "" : "s", bytes, bytes == 1 ? "" : "s", where, thread,
           color ? RESET : "");
    struct view v = {.size = o->size};
    for (size_t k = 0; k < c->n; k++) {
        const struct range *g = &h->rg[c->first + k];
        if (g->length)
            view_add_rows(&v, g->offset / ROW, (g->offset + g->length - 1) / ROW, ctx);
    }
    struct change_ctx x = {h, c};
    print_rows(&v, describe_change, &x, color);
    free(v.rows);
}

/* ---- net difference between two points ---- */

struct net_ctx {
    const struct object *o;
    const unsigned char *before_val, *before_state;   /* snapshot at --from */
    const unsigned char *touched;                      /* by changes in (from, to] */
};

static void describe_net(void *vctx, uint64_t b, struct bytes_at *out)
{
    struct net_ctx *x = vctx;
    const struct object *o = x->o;
    memset(out, 0, sizeof(*out));
    out->after_known = state_byte(o, b, &out->after);
    if (!o->state || b < o->lo || b >= o->hi) {
        out->before_known = out->after_known;
        out->before = out->after;
        return;
    }
    size_t at = (size_t)(b - o->lo);
    out->before_known = x->before_state[at] == KNOWN;
    out->before = x->before_val[at];
    if (x->touched[at])
        out->changed = !out->before_known || out->before != out->after;
}

static int print_net(struct history *h, const char *tag, uint64_t from, uint64_t to,
                     unsigned ctx, int color)
{
    /* Replay up to from, snapshot, replay up to to; per object. */
    size_t c = 0;
    while (c < h->nch && h->ch[c].seq <= from)
        replay_apply(h, &h->ch[c++]);
    size_t start = c;
    int printed = 0;
    for (size_t i = 0; i < h->nobj; i++) {
        struct object *o = &h->obj[i];
        size_t nchanges = 0;
        for (size_t k = start; k < h->nch && h->ch[k].seq <= to; k++)
            nchanges += h->ch[k].obj == i;
        if (nchanges == 0)
            continue;
        if (!o->state) {
            mw_cli_error("'%s' changed over %" PRIu64 " bytes: too large for a net difference",
                         tag, o->hi - o->lo);
            return MW_EXIT_FAILURE;
        }
        size_t n = (size_t)(o->hi - o->lo);
        unsigned char *bv = malloc(n), *bs = malloc(n), *touched = calloc(1, n);
        if (!bv || !bs || !touched) {
            free(bv), free(bs), free(touched);
            mw_cli_error("out of memory");
            return MW_EXIT_FAILURE;
        }
        memcpy(bv, o->val, n);
        memcpy(bs, o->state, n);
        uint64_t first = 0, last = 0;
        for (size_t k = start; k < h->nch && h->ch[k].seq <= to; k++) {
            if (h->ch[k].obj != i)
                continue;
            if (!first)
                first = h->ch[k].seq;
            last = h->ch[k].seq;
            for (size_t j = 0; j < h->ch[k].n; j++) {
                const struct range *g = &h->rg[h->ch[k].first + j];
                memset(touched + (g->offset - o->lo), 1, (size_t)g->length);
            }
            replay_apply(h, &h->ch[k]);
        }
        struct net_ctx x = {o, bv, bs, touched};
        if (o->layout) {
            /* runs of touched bytes, decoded as elements */
            uint64_t *runs = NULL;
            size_t nruns = 0, cap = 0;
            int bad = 0;
            for (size_t b = 0; b < n && !bad;) {
                if (!touched[b]) {
                    b++;
                    continue;
                }
                size_t e2 = b;
                while (e2 < n && touched[e2])
                    e2++;
                if (grow((void **)&runs, &cap, 2 * nruns + 1, sizeof *runs))
                    bad = 1;
                else {
                    runs[2 * nruns] = o->lo + b;
                    runs[2 * nruns + 1] = o->lo + e2;
                    nruns++;
                }
                b = e2;
            }
            struct elem_lines e = {.tag = tag, .color = color};
            int erc = bad ? -1 : collect_elements(o, runs, nruns, describe_net, &x, &e);
            if (erc) {
                free(runs);
                elem_lines_free(&e);
                free(bv), free(bs), free(touched);
                if (erc == -2)
                    mw_cli_error("'%s' changed bytes past its elements: use --bytes", tag);
                else
                    mw_cli_error("out of memory");
                return MW_EXIT_FAILURE;
            }
            free(runs);
            char obj[48] = "";
            if (h->nobj > 1)
                snprintf(obj, sizeof(obj), " (object %" PRIu64 ")", o->id);
            if (printed++)
                putchar('\n');
            printf("%s%s%s  from seq %" PRIu64 " to seq %" PRIu64 "  %zu change%s (seq %" PRIu64
                   "..%" PRIu64 "), %zu element%s differ%s%s\n",
                   color ? BOLD : "", tag, obj, from, to, nchanges, nchanges == 1 ? "" : "s",
                   first, last, e.n, e.n == 1 ? "" : "s", e.n == 1 ? "s" : "",
                   color ? RESET : "");
            print_nonfinite(&e, color);
            print_lines(&e);
            elem_lines_free(&e);
            free(bv), free(bs), free(touched);
            continue;
        }
        struct view v = {.size = o->size};
        uint64_t differing = 0;
        for (size_t b = 0; b < n; b++) {
            struct bytes_at ba;
            describe_net(&x, o->lo + b, &ba);
            if (ba.changed) {
                differing++;
                uint64_t row = (o->lo + b) / ROW;
                view_add_rows(&v, row, row, ctx);
            }
        }
        char obj[48] = "";
        if (h->nobj > 1)
            snprintf(obj, sizeof(obj), " (object %" PRIu64 ")", o->id);
        if (printed++)
            putchar('\n');
        printf("%s%s%s  from seq %" PRIu64 " to seq %" PRIu64 "  %zu change%s (seq %" PRIu64
               "..%" PRIu64 "), %" PRIu64 " byte%s differ%s\n",
               color ? BOLD : "", tag, obj, from, to, nchanges, nchanges == 1 ? "" : "s", first,
               last, differing, differing == 1 ? "" : "s", color ? RESET : "");
        print_rows(&v, describe_net, &x, color);
        free(v.rows);
        free(bv);
        free(bs);
        free(touched);
    }
    if (!printed)
        printf("%s  from seq %" PRIu64 " to seq %" PRIu64 "  no changes\n", tag, from, to);
    return MW_EXIT_OK;
}

/* Element layouts of the history's typed objects (the others stay NULL: bytes). */
static int find_layouts(mw_trace_reader *r, struct history *h)
{
    for (size_t i = 0; i < h->nobj; i++) {
        const struct mw_elem_layout *l;
        int typed, rc = mw_trace_reader_layout(r, h->obj[i].id, &l, &typed);
        if (rc < 0)
            return rc == -ENOMEM ? -2 : -1;
        h->obj[i].layout = typed ? l : NULL;
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* NO_COLOR: https://no-color.org, "when present and not an empty string". */
static int want_color(const char *when)
{
    if (strcmp(when, "always") == 0)
        return 1;
    if (strcmp(when, "never") == 0)
        return 0;
    const char *nc = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(nc && *nc);
}

int cmd_diff(int argc, char **argv)
{
    const char *trace = NULL, *color_when = "auto";
    uint64_t from = 0, to = 0, ctx = 1;
    int has_from = 0, has_to = 0, bytes = 0;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":t:C:bh", diff_options, NULL)) != -1) {
        switch (opt) {
        case 't':
            trace = optarg;
            break;
        case OPT_FROM:
            if (parse_u64(optarg, &from))
                return mw_cli_usage_error(diff_usage,
                                          "'--from' needs a sequence number, not '%s'", optarg);
            has_from = 1;
            break;
        case OPT_TO:
            if (parse_u64(optarg, &to))
                return mw_cli_usage_error(diff_usage,
                                          "'--to' needs a sequence number, not '%s'", optarg);
            has_to = 1;
            break;
        case 'C':
            if (parse_u64(optarg, &ctx) || ctx > 1000)
                return mw_cli_usage_error(diff_usage,
                                          "'--context' needs a number of rows (0 to 1000), "
                                          "not '%s'", optarg);
            break;
        case OPT_COLOR:
            color_when = optarg ? optarg : "always";
            if (strcmp(color_when, "auto") && strcmp(color_when, "always") &&
                strcmp(color_when, "never"))
                return mw_cli_usage_error(diff_usage,
                                          "'--color' takes auto, always or never, not '%s'",
                                          color_when);
            break;
        case 'b':
            bytes = 1;
            break;
        case 'h':
            mw_cli_print_usage(stdout, diff_usage);
            return MW_EXIT_OK;
        default:
            /* A long option: name it as typed (getopt sets optopt to its value). */
            if (optind > 0 && strncmp(argv[optind - 1], "--", 2) == 0)
                optopt = 0;
            return mw_cli_bad_option(diff_usage, opt, argv);
        }
    }
    if (optind >= argc)
        return mw_cli_usage_error(diff_usage, "no tag given");
    if (argc - optind > 1)
        return mw_cli_usage_error(diff_usage, "too many arguments: one tag at a time");
    if (has_from && has_to && from > to)
        return mw_cli_usage_error(diff_usage,
                                  "'--from %" PRIu64 "' is after '--to %" PRIu64 "'", from, to);
    const char *tag = argv[optind];
    int color = want_color(color_when);

    mw_trace_reader *r;
    char *path;
    int status = mw_cli_open_trace(trace, &r, &path);
    if (status)
        return status;
    if ((status = mw_cli_check_tag(r, path, tag))) {
        mw_trace_reader_close(r);
        free(path);
        return status;
    }
    struct history h = {0};
    int rc = load(r, tag, &h);
    if (rc < 0) {
        mw_cli_error("%s", rc == -2 ? "out of memory" : mw_trace_reader_errmsg(r));
        status = MW_EXIT_FAILURE;
    } else if (h.nch == 0) {
        mw_cli_error("'%s' did not change in '%s'", tag, path);
    } else if (!bytes && (rc = find_layouts(r, &h)) < 0) {
        mw_cli_error("%s", rc == -2 ? "out of memory" : mw_trace_reader_errmsg(r));
        status = MW_EXIT_FAILURE;
    } else {
        replay_init(&h);
        if (has_from || has_to) {
            if (!has_to)
                to = h.ch[h.nch - 1].seq;
            status = print_net(&h, tag, from, to, (unsigned)ctx, color);
        } else {
            for (size_t c = 0; c < h.nch; c++) {
                if (c)
                    putchar('\n');
                int erc = h.obj[h.ch[c].obj].layout
                              ? print_change_elements(&h, &h.ch[c], tag, color) : -2;
                if (erc == -1) {
                    mw_cli_error("out of memory");
                    status = MW_EXIT_FAILURE;
                    break;
                } else if (erc == -2) {
                    print_change(&h, &h.ch[c], tag, (unsigned)ctx, color);
                }
                replay_apply(&h, &h.ch[c]);
            }
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            mw_cli_error("cannot write the output: %s", strerror(errno));
            status = MW_EXIT_FAILURE;
        }
    }
    history_free(&h);
    mw_trace_reader_close(r);
    free(path);
    return status;
}
