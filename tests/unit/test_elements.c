/* src/trace/elements.c: format parsing and layout (numpy, ctypes, array, memoryview
 * formats), item coordinates (C, Fortran, views), value text, element diffs, range
 * alignment and statistics. The formats are the ones Debian's numpy 1.24 and Python 3.11
 * actually report (see the comments). */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elements.h"
#include "mw_error.h"
#include "unit.h"
#include "writer.h"

static mw_elem_layout *make(const char *format, const char *type, int64_t itemsize, int ndim,
                            const int64_t *shape, const int64_t *strides, uint64_t size)
{
    struct mw_elem_desc d = {format, type, itemsize, ndim, shape, strides, size, -1};
    mw_elem_layout *l = NULL;
    int rc = mw_elem_layout_create(&d, &l);
    if (rc)
        fprintf(stderr, "layout of '%s': %d\n", format, rc);
    return l;
}

static const char *path_of(const mw_elem_layout *l, size_t i)
{
    size_t n;
    const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
    return i < n ? s[i].path : "(none)";
}

static uint32_t offset_of(const mw_elem_layout *l, size_t i)
{
    size_t n;
    const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
    return i < n ? s[i].offset : 9999;
}

static size_t nscalars(const mw_elem_layout *l)
{
    size_t n;
    mw_elem_layout_scalars(l, &n);
    return n;
}

static void test_plain_formats(void)
{
    static const struct {
        const char *format;
        int64_t itemsize;
        int kind;
    } cases[] = {
        {"f", 4, MW_ELEM_FLOAT},   {"<f", 4, MW_ELEM_FLOAT},  {">f", 4, MW_ELEM_FLOAT},
        {"d", 8, MW_ELEM_FLOAT},   {"e", 2, MW_ELEM_FLOAT},   {"g", 16, MW_ELEM_FLOAT},
        {"b", 1, MW_ELEM_INT},     {"B", 1, MW_ELEM_UINT},    {"?", 1, MW_ELEM_BOOL},
        {"<?", 1, MW_ELEM_BOOL},   {"l", 8, MW_ELEM_INT},     {"<q", 8, MW_ELEM_INT},
        {"<i", 4, MW_ELEM_INT},    {"Zf", 8, MW_ELEM_COMPLEX}, {"Zd", 16, MW_ELEM_COMPLEX},
        {"4s", 4, MW_ELEM_BYTES},  {"3w", 12, MW_ELEM_TEXT},  {"w", 4, MW_ELEM_TEXT},
        {"<u", 4, MW_ELEM_TEXT},   {"<z", 8, MW_ELEM_POINTER}, {"<c", 1, MW_ELEM_CHAR},
        {"n", 8, MW_ELEM_INT},     {"N", 8, MW_ELEM_UINT},    {"<l", 8, MW_ELEM_INT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t shape[1] = {3};
        mw_elem_layout *l = make(cases[i].format, "numpy.ndarray", cases[i].itemsize, 1, shape,
                                 NULL, (uint64_t)(3 * cases[i].itemsize));
        CHECK(l != NULL);
        if (!l)
            continue;
        size_t n;
        const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_INT(s[0].kind, cases[i].kind);
        CHECK_EQ_INT(s[0].size, cases[i].itemsize);
        CHECK(strcmp(s[0].path, "") == 0);
        mw_elem_layout_destroy(l);
    }
    /* unreadable formats */
    mw_elem_layout *l = NULL;
    struct mw_elem_desc d = {"T{<i:x:", NULL, 4, 0, NULL, NULL, 4, -1};
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), MW_EFORMAT);
    d.format = "k";
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), MW_EFORMAT);
    d.format = "d";   /* 8 bytes cannot be a 4-byte item */
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), MW_EFORMAT);
    d.format = "B";   /* ctypes reports a _pack_'ed Structure as 'B' with its whole size */
    d.itemsize = 5;
    CHECK_EQ_INT(mw_elem_layout_create(&d, &l), MW_EFORMAT);
}

static void test_typed_or_bytes(void)
{
    int64_t shape[1] = {8};
    mw_elem_layout *l = make("B", "bytearray", 1, 1, shape, NULL, 8);
    CHECK(l && !mw_elem_layout_typed(l));
    mw_elem_layout_destroy(l);
    l = make("B", "raw", 1, 1, shape, NULL, 8);
    CHECK(l && !mw_elem_layout_typed(l));
    mw_elem_layout_destroy(l);
    l = make("B", "numpy.ndarray", 1, 1, shape, NULL, 8);
    CHECK(l && mw_elem_layout_typed(l) && !mw_elem_layout_has_float(l));
    mw_elem_layout_destroy(l);
    l = make("f", "memoryview", 4, 1, shape, NULL, 32);
    CHECK(l && mw_elem_layout_typed(l) && mw_elem_layout_has_float(l));
    mw_elem_layout_destroy(l);
}

static void test_structs(void)
{
    /* numpy: np.dtype([('x','<i4'),('y','<f8')]) -> 'T{i:x:=d:y:}', 12 bytes, packed */
    mw_elem_layout *l = make("T{i:x:=d:y:}", "numpy.ndarray", 12, 0, NULL, NULL, 12);
    CHECK(l && nscalars(l) == 2);
    if (l) {
        CHECK(strcmp(path_of(l, 0), "x") == 0 && offset_of(l, 0) == 0);
        CHECK(strcmp(path_of(l, 1), "y") == 0 && offset_of(l, 1) == 4);
    }
    mw_elem_layout_destroy(l);
    /* numpy align=True: explicit padding 'T{i:x:xxxxd:y:}', 16 bytes */
    l = make("T{i:x:xxxxd:y:}", "numpy.ndarray", 16, 0, NULL, NULL, 16);
    CHECK(l && nscalars(l) == 2 && offset_of(l, 1) == 8);
    mw_elem_layout_destroy(l);
    /* ctypes: '<' codes, C alignment without 'x': x@0 y@8 c@16 arr@18.. (24 bytes) */
    l = make("T{<i:x:<d:y:<c:c:(3)<h:arr:}", "S", 24, 0, NULL, NULL, 24);
    CHECK(l && nscalars(l) == 6);
    if (l && nscalars(l) == 6) {
        CHECK(offset_of(l, 1) == 8 && strcmp(path_of(l, 1), "y") == 0);
        CHECK(offset_of(l, 2) == 16 && strcmp(path_of(l, 2), "c") == 0);
        CHECK(offset_of(l, 3) == 18 && strcmp(path_of(l, 3), "arr[0]") == 0);
        CHECK(offset_of(l, 5) == 22 && strcmp(path_of(l, 5), "arr[2]") == 0);
    }
    mw_elem_layout_destroy(l);
    /* numpy nested with a sub-array and a byte order change:
     * [('a','u1'),('pos','<f4',(2,)),('n',[('p','<i2'),('q','>i2')])] */
    l = make("T{B:a:(2)=f:pos:T{h:p:>h:q:}:n:}", "numpy.ndarray", 13, 0, NULL, NULL, 13);
    CHECK(l && nscalars(l) == 5);
    if (l && nscalars(l) == 5) {
        size_t n;
        const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
        CHECK(strcmp(s[1].path, "pos[0]") == 0 && s[1].offset == 1);
        CHECK(strcmp(s[2].path, "pos[1]") == 0 && s[2].offset == 5);
        CHECK(strcmp(s[3].path, "n.p") == 0 && s[3].offset == 9 && !s[3].swap);
        CHECK(strcmp(s[4].path, "n.q") == 0 && s[4].offset == 11 && s[4].swap);
    }
    mw_elem_layout_destroy(l);
    /* sub-array of two dimensions, unnamed fields */
    l = make("T{(2,2)f:m:}", NULL, 16, 0, NULL, NULL, 16);
    CHECK(l && nscalars(l) == 4 && strcmp(path_of(l, 3), "m[1, 1]") == 0);
    mw_elem_layout_destroy(l);
    l = make("ff", NULL, 8, 0, NULL, NULL, 8);
    CHECK(l && nscalars(l) == 2 && strcmp(path_of(l, 1), "f1") == 0);
    mw_elem_layout_destroy(l);
    l = make("3f", NULL, 12, 0, NULL, NULL, 12);
    CHECK(l && nscalars(l) == 3 && strcmp(path_of(l, 2), "[2]") == 0);
    mw_elem_layout_destroy(l);
}

static void test_locate(void)
{
    int64_t idx[3];
    uint64_t item;
    const struct mw_elem_scalar *s;
    /* C order 3x4 doubles */
    int64_t shape[2] = {3, 4}, cstr[2] = {32, 8}, fstr[2] = {8, 24};
    mw_elem_layout *l = make("d", "numpy.ndarray", 8, 2, shape, cstr, 96);
    CHECK(mw_elem_locate(l, 8 * 6 + 3, &item, idx, &s) == 0);
    CHECK(item == 6 && idx[0] == 1 && idx[1] == 2 && s != NULL);
    CHECK_EQ_INT(mw_elem_locate(l, 96, &item, idx, &s), MW_EINVAL);
    mw_elem_layout_destroy(l);
    /* Fortran order: memory item 6 is [0, 2] */
    l = make("d", "numpy.ndarray", 8, 2, shape, fstr, 96);
    CHECK(mw_elem_locate(l, 8 * 6, &item, idx, &s) == 0);
    CHECK(idx[0] == 0 && idx[1] == 2 && item == 2);
    CHECK(mw_elem_locate(l, 8 * 7, &item, idx, &s) == 0);
    CHECK(idx[0] == 1 && idx[1] == 2 && item == 6);
    mw_elem_layout_destroy(l);
    /* a view a[:, ::2] of a 3x4: strides (32, 16), not contiguous: C order of the value */
    int64_t vshape[2] = {3, 2}, vstr[2] = {32, 16};
    l = make("d", "numpy.ndarray", 8, 2, vshape, vstr, 48);
    CHECK(mw_elem_locate(l, 8 * 3, &item, idx, &s) == 0);
    CHECK(idx[0] == 1 && idx[1] == 1 && item == 3);
    mw_elem_layout_destroy(l);
    /* 3-D Fortran order 2x3x4 float32: strides (4, 8, 24) */
    int64_t s3[3] = {2, 3, 4}, f3[3] = {4, 8, 24};
    l = make("f", "numpy.ndarray", 4, 3, s3, f3, 96);
    CHECK(mw_elem_locate(l, 4 * 23, &item, idx, &s) == 0);
    CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 3 && item == 23);
    CHECK(mw_elem_locate(l, 4 * 1, &item, idx, &s) == 0);
    CHECK(idx[0] == 1 && idx[1] == 0 && idx[2] == 0 && item == 12);
    mw_elem_layout_destroy(l);
    /* unknown shape: one dimension over the value */
    l = make("<i", "c_int_Array_10", 4, -1, NULL, NULL, 40);
    CHECK(mw_elem_locate(l, 36, &item, idx, &s) == 0 && idx[0] == 9);
    mw_elem_layout_destroy(l);
}

static const char *text(const char *format, int64_t itemsize, const void *bytes)
{
    static char buf[256];
    mw_elem_layout *l = make(format, "numpy.ndarray", itemsize, 0, NULL, NULL, (uint64_t)itemsize);
    size_t n;
    const struct mw_elem_scalar *s = mw_elem_layout_scalars(l, &n);
    mw_elem_format_value(&s[0], bytes, buf, sizeof buf);
    mw_elem_layout_destroy(l);
    return buf;
}

#define CHECK_TEXT(fmt, size, val, want) do { __typeof__(val) v_ = (val); \
    CHECK_TEXTP(fmt, size, &v_, want); } while (0)
#define CHECK_TEXTP(fmt, size, ptr, want) do { const void *p_ = (ptr); \
    const char *t_ = text(fmt, size, p_); unit_checks++; if (strcmp(t_, want) != 0) { \
    unit_failures++; fprintf(stderr, "%s:%d: %s as '%s' is '%s', expected '%s'\n", __FILE__, \
    __LINE__, #ptr, fmt, t_, want); } } while (0)

static void test_values(void)
{
    CHECK_TEXT("f", 4, 0.1334f, "0.1334");
    CHECK_TEXT("f", 4, 1.0f, "1.0");
    CHECK_TEXT("f", 4, 100.0f, "100.0");
    CHECK_TEXT("f", 4, -2.5f, "-2.5");
    CHECK_TEXT("f", 4, 1e-5f, "1e-05");
    CHECK_TEXT("f", 4, 3e20f, "3e+20");
    CHECK_TEXT("f", 4, NAN, "nan");
    CHECK_TEXT("f", 4, -INFINITY, "-inf");
    CHECK_TEXT("d", 8, 0.1, "0.1");
    CHECK_TEXT("d", 8, 1.0 / 3, "0.3333333333333333");
    CHECK_TEXT("d", 8, 1e16, "1e+16");
    CHECK_TEXT("d", 8, 123456789012345.0, "123456789012345.0");
    CHECK_TEXT("d", 8, 0.0001, "0.0001");
    uint16_t half = 0x3555;   /* 0.33325 */
    CHECK_TEXT("e", 2, half, "0.3333");
    half = 0x3c00;
    CHECK_TEXT("e", 2, half, "1.0");
    CHECK_TEXT("b", 1, (int8_t)-7, "-7");
    CHECK_TEXT("B", 1, (uint8_t)250, "250");
    CHECK_TEXT("<q", 8, (int64_t)-9007199254740993LL, "-9007199254740993");
    CHECK_TEXT("Q", 8, (uint64_t)18446744073709551615ULL, "18446744073709551615");
    CHECK_TEXT("?", 1, (uint8_t)1, "True");
    CHECK_TEXT("?", 1, (uint8_t)0, "False");
    float cx[2] = {1.5f, -2.0f};
    CHECK_TEXTP("Zf", 8, cx, "(1.5-2j)");
    double cd[2] = {0.0, 0.25};
    CHECK_TEXTP("Zd", 16, cd, "(0+0.25j)");
    uint32_t be = 0x0000803f;   /* 1.0f in big-endian byte order on a little-endian host */
    CHECK_TEXT(">f", 4, be, "1.0");
    CHECK_TEXTP("4s", 4, "ab\0", "b'ab'");
    CHECK_TEXTP("<c", 1, "\n", "b'\\n'");
    uint32_t u[3] = {'h', 0xe9, 0};
    CHECK_TEXTP("3w", 12, u, "'h\xc3\xa9'");
    long double ld = 0.1L;
    CHECK_TEXT("g", 16, ld, "0.1");
    char small[4];
    CHECK_EQ_INT(mw_elem_format_value(&(struct mw_elem_scalar){.size = 4, .kind = MW_ELEM_FLOAT},
                                      (const unsigned char *)&(float){0.1334f}, small,
                                      sizeof small), 6);
    CHECK(strcmp(small, "0.1") == 0);
}

struct seen {
    char lines[32][256];
    int n;
    struct mw_elem_stats st;
    const char *tag;
};

static int collect(const struct mw_elem_change *c, void *ctx)
{
    struct seen *s = ctx;
    mw_elem_stats_add(&s->st, c);
    if (s->n == 32)
        return 0;
    char name[64], o[48], w[48];
    mw_elem_format_name(s->tag, c->ndim, c->index, c->scalar, name, sizeof name);
    mw_elem_format_value(c->scalar, c->old, o, sizeof o);
    mw_elem_format_value(c->scalar, c->new_, w, sizeof w);
    snprintf(s->lines[s->n++], 256, "%s: %s -> %s%s", name, o, w,
             c->flags & MW_ELEM_F_NAN_APPEARED ? " NaN" : c->flags & MW_ELEM_F_INF_APPEARED ? " Inf" : "");
    return 0;
}

static void test_diff(void)
{
    /* 2x3 float32, C order; [0, 1] 1.0 -> 2.0 changes only its top two bytes, [1, 2]
     * 0.5 -> nan */
    float oldv[6] = {0, 1.0f, 0, 0, 0, 0.5f}, newv[6] = {0, 2.0f, 0, 0, 0, NAN};
    int64_t shape[2] = {2, 3}, str[2] = {12, 4};
    mw_elem_layout *l = make("f", "numpy.ndarray", 4, 2, shape, str, 24);
    const unsigned char *ob = (const unsigned char *)oldv, *nb = (const unsigned char *)newv;
    struct mw_rec_range exact[2] = {{6, 2, ob + 6, nb + 6}, {20, 4, ob + 20, nb + 20}};
    struct seen s = {.tag = "w"};
    mw_elem_stats_init(&s.st);
    /* without whole values, the partly covered element is unknown */
    CHECK(mw_elem_diff(l, exact, 2, NULL, NULL, 0, collect, &s) == 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(strcmp(s.lines[0], "w[0, 1]: ? -> ?") == 0);
    CHECK(strcmp(s.lines[1], "w[1, 2]: 0.5 -> nan NaN") == 0);
    /* with them, it is exact */
    s.n = 0;
    mw_elem_stats_init(&s.st);
    CHECK(mw_elem_diff(l, exact, 2, ob, nb, 24, collect, &s) == 0);
    CHECK(s.n == 2 && strcmp(s.lines[0], "w[0, 1]: 1.0 -> 2.0") == 0);
    CHECK(s.st.elements == 2 && s.st.deltas == 1 && s.st.delta_sum == 1.0 &&
          s.st.nan_appeared == 1 && s.st.inf_appeared == 0);
    /* aligned ranges carry whole elements, so the reader needs nothing else */
    struct mw_rec_range al[2];
    size_t nal;
    CHECK(mw_elem_align_ranges(4, exact, 2, ob, nb, 24, al, &nal) == 0);
    CHECK(nal == 2 && al[0].offset == 4 && al[0].length == 4 && al[1].offset == 20);
    s.n = 0;
    CHECK(mw_elem_diff(l, al, nal, NULL, NULL, 0, collect, &s) == 0);
    CHECK(s.n == 2 && strcmp(s.lines[0], "w[0, 1]: 1.0 -> 2.0") == 0);
    /* neighbouring ranges merge when widened; unknown old stays unknown */
    struct mw_rec_range two[2] = {{1, 1, ob + 1, nb + 1}, {6, 1, NULL, nb + 6}};
    CHECK(mw_elem_align_ranges(4, two, 2, ob, nb, 24, al, &nal) == 0);
    CHECK(nal == 1 && al[0].offset == 0 && al[0].length == 8 && al[0].old == NULL);
    /* a range past the object */
    struct mw_rec_range bad = {20, 8, ob, nb};
    CHECK_EQ_INT(mw_elem_diff(l, &bad, 1, NULL, NULL, 0, collect, &s), MW_EINVAL);
    mw_elem_layout_destroy(l);

    /* a structured item: only the field that differs is reported */
    struct {
        int32_t x;
        int32_t pad;
        double y;
    } a = {1, 0, 1.5}, b = {1, 0, INFINITY};
    l = make("T{<i:x:<d:y:}", "S_Array_2", 16, 0, NULL, NULL, 16);
    struct mw_rec_range whole = {0, 16, (unsigned char *)&a, (unsigned char *)&b};
    s.n = 0;
    mw_elem_stats_init(&s.st);
    CHECK(mw_elem_diff(l, &whole, 1, NULL, NULL, 0, collect, &s) == 0);
    CHECK(s.n == 1 && strcmp(s.lines[0], "w.y: 1.5 -> inf Inf") == 0);
    CHECK(s.st.inf_appeared == 1 && s.st.deltas == 0);
    mw_elem_layout_destroy(l);
}

/* The writer summarises typed changes (change_stats) and remembers where NaN/Inf first
 * appeared, for the end-of-run line; bytes get no summary. */
static void test_writer_numbers(void)
{
    char path[] = "/tmp/mw-test-elements-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    mw_trace_writer *w;
    CHECK(mw_trace_writer_create(path, 1, &w) == 0);
    int64_t shape[1] = {4}, strides[1] = {4}, bshape[1] = {8}, bstrides[1] = {1};
    struct mw_rec_decoded rec = {.type = MW_REC_OBJECT};
    rec.u.object = (struct mw_rec_object){.id = 1, .tag = "weights", .type_name = "numpy.ndarray",
                                          .size = 16, .format = "<f", .itemsize = 4, .ndim = 1,
                                          .shape = shape, .strides = strides};
    CHECK(mw_trace_writer_apply(w, &rec) == 0);
    rec.u.object = (struct mw_rec_object){.id = 2, .tag = "buf", .type_name = "bytearray",
                                          .size = 8, .format = "B", .itemsize = 1, .ndim = 1,
                                          .shape = bshape, .strides = bstrides};
    CHECK(mw_trace_writer_apply(w, &rec) == 0);
    float o[2] = {1.0f, 0.5f}, n[2] = {1.5f, NAN};
    struct mw_rec_range r = {4, 8, (unsigned char *)o, (unsigned char *)n};
    rec = (struct mw_rec_decoded){.type = MW_REC_CHANGE};
    rec.u.change = (struct mw_rec_change){.seq = 812, .object_id = 1, .file = "train.py",
                                          .line = 57, .nranges = 1, .ranges = &r};
    CHECK(mw_trace_writer_apply(w, &rec) == 0);
    unsigned char bo = 0, bn = 1;
    struct mw_rec_range br = {3, 1, &bo, &bn};
    rec.u.change = (struct mw_rec_change){.seq = 813, .object_id = 2, .nranges = 1, .ranges = &br};
    CHECK(mw_trace_writer_apply(w, &rec) == 0);
    CHECK(mw_trace_writer_commit(w) == 0);
    struct mw_trace_nonfinite nf;
    CHECK(mw_trace_writer_nonfinite(w, 0, &nf) == 1);
    CHECK(strcmp(nf.tag, "weights") == 0 && nf.first_seq == 812 && nf.first_nan == 1 &&
          nf.nan_appeared == 1 && nf.inf_appeared == 0 && nf.first_line == 57 &&
          strcmp(nf.first_file, "train.py") == 0);
    CHECK(mw_trace_writer_nonfinite(w, 1, &nf) == 0);
    CHECK(mw_trace_writer_close(w) == 0);
    sqlite3 *db;
    sqlite3_stmt *st;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "SELECT seq, elements, deltas, delta_min, nan_appeared FROM"
                                 " change_stats", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 812);
    CHECK_EQ_INT(sqlite3_column_int(st, 1), 2);
    CHECK_EQ_INT(sqlite3_column_int(st, 2), 1);
    CHECK(sqlite3_column_double(st, 3) == 0.5);
    CHECK_EQ_INT(sqlite3_column_int(st, 4), 1);
    CHECK(sqlite3_step(st) == SQLITE_DONE);   /* none for the bytearray */
    sqlite3_finalize(st);
    sqlite3_close(db);
    unlink(path);
}

int main(void)
{
    RUN(test_plain_formats);
    RUN(test_typed_or_bytes);
    RUN(test_structs);
    RUN(test_locate);
    RUN(test_values);
    RUN(test_diff);
    RUN(test_writer_numbers);
    return UNIT_DONE();
}
