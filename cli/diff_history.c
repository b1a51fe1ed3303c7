/* memwatch diff's history and its replay (see diff_history.h). */
#include "diff_history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_grow.h"
#include "rowcopy.h"

/* Objects whose touched extent is larger than this are shown without context. */
#define MAX_EXTENT ((uint64_t)256 << 20)

void mw_diff_history_free(struct mw_diff_history *h)
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

/* The index of the row's object, added when new; -1 when out of memory. */
static int64_t row_object(struct mw_diff_history *h, const struct mw_trace_row *row)
{
    size_t oi;
    for (oi = 0; oi < h->nobj && h->obj[oi].id != row->object_id; oi++)
        ;
    if (oi < h->nobj)
        return (int64_t)oi;
    if (MW_GROW(h->obj, h->capobj, h->nobj + 1) != 0)
        return -1;
    struct mw_diff_object *o = &h->obj[h->nobj++];
    memset(o, 0, sizeof(*o));
    o->id = row->object_id;
    o->size = row->object_size;
    o->lo = UINT64_MAX;
    return (int64_t)oi;
}

/* A change starts with its first row. */
static int add_change(struct mw_diff_history *h, const struct mw_trace_row *row, size_t oi)
{
    int oom = 0;
    if (MW_GROW(h->ch, h->capch, h->nch + 1) != 0)
        return -1;
    struct mw_diff_change *c = &h->ch[h->nch++];
    memset(c, 0, sizeof(*c));
    c->seq = row->seq;
    c->time_ns = row->time_ns;
    c->obj = oi;
    c->file = mw_cli_copy_str(row->file, &oom);
    c->function = mw_cli_copy_str(row->function, &oom);
    c->thread_name = mw_cli_copy_str(row->thread_name, &oom);
    c->native_symbol = mw_cli_copy_str(row->native_symbol, &oom);
    c->line = row->line;
    c->thread_id = row->thread_id;
    c->pid = row->pid;
    c->kept = row->kept;
    c->first = h->nrg;
    return oom ? -1 : 0;
}

/* The row's range, to the last change and its object's extent. */
static int add_range(struct mw_diff_history *h, const struct mw_trace_row *row, size_t oi)
{
    int oom = 0;
    if (MW_GROW(h->rg, h->caprg, h->nrg + 1) != 0)
        return -1;
    struct mw_diff_range *g = &h->rg[h->nrg++];
    g->offset = row->offset;
    g->length = row->length;
    g->old = mw_cli_copy_bytes(row->old, row->length, &oom);
    g->new_ = mw_cli_copy_bytes(row->new_, row->length, &oom);
    h->ch[h->nch - 1].n++;
    struct mw_diff_object *o = &h->obj[oi];
    if (row->offset < o->lo)
        o->lo = row->offset;
    if (row->offset + row->length > o->hi)
        o->hi = row->offset + row->length;
    /* A hand-made trace may claim bytes past the object's end. */
    if (o->hi > o->size)
        o->size = o->hi;
    return oom ? -1 : 0;
}

int mw_diff_load(mw_trace_reader *r, const char *tag, struct mw_diff_history *h)
{
    struct mw_trace_filter f = {.tag = tag};
    mw_trace_iter *it;
    if (mw_trace_iter_start(r, &f, &it) < 0)
        return -1;
    struct mw_trace_row row;
    int rc, oom = 0;
    while (!oom && (rc = mw_trace_iter_next(it, &row)) == 1) {
        int64_t oi = row_object(h, &row);
        oom = oi < 0 ||
              ((h->nch == 0 || h->ch[h->nch - 1].seq != row.seq) &&
               add_change(h, &row, (size_t)oi) < 0) ||
              add_range(h, &row, (size_t)oi) < 0;
    }
    mw_trace_iter_finish(it);
    if (oom) {
        errno = ENOMEM;
        return -2;
    }
    return rc < 0 ? -1 : 0;
}

int mw_diff_find_layouts(mw_trace_reader *r, struct mw_diff_history *h)
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

/* Room for each object's replay, unless its extent is too large. */
static void replay_alloc(struct mw_diff_history *h)
{
    for (size_t i = 0; i < h->nobj; i++) {
        struct mw_diff_object *o = &h->obj[i];
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
}

void mw_diff_replay_init(struct mw_diff_history *h)
{
    replay_alloc(h);
    for (size_t c = 0; c < h->nch; c++) {
        struct mw_diff_object *o = &h->obj[h->ch[c].obj];
        if (!o->state)
            continue;
        for (size_t k = 0; k < h->ch[c].n; k++) {
            const struct mw_diff_range *g = &h->rg[h->ch[c].first + k];
            for (uint64_t b = 0; b < g->length; b++) {
                size_t at = (size_t)(g->offset + b - o->lo);
                if (o->state[at] != MW_DIFF_UNSEEN)
                    continue;
                if (g->old) {
                    o->val[at] = g->old[b];
                    o->state[at] = MW_DIFF_KNOWN;
                } else {
                    o->state[at] = MW_DIFF_UNKNOWN;
                }
            }
        }
    }
    for (size_t i = 0; i < h->nobj; i++)
        if (h->obj[i].state)
            for (uint64_t b = 0; b < h->obj[i].hi - h->obj[i].lo; b++)
                if (h->obj[i].state[b] == MW_DIFF_UNSEEN)
                    h->obj[i].state[b] = MW_DIFF_UNKNOWN;   /* not touched: never seen */
}

void mw_diff_replay_apply(struct mw_diff_history *h, const struct mw_diff_change *c)
{
    struct mw_diff_object *o = &h->obj[c->obj];
    if (!o->state)
        return;
    for (size_t k = 0; k < c->n; k++) {
        const struct mw_diff_range *g = &h->rg[c->first + k];
        if (g->new_)
            memcpy(o->val + (g->offset - o->lo), g->new_, (size_t)g->length);
        memset(o->state + (g->offset - o->lo), g->new_ ? MW_DIFF_KNOWN : MW_DIFF_UNKNOWN,
               (size_t)g->length);
    }
}

int mw_diff_state_byte(const struct mw_diff_object *o, uint64_t b, unsigned char *v)
{
    if (!o->state || b < o->lo || b >= o->hi || o->state[b - o->lo] != MW_DIFF_KNOWN)
        return 0;
    *v = o->val[b - o->lo];
    return 1;
}
