/* shadow.c: a page whose neighbours are busy is left open once offered; its neighbours then
 * write without a fault, a write to its watched bytes is found by comparison and
 * attributed to the line given to the check, nothing is reported twice, and a page
 * unmapped while open neither crashes a check nor loses the other pages' changes. */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "watcher.h"

static size_t ps;
static atomic_int offered;

static void on_hot(void)
{
    atomic_fetch_add(&offered, 1);
}

struct seen {
    int n, compared;
    int line;
    size_t offset, length;
    unsigned char first_new;
};

static void on_change(const struct mw_change *c, void *ctx)
{
    struct seen *s = ctx;
    s->n++;
    s->compared = c->compared;
    s->line = c->writer->line;
    s->offset = c->ranges[0].offset;
    s->length = c->ranges[0].length;
    s->first_new = c->ranges[0].new_[0];
}

/* Neighbour writes until the page is offered (the budget is per epoch of ~16 ms). */
static void make_busy(volatile unsigned char *neighbours)
{
    for (int i = 0; i < 10000 && !atomic_load(&offered); i++)
        neighbours[i % 512] = (unsigned char)i;
}

static void test_busy_page_is_compared(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    mw_engine_set_hot_hook(on_hot);
    unsigned char *page = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *watched = page + 2048;
    CHECK_EQ_INT(mw_watcher_watch(w, watched, 64, NULL, NULL), 0);
    make_busy(page);
    CHECK_EQ_INT(atomic_load(&offered), 1);
    CHECK_EQ_INT(mw_engine_check(NULL, NULL), 0);        /* neighbours only: no change */
    CHECK_EQ_INT(mw_engine_shadow_hot(), 1);
    CHECK_EQ_INT(mw_engine_shadowed(), 1);

    struct mw_watcher_stats st0, st1;
    mw_watcher_stats(w, &st0);
    for (int i = 0; i < 1000; i++)
        page[i % 512] = (unsigned char)(i + 1);            /* open: no fault */
    mw_watcher_stats(w, &st1);
    CHECK_EQ_INT(st1.faults, st0.faults);
    CHECK(!mw_engine_shadows_changed());

    watched[5] = 0x77;                                     /* no fault either */
    CHECK(mw_engine_shadows_changed());
    struct mw_writer line = { .tid = 1234, .line = 77 };
    strcpy(line.file, "train.py");
    struct seen s = { 0 };
    CHECK_EQ_INT(mw_engine_check_line(on_change, &s, &line), 1);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.compared, 1);
    CHECK_EQ_INT(s.line, 77);
    CHECK_EQ_INT(s.offset, 5);
    CHECK_EQ_INT(s.length, 1);
    CHECK_EQ_INT(s.first_new, 0x77);
    CHECK(!mw_engine_shadows_changed());                   /* reported once */
    CHECK_EQ_INT(mw_engine_check(NULL, NULL), 0);

    /* The program unmaps the page while it is open: checks go on. */
    munmap(page, 2 * ps);
    CHECK(mw_engine_shadows_changed());
    CHECK_EQ_INT(mw_engine_check(NULL, NULL), 0);
    CHECK_EQ_INT(mw_engine_shadowed(), 0);
    mw_engine_set_hot_hook(NULL);
    mw_watcher_destroy(w);
}

/* Without a hot hook, a busy page is never left open (today's exact single-steps). */
static void test_no_hook_no_shadow(void)
{
    mw_watcher *w;
    CHECK_EQ_INT(mw_watcher_create(NULL, &w), 0);
    unsigned char *page = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ_INT(mw_watcher_watch(w, page + 2048, 64, NULL, NULL), 0);
    atomic_store(&offered, 0);
    for (int i = 0; i < 100; i++)
        page[i] = (unsigned char)i;
    CHECK_EQ_INT(atomic_load(&offered), 0);
    CHECK_EQ_INT(mw_engine_shadow_hot(), 0);
    page[2050] = 9;
    struct seen s = { 0 };
    CHECK_EQ_INT(mw_engine_check(on_change, &s), 1);
    CHECK_EQ_INT(s.compared, 0);
    mw_watcher_destroy(w);
    munmap(page, ps);
}

int main(void)
{
    ps = (size_t)sysconf(_SC_PAGESIZE);
    RUN(test_busy_page_is_compared);
    RUN(test_no_hook_no_shadow);
    return UNIT_DONE();
}
