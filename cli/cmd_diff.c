/* memwatch diff: one watched object's history, one block per change: for an object with
 * an element type (numpy, torch, array.array, ctypes, typed memoryview) its changed
 * elements with their old and new values, NaN and Inf that appeared flagged; for bytes
 * (or with --bytes) hexdumps, old above new, changed bytes marked. Or (--from/--to) the
 * net difference between two points of that history.
 *
 * DESIGN: a trace holds the changed bytes only, not whole objects. The context around a
 * change is rebuilt from the rest of the history: a byte's value before the first change
 * that touched it is that change's old byte, and after a change its new byte. So each
 * object's state is replayed in seq order over the extent of bytes the history touches
 * (diff_history.c); bytes the trace never saw are shown as `??` (and context rows made only
 * of them are left out: diff_view.c). The state of object X "at seq S" is the state after
 * every change numbered <= S. Typed objects' elements are decoded from the same bytes
 * (diff_elements.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "diff_elements.h"
#include "diff_history.h"
#include "diff_stream.h"
#include "diff_view.h"
#include "format.h"
#include "mw_grow.h"
#include "reader.h"
#include "show.h"
#include "timeline.h"
#include "value_read.h"

enum { OPT_FROM = 256, OPT_TO, OPT_COLOR };

static const char *const diff_usage[] = {
    "usage: memwatch diff [-t trace] [--from seq] [--to seq] [-C rows] [--bytes] [--color[=when]] tag [trace ...]",
    "",
    "Show how the object watched under tag changed, one block per change. For typed objects",
    "(numpy, torch, array.array, ctypes) each changed element: name[index]: old -> new, with",
    "NaN and Inf that appeared flagged (!!). For bytes, a hexdump: the bytes before (-)",
    "above the bytes after (+), changed bytes marked.",
    "",
    MW_CLI_LIST,
    "",
    "Bytes the trace never saw are shown as ?? (blank on the right). Color is used on a",
    "terminal unless NO_COLOR is set. Several traces are read as one timeline: the tag's",
    "changes in each, merged by wall clock, each heading naming its trace.",
    NULL,
};

static const struct mw_cli_option diff_options[] = {
    {"trace", required_argument, 't',
     "    -t, --trace trace   read this trace (default: the newest memwatch-*.db here)"},
    {"from", required_argument, OPT_FROM,
     "    --from seq          with --to: the net change after change seq (default: the start)"},
    {"to", required_argument, OPT_TO,
     "    --to seq            ... up to and including change seq (default: the end)"},
    {"context", required_argument, 'C',
     "    -C, --context rows  rows of 16 bytes shown around each change (default 1)"},
    {"bytes", no_argument, 'b', "    -b, --bytes         hexdumps for typed objects too"},
    {"color", optional_argument, OPT_COLOR,
     "    --color[=when]      mark changes with color: auto (the default), always, never"},
    {"colour", optional_argument, OPT_COLOR, NULL},
    {"help", no_argument, 'h', "    -h, --help          show this help"},
    {NULL, 0, 0, NULL},
};

/* ---- headings ---- */

/* " (object 2)" when the tag had more than one object, else "". */
static void object_text(char *buf, size_t n, const struct mw_diff_history *h,
                        const struct mw_diff_object *o)
{
    buf[0] = '\0';
    if (h->nobj > 1)
        snprintf(buf, n, " (object %" PRIu64 ")", o->id);
}

/* The tag as the trace has it (element names are made from it) and as it is shown. */
struct diff_tag {
    const char *raw;
    char *shown;
};

/* A change's heading (diff_view.h). */
static void change_heading(const struct mw_diff_history *h, const struct mw_diff_change *c,
                           const struct diff_tag *tag, const char *what, int color)
{
    char obj[48];
    object_text(obj, sizeof obj, h, &h->obj[c->obj]);
    struct mw_diff_heading hd = {c->seq, c->time_ns, tag->raw, obj, what, c->file, c->line,
                                 c->function, c->native_symbol, c->thread_name, c->thread_id,
                                 c->pid};
    mw_diff_print_heading(&hd, color);
}

/* ---- history: one block per change ---- */

struct change_ctx {
    struct mw_diff_history *h;
    const struct mw_diff_change *c;
};

static void describe_change(void *vctx, uint64_t b, struct mw_diff_byte *out)
{
    struct change_ctx *x = vctx;
    const struct mw_diff_object *o = &x->h->obj[x->c->obj];
    memset(out, 0, sizeof(*out));
    out->before_known = mw_diff_state_byte(o, b, &out->before);
    out->after_known = out->before_known;
    out->after = out->before;
    for (size_t k = 0; k < x->c->n; k++) {
        const struct mw_diff_range *g = &x->h->rg[x->c->first + k];
        if (b < g->offset || b >= g->offset + g->length)
            continue;
        if (g->old) {
            out->before = g->old[b - g->offset];
            out->before_known = 1;
        }
        out->after_known = g->new_ != NULL;
        out->after = g->new_ ? g->new_[b - g->offset] : 0;
        out->changed = !out->before_known || !out->after_known || out->before != out->after;
    }
}

/* A change of a typed object: its elements. 0, -1 (out of memory) or -2 (shown as bytes
 * instead). */
static int print_change_elements(struct mw_diff_history *h, const struct mw_diff_change *c,
                                 const struct diff_tag *tag, int color)
{
    uint64_t *runs = malloc(2 * (c->n ? c->n : 1) * sizeof *runs);
    if (!runs)
        return -1;
    for (size_t k = 0; k < c->n; k++) {
        runs[2 * k] = h->rg[c->first + k].offset;
        runs[2 * k + 1] = h->rg[c->first + k].offset + h->rg[c->first + k].length;
    }
    struct mw_diff_lines e = {.tag = tag->raw, .color = color};
    struct change_ctx x = {h, c};
    int rc = mw_diff_collect_elements(&h->obj[c->obj], runs, c->n, describe_change, &x, &e);
    free(runs);
    if (rc == 0) {
        char what[64];
        snprintf(what, sizeof what, "%zu element%s", e.n, e.n == 1 ? "" : "s");
        change_heading(h, c, tag, what, color);
        mw_diff_print_lines(&e, color);
    }
    mw_diff_lines_free(&e);
    return rc;
}

/* A change as a hexdump. */
static void print_change(struct mw_diff_history *h, const struct mw_diff_change *c,
                         const struct diff_tag *tag, unsigned ctx, int color)
{
    const struct mw_diff_object *o = &h->obj[c->obj];
    uint64_t bytes = 0;
    for (size_t k = 0; k < c->n; k++)
        bytes += h->rg[c->first + k].length;
    char what[96];
    snprintf(what, sizeof what, "%zu range%s, %" PRIu64 " byte%s", c->n, c->n == 1 ? "" : "s",
             bytes, bytes == 1 ? "" : "s");
    change_heading(h, c, tag, what, color);
    struct mw_diff_view v = {.size = o->size};
    for (size_t k = 0; k < c->n; k++) {
        const struct mw_diff_range *g = &h->rg[c->first + k];
        if (g->length)
            mw_diff_view_add_rows(&v, g->offset / MW_DIFF_ROW,
                                  (g->offset + g->length - 1) / MW_DIFF_ROW, ctx);
    }
    struct change_ctx x = {h, c};
    mw_diff_print_rows(&v, describe_change, &x, color);
    free(v.rows);
}

/* A change whose bytes the trace did not keep (--values=summary, dropped): says so. */
static int print_not_kept(const struct mw_diff_history *h, const struct mw_diff_change *c,
                          const struct diff_tag *tag, int color)
{
    for (size_t k = 0; k < c->n; k++)
        if (!h->rg[c->first + k].new_) {
            change_heading(h, c, tag, c->kept == MW_KEPT_DROPPED ? "values dropped"
                                                                 : "values not kept", color);
            return 1;
        }
    return 0;
}

/* Every change in turn, replaying as it goes. */
static int print_history(struct mw_diff_history *h, const struct diff_tag *tag, unsigned ctx,
                         int color)
{
    for (size_t c = 0; c < h->nch; c++) {
        if (c)
            putchar('\n');
        if (print_not_kept(h, &h->ch[c], tag, color)) {
            mw_diff_replay_apply(h, &h->ch[c]);
            continue;
        }
        int erc = h->obj[h->ch[c].obj].layout ? print_change_elements(h, &h->ch[c], tag, color)
                                              : -2;
        if (erc == -1) {
            mw_cli_error("out of memory");
            return MW_EXIT_FAILURE;
        }
        if (erc == -2)
            print_change(h, &h->ch[c], tag, ctx, color);
        mw_diff_replay_apply(h, &h->ch[c]);
    }
    return MW_EXIT_OK;
}

/* ---- net difference between two points ---- */

/* One object's net difference: its state at --from (a snapshot) and at --to (the replay),
 * and which bytes changes in (from, to] touched. */
struct net_ctx {
    const struct mw_diff_object *o;
    unsigned char *before_val, *before_state;   /* snapshot at --from */
    unsigned char *touched;                     /* by changes in (from, to] */
    size_t n;                                   /* bytes of each: the object's extent */
    uint64_t from, to;
    size_t nchanges;
    uint64_t first, last;                       /* their seqs */
};

static void describe_net(void *vctx, uint64_t b, struct mw_diff_byte *out)
{
    struct net_ctx *x = vctx;
    const struct mw_diff_object *o = x->o;
    memset(out, 0, sizeof(*out));
    out->after_known = mw_diff_state_byte(o, b, &out->after);
    if (!o->state || b < o->lo || b >= o->hi) {
        out->before_known = out->after_known;
        out->before = out->after;
        return;
    }
    size_t at = (size_t)(b - o->lo);
    out->before_known = x->before_state[at] == MW_DIFF_KNOWN;
    out->before = x->before_val[at];
    if (x->touched[at])   /* a byte a side does not know may differ */
        out->changed = !out->before_known || !out->after_known || out->before != out->after;
}

/* The net heading: "tag  from seq 1 to seq 9  3 changes (seq 2..7), <what>". */
static void net_heading(const struct mw_diff_history *h, const struct net_ctx *x,
                        const struct diff_tag *tag, const char *what, int color, int *printed)
{
    char obj[48];
    object_text(obj, sizeof obj, h, x->o);
    if ((*printed)++)
        putchar('\n');
    printf("%s%s%s  from seq %" PRIu64 " to seq %" PRIu64 "  %zu change%s (seq %" PRIu64
           "..%" PRIu64 "), %s%s\n",
           color ? MW_DIFF_BOLD : "", tag->shown, obj, x->from, x->to, x->nchanges,
           x->nchanges == 1 ? "" : "s", x->first, x->last, what, color ? MW_DIFF_RESET : "");
}

/* The runs of touched bytes, as offsets in the object; NULL when out of memory. */
static uint64_t *touched_runs(const struct net_ctx *x, size_t *nruns)
{
    uint64_t *runs = NULL;
    size_t cap = 0;
    *nruns = 0;
    for (size_t b = 0; b < x->n;) {
        if (!x->touched[b]) {
            b++;
            continue;
        }
        size_t e = b;
        while (e < x->n && x->touched[e])
            e++;
        if (MW_GROW(runs, cap, 2 * *nruns + 2) != 0) {
            free(runs);
            return NULL;
        }
        runs[2 * *nruns] = x->o->lo + b;
        runs[2 * *nruns + 1] = x->o->lo + e;
        (*nruns)++;
        b = e;
    }
    return runs ? runs : calloc(1, sizeof *runs);
}

/* A typed object's net difference: the elements under the touched bytes. */
static int net_elements(const struct mw_diff_history *h, struct net_ctx *x,
                        const struct diff_tag *tag, int color, int *printed)
{
    size_t nruns;
    uint64_t *runs = touched_runs(x, &nruns);
    struct mw_diff_lines e = {.tag = tag->raw, .color = color};
    int erc = runs ? mw_diff_collect_elements(x->o, runs, nruns, describe_net, x, &e) : -1;
    free(runs);
    if (erc == 0) {
        char what[128];
        int len = snprintf(what, sizeof what, "%zu element%s differ%s", e.n, e.n == 1 ? "" : "s",
                           e.n == 1 ? "s" : "");
        if (e.unknown)
            snprintf(what + len, sizeof what - (size_t)len,
                     ", %" PRIu64 " more written whose values the trace did not keep",
                     e.unknown);
        net_heading(h, x, tag, what, color, printed);
        mw_diff_print_lines(&e, color);
    } else if (erc == -2) {
        mw_cli_error("%s changed bytes past its elements: use --bytes", mw_show_name(tag->raw));
    } else {
        mw_cli_error("out of memory");
    }
    mw_diff_lines_free(&e);
    return erc ? MW_EXIT_FAILURE : MW_EXIT_OK;
}

/* An object of bytes' net difference: a hexdump of the bytes that differ. */
static void net_bytes(const struct mw_diff_history *h, struct net_ctx *x,
                      const struct diff_tag *tag, unsigned ctx, int color, int *printed)
{
    struct mw_diff_view v = {.size = x->o->size};
    uint64_t differing = 0, unknown = 0;
    for (size_t b = 0; b < x->n; b++) {
        struct mw_diff_byte ba;
        describe_net(x, x->o->lo + b, &ba);
        if (ba.changed) {
            if (ba.before_known || ba.after_known)
                differing++;   /* shown with "??" on the side not known */
            else
                unknown++;
            uint64_t row = (x->o->lo + b) / MW_DIFF_ROW;
            mw_diff_view_add_rows(&v, row, row, ctx);
        }
    }
    char what[128];
    int len = snprintf(what, sizeof what, "%" PRIu64 " byte%s differ%s", differing,
                       differing == 1 ? "" : "s", differing == 1 ? "s" : "");
    if (unknown)
        snprintf(what + len, sizeof what - (size_t)len,
                 ", %" PRIu64 " written whose values the trace did not keep", unknown);
    net_heading(h, x, tag, what, color, printed);
    mw_diff_print_rows(&v, describe_net, x, color);
    free(v.rows);
}

/* Object i's net difference over changes start.. (the replay is at --from): snapshot, then
 * replay its changes up to --to. */
static int net_object(struct mw_diff_history *h, size_t i, size_t start, struct net_ctx *x,
                      const struct diff_tag *tag, unsigned ctx, int color, int *printed)
{
    struct mw_diff_object *o = &h->obj[i];
    if (!o->state) {
        mw_cli_error("%s changed over %" PRIu64 " bytes: too large for a net difference",
                     mw_show_name(tag->raw), o->hi - o->lo);
        return MW_EXIT_FAILURE;
    }
    x->o = o;
    x->n = (size_t)(o->hi - o->lo);
    x->before_val = malloc(x->n);
    x->before_state = malloc(x->n);
    x->touched = calloc(1, x->n);
    int status = MW_EXIT_FAILURE;
    if (!x->before_val || !x->before_state || !x->touched) {
        mw_cli_error("out of memory");
        goto out;
    }
    memcpy(x->before_val, o->val, x->n);
    memcpy(x->before_state, o->state, x->n);
    x->first = x->last = 0;
    for (size_t k = start; k < h->nch && h->ch[k].seq <= x->to; k++) {
        if (h->ch[k].obj != i)
            continue;
        if (!x->first)
            x->first = h->ch[k].seq;
        x->last = h->ch[k].seq;
        for (size_t j = 0; j < h->ch[k].n; j++) {
            const struct mw_diff_range *g = &h->rg[h->ch[k].first + j];
            memset(x->touched + (g->offset - o->lo), 1, (size_t)g->length);
        }
        mw_diff_replay_apply(h, &h->ch[k]);
    }
    status = MW_EXIT_OK;
    if (o->layout)
        status = net_elements(h, x, tag, color, printed);
    else
        net_bytes(h, x, tag, ctx, color, printed);
out:
    free(x->before_val);
    free(x->before_state);
    free(x->touched);
    return status;
}

static int print_net(struct mw_diff_history *h, const struct diff_tag *tag, uint64_t from,
                     uint64_t to, unsigned ctx, int color)
{
    /* Replay up to from, then each object on its own: snapshot, replay up to to. */
    size_t c = 0;
    while (c < h->nch && h->ch[c].seq <= from)
        mw_diff_replay_apply(h, &h->ch[c++]);
    size_t start = c;
    int printed = 0;
    for (size_t i = 0; i < h->nobj; i++) {
        struct net_ctx x = {.from = from, .to = to};
        for (size_t k = start; k < h->nch && h->ch[k].seq <= to; k++)
            x.nchanges += h->ch[k].obj == i;
        if (x.nchanges == 0)
            continue;
        int status = net_object(h, i, start, &x, tag, ctx, color, &printed);
        if (status)
            return status;
    }
    if (!printed)
        printf("%s  from seq %" PRIu64 " to seq %" PRIu64 "  no changes\n", tag->shown, from,
               to);
    return MW_EXIT_OK;
}

/* ---- the command ---- */

/* What the command line asks for. */
struct diff_args {
    const char *trace, *color_when, *tag;
    char **traces;         /* the operands after tag */
    int ntraces;
    uint64_t from, to, ctx;
    int has_from, has_to, bytes;
    int color;             /* from color_when */
};

static int diff_option(void *args, int opt)
{
    struct diff_args *a = args;
    switch (opt) {
    case 't':
        a->trace = optarg;
        break;
    case OPT_FROM:
        return mw_cli_seq_option(&mw_cmd_diff, "--from", optarg, &a->from, &a->has_from);
    case OPT_TO:
        return mw_cli_seq_option(&mw_cmd_diff, "--to", optarg, &a->to, &a->has_to);
    case 'C':
        if (mw_cli_parse_u64(optarg, &a->ctx) || a->ctx > 1000)
            return mw_cli_usage_error(&mw_cmd_diff,
                                      "'--context' needs a number of rows (0 to 1000), "
                                      "not '%s'", optarg);
        break;
    case OPT_COLOR:
        a->color_when = optarg ? optarg : "always";
        if (strcmp(a->color_when, "auto") && strcmp(a->color_when, "always") &&
            strcmp(a->color_when, "never"))
            return mw_cli_usage_error(&mw_cmd_diff,
                                      "'--color' takes auto, always or never, not '%s'",
                                      a->color_when);
        break;
    case 'b':
        a->bytes = 1;
        break;
    }
    return MW_CLI_GO_ON;
}

static int parse_diff_args(int argc, char **argv, struct diff_args *a)
{
    int status = mw_cli_parse_options(&mw_cmd_diff, argc, argv, diff_option, a);
    if (status != MW_CLI_GO_ON)
        return status;
    if (optind >= argc)
        return mw_cli_usage_error(&mw_cmd_diff, "no tag given");
    a->traces = argv + optind + 1;
    a->ntraces = argc - optind - 1;
    if (a->ntraces && a->trace)
        return mw_cli_usage_error(&mw_cmd_diff, "give the traces with -t or after the tag, "
                                  "not both");
    if (a->ntraces > 1 && (a->has_from || a->has_to))
        return mw_cli_usage_error(&mw_cmd_diff, "'--from' and '--to' are seqs of one trace: "
                                  "give one trace");
    if (a->has_from && a->has_to && a->from > a->to)
        return mw_cli_usage_error(&mw_cmd_diff,
                                  "'--from %" PRIu64 "' is after '--to %" PRIu64 "'", a->from,
                                  a->to);
    a->tag = argv[optind];
    return MW_CLI_GO_ON;
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

/* The tag's history, then its blocks; streamed where the trace knows every byte. */
static int show(mw_trace_reader *r, const char *path, const struct diff_args *a)
{
    struct mw_diff_options o = {.ctx = (unsigned)a->ctx, .color = a->color, .bytes = a->bytes,
                                .net = a->has_from || a->has_to, .from = a->has_from ? a->from : 0,
                                .to = a->has_to ? a->to : UINT64_MAX};
    int status = mw_diff_stream(r, path, a->tag, &o);
    if (status != MW_DIFF_STREAM_NOT_HERE)
        return status;
    status = MW_EXIT_OK;
    struct mw_diff_history h = {0};
    struct diff_tag tag = {a->tag, mw_show(a->tag, strlen(a->tag), MW_SHOW_NAME_MAX, NULL)};
    if (!tag.shown) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    int rc = mw_diff_load(r, a->tag, &h);
    if (rc == 0 && h.nch > 0 && !a->bytes)
        rc = mw_diff_find_layouts(r, &h);
    if (rc < 0) {
        mw_cli_error("%s", rc == -2 ? "out of memory" : mw_trace_reader_errmsg(r));
        status = MW_EXIT_FAILURE;
    } else if (h.nch == 0) {
        mw_cli_error("%s did not change in %s", mw_show_name(a->tag), mw_show_name(path));
    } else {
        mw_diff_replay_init(&h);
        if (a->has_from || a->has_to)
            status = print_net(&h, &tag, a->from, a->has_to ? a->to : h.ch[h.nch - 1].seq,
                               (unsigned)a->ctx, a->color);
        else
            status = print_history(&h, &tag, (unsigned)a->ctx, a->color);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            mw_cli_error("cannot write the output: %s", strerror(errno));
            status = MW_EXIT_FAILURE;
        }
    }
    mw_diff_history_free(&h);
    free(tag.shown);
    return status;
}

/* The tag's blocks, when the trace at path has the tag. */
static int diff_trace(mw_trace_reader *r, const char *path, void *ctx)
{
    struct diff_args *a = ctx;
    int status = mw_cli_check_tag(r, path, a->tag);
    return status ? status : show(r, path, a);
}

int cmd_diff(int argc, char **argv)
{
    struct diff_args a = {.color_when = "auto", .ctx = 1};
    int status = parse_diff_args(argc, argv, &a);
    if (status != MW_CLI_GO_ON)
        return status;
    a.color = want_color(a.color_when);
    if (a.ntraces > 1)   /* one timeline (timeline_diff.c) */
        return mw_timeline_diff(a.traces, (size_t)a.ntraces, a.tag, diff_trace, &a);
    return mw_cli_with_trace(a.ntraces ? a.traces[0] : a.trace, diff_trace, &a);
}

const struct mw_command mw_cmd_diff = {
    .name = "diff", .summary = "show how one watched object changed, byte by byte",
    .usage = diff_usage, .options = diff_options, .getopt_flags = ":", .run = cmd_diff,
};
