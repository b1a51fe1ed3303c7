/* The report's first read and plan (see report_plan.h). */
#include "report_plan.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "mw_grow.h"
#include "reader.h"
#include "report_heat.h"

static char *dup_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

/* ---- object geometry ------------------------------------------------------------------ */

/* The objects table's shape or strides text (reader.c reads it): -1 unless every entry is
 * a length or stride this report can lay out, which excludes negative ones. */
static int parse_dims(const char *text, int64_t *v)
{
    int n = mw_trace_reader_parse_dims(text, v, MAX_DIMS);
    for (int i = 0; i < n; i++)
        if (v[i] < 0)
            return -1;
    return n;
}

static void object_geometry(struct object *o, const char *strides_text)
{
    int64_t shape[MAX_DIMS], strides[MAX_DIMS];
    int nd = parse_dims(o->shape_text, shape);
    int ns = parse_dims(strides_text, strides);
    o->ndim = nd > 0 ? nd : 0;
    o->order = 0;
    for (int i = 0; i < o->ndim; i++)
        o->shape[i] = (uint64_t)shape[i];
    if (o->itemsize <= 0 || nd <= 0)
        return;
    uint64_t count = 1;
    for (int i = 0; i < nd; i++)
        count *= o->shape[i];
    o->items = count;
    /* Not laid out without gaps: the trace's offsets count bytes of the view's value in C
     * order (schemas/trace.sql, ELEMENTS), so item k is at k * itemsize all the same. */
    o->order = 'V';
    if (count * (uint64_t)o->itemsize != o->size)
        return;
    if (ns < 0 && strides_text)
        return;
    if (ns != nd) {
        o->order = 'C';   /* no strides recorded: a plain buffer is C-contiguous */
        return;
    }
    char order = mw_elem_contiguous_order(nd, shape, strides, (size_t)o->itemsize);
    o->order = order ? order : 'V';
}

/* NaN/Inf are looked for in objects whose items are one float of 2, 4 or 8 bytes, as
 * elements.c reads their format. */
static void object_float(struct object *o)
{
    if (!o->format || !o->order || o->itemsize <= 0)
        return;
    struct mw_elem_desc d = {.format = o->format, .itemsize = o->itemsize, .ndim = -1,
                             .size = (uint64_t)o->itemsize, .contiguous = 1};
    mw_elem_layout *l;
    if (mw_elem_layout_create(&d, &l) != 0)
        return;
    size_t n;
    const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
    if (n == 1 && s->kind == MW_ELEM_FLOAT && !s->path[0] && s->offset == 0 &&
        (s->size == 2 || s->size == 4 || s->size == 8) && s->size == (uint32_t)o->itemsize) {
        o->fscalar = *s;
        o->fscalar.path = "";   /* the layout's own names go with it */
        o->float_size = (int)s->size;
        /* Stored in this machine's order unless swapped. */
        o->big_endian = (s->swap != 0) != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
    }
    mw_elem_layout_destroy(l);
}

/* Same geometry: the heatmap of one object fits all. */
static int same_geometry(const struct object *a, const struct object *b)
{
    if (a->size != b->size || a->itemsize != b->itemsize || a->order != b->order ||
        a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* ---- objects and tags ----------------------------------------------------------------- */

/* Tags by name while loading: a sorted copy would do too, but objects come in watch order
 * and most runs have few tags, so a small hash keeps this linear either way. */
static uint64_t tag_hash(const void *tags, size_t i)
{
    return mw_report_hash_str(0, ((const struct tag *)tags)[i].name);
}

static int tag_is(const void *tags, size_t i, const void *name)
{
    return strcmp(((const struct tag *)tags)[i].name, name) == 0;
}

static const struct mw_report_index_ops tag_ops = {tag_hash, tag_is};

/* The tag named name, added (first seen with the latest object) when new. */
static int tag_intern(struct report *r, struct mw_report_index *ix, const char *name,
                      size_t *out)
{
    if (mw_report_index_reserve(ix, r->ntags, 64, &tag_ops, r->tags) < 0)
        return -ENOMEM;
    size_t j = mw_report_index_probe(ix, mw_report_hash_str(0, name), &tag_ops, r->tags, name);
    if (!ix->slot[j]) {
        if (MW_GROW(r->tags, r->tags_cap, r->ntags + 1) != 0)
            return -ENOMEM;
        struct tag *t = &r->tags[r->ntags];
        memset(t, 0, sizeof(*t));
        if (!(t->name = strdup(name)))
            return -ENOMEM;
        t->first_object = r->nobjects - 1;
        t->uniform = 1;
        t->float_checked = 1;
        ix->slot[j] = (uint32_t)++r->ntags;
    }
    *out = ix->slot[j] - 1;
    return 0;
}

/* One row of the objects query, appended to r->objects. */
static int add_object(struct report *r, sqlite3_stmt *s)
{
    if (MW_GROW(r->objects, r->objects_cap, r->nobjects + 1) != 0)
        return -ENOMEM;
    struct object *o = &r->objects[r->nobjects];
    memset(o, 0, sizeof(*o));
    o->id = sqlite3_column_int64(s, 0);
    int64_t size = sqlite3_column_int64(s, 3);
    o->size = size > 0 ? (uint64_t)size : 0;
    o->type_name = dup_text(s, 2);
    o->format = dup_text(s, 4);
    o->itemsize = sqlite3_column_type(s, 5) == SQLITE_NULL ? 0 : sqlite3_column_int(s, 5);
    o->shape_text = dup_text(s, 6);
    object_geometry(o, (const char *)sqlite3_column_text(s, 7));
    object_float(o);
    r->nobjects++;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const struct object *)a)->id, y = ((const struct object *)b)->id;
    return x < y ? -1 : x > y;
}

struct object *mw_report_find_object(struct report *r, int64_t id)
{
    struct object key = {.id = id};
    if (!r->nobjects)
        return NULL;
    return bsearch(&key, r->objects, r->nobjects, sizeof(*r->objects), cmp_id);
}

static int load_objects(struct report *r)
{
    sqlite3_stmt *s = mw_report_prepare(r,
                                        "SELECT id, tag, type_name, size, format, itemsize, "
                                        "shape, strides FROM objects ORDER BY id",
                                        "read the objects");
    if (!s)
        return r->status;
    struct mw_report_index ix = {0};
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 1);
        size_t ti;
        if (add_object(r, s) < 0 || tag_intern(r, &ix, name ? name : "", &ti) < 0) {
            free(ix.slot);
            sqlite3_finalize(s);
            return mw_report_nomem(r);
        }
        struct object *o = &r->objects[r->nobjects - 1];
        struct tag *t = &r->tags[ti];
        o->tag = ti;
        t->objects++;
        if (!same_geometry(&r->objects[t->first_object], o))
            t->uniform = 0;
        if (!o->float_size)
            t->float_checked = 0;
    }
    free(ix.slot);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return mw_report_db_fail(r, "read the objects");
    /* Ids come sorted from the query; sorting again costs nothing and makes the lookup's
     * precondition local. */
    if (r->nobjects > 1)   /* objects is NULL in a trace without objects */
        qsort(r->objects, r->nobjects, sizeof(*r->objects), cmp_id);
    /* qsort may have moved objects: first_object indices were taken in id order already,
     * which is the order qsort keeps, so they still hold. */
    return 0;
}

/* Changes per object, per tag and in all: a covering scan of changes_by_object. */
static int count_changes(struct report *r)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT object_id, count(*) FROM %s GROUP BY object_id",
             mw_trace_change_table(r->db));
    sqlite3_stmt *s = mw_report_prepare(r, sql, "count the changes");
    if (!s)
        return r->status;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(s, 1);
        r->total_changes += n;
        struct object *o = mw_report_find_object(r, sqlite3_column_int64(s, 0));
        if (o) {
            o->changes = n;
            r->tags[o->tag].changes += n;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return mw_report_db_fail(r, "count the changes");
    return 0;
}

/* The time axis (the run's end, or the last change when the run never recorded one), and
 * which tables the trace has. */
static int load_counts(struct report *r)
{
    if (count_changes(r) < 0)
        return r->status;
    sqlite3_stmt *s = mw_report_prepare(
        r,
        "SELECT max(coalesce((SELECT duration_ns FROM run WHERE id = 1), 0), "
        "coalesce((SELECT time_ns FROM changes ORDER BY seq DESC LIMIT 1), 0), "
        "coalesce((SELECT max(coalesce(unwatched_ns, watched_ns)) FROM objects), 0))",
        "read the run");
    if (!s)
        return r->status;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 0);
        r->tmax = v > 0 ? (uint64_t)v : 1;
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(r->db,
                           "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'elements'), "
                           "(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'change_stats'), "
                           "(SELECT count(*) FROM pragma_table_info('changes') WHERE name = 'kept')"
                           " + (SELECT count(*) FROM sqlite_master WHERE name = 'chunks'), "
                           "(SELECT count(*) FROM pragma_table_info('changes') WHERE name = 'pid')",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        r->elements_table = sqlite3_column_int(s, 0) > 0;
        r->change_stats = sqlite3_column_int(s, 1) > 0;
        r->values_v2 = sqlite3_column_int(s, 2) == 2;
        r->has_pid = sqlite3_column_int(s, 3) > 0;
    }
    sqlite3_finalize(s);
    return 0;
}

/* ---- the plan ------------------------------------------------------------------------- */

static const struct tag *sort_tags_base;

/* Most changes first; watch order among equals. */
static int cmp_tag_changes_desc(const void *a, const void *b)
{
    return mw_report_rank(sort_tags_base[*(const uint32_t *)a].changes,
                          sort_tags_base[*(const uint32_t *)b].changes, a, b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lanes: the busiest tags (order: tag indices by changes, most first), in watch order. */
static int plan_lanes(struct report *r, const uint32_t *order)
{
    r->nlanes = r->ntags < MW_REPORT_MAX_LANES ? (uint32_t)r->ntags : MW_REPORT_MAX_LANES;
    r->other_lane = r->ntags > r->nlanes;
    r->lane_tags = malloc((r->nlanes ? r->nlanes : 1) * sizeof(*r->lane_tags));
    if (!r->lane_tags)
        return mw_report_nomem(r);
    memcpy(r->lane_tags, order, r->nlanes * sizeof(*order));
    qsort(r->lane_tags, r->nlanes, sizeof(*r->lane_tags), cmp_u32);
    for (size_t i = 0; i < r->ntags; i++)
        r->tags[i].lane = -1;
    for (uint32_t l = 0; l < r->nlanes; l++)
        r->tags[r->lane_tags[l]].lane = (int)l;
    return 0;
}

/* Marks: water-filling from the quietest tag up, so each tag gets all its changes or an
 * equal share of what is left. */
static void plan_quotas(struct report *r, const uint32_t *order)
{
    uint64_t left = r->max_marks;
    for (size_t i = r->ntags; i-- > 0;) {
        struct tag *t = &r->tags[order[i]];
        uint64_t share = left / (i + 1);
        t->quota = t->changes < share ? t->changes : share;
        left -= t->quota;
    }
}

/* Density bins of every lane, and a heatmap for the lanes' tags. */
static int plan_bins(struct report *r)
{
    size_t lanes = r->nlanes + (size_t)r->other_lane;
    r->density = calloc((lanes ? lanes : 1) * TIME_BINS, sizeof(*r->density));
    if (!r->density)
        return mw_report_nomem(r);
    for (uint32_t l = 0; l < r->nlanes; l++) {
        struct tag *t = &r->tags[r->lane_tags[l]];
        uint64_t max_size = 0;
        for (size_t i = 0; i < r->nobjects; i++)
            if (r->objects[i].tag == r->lane_tags[l] && r->objects[i].size > max_size)
                max_size = r->objects[i].size;
        const struct object *o = t->uniform ? &r->objects[t->first_object] : NULL;
        if (mw_report_heat_init(&t->heat, o, max_size) < 0)
            return mw_report_nomem(r);
    }
    return 0;
}

int mw_report_plan(struct report *r)
{
    if (load_objects(r) < 0 || load_counts(r) < 0)
        return r->status;
    uint32_t *order = malloc((r->ntags ? r->ntags : 1) * sizeof(*order));
    if (!order)
        return mw_report_nomem(r);
    for (size_t i = 0; i < r->ntags; i++)
        order[i] = (uint32_t)i;
    sort_tags_base = r->tags;
    qsort(order, r->ntags, sizeof(*order), cmp_tag_changes_desc);
    int rc = plan_lanes(r, order);
    if (rc == 0)
        plan_quotas(r, order);
    free(order);
    return rc < 0 ? rc : plan_bins(r);
}
