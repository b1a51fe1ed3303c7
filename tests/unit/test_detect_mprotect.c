/* detect_mprotect.c with real faults: a write to a protected page is caught once, its old
 * contents kept, the writer noted, the page put on the dirty list; a fault on a page the
 * detector does not own goes to the previously installed handler, or kills the process
 * by SIGSEGV when that was SIG_DFL. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "detector_fixture.h"
#include "signal_chain.h"
#include "unit.h"

static const struct mw_detector_ops *det = &mw_detect_mprotect;

/* The handler installed before the engine: it fixes faults on "foreign" pages. */
static unsigned char *foreign;
static atomic_int prev_calls;
static void prev_handler(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    atomic_fetch_add(&prev_calls, 1);
    uintptr_t page = (uintptr_t)info->si_addr & ~(uintptr_t)(ps - 1);
    mprotect((void *)page, ps, PROT_READ | PROT_WRITE);
}

static void hook(struct mw_writer *w, void *ctx)
{
    strcpy(w->file, (const char *)ctx);
    w->line = 42;
}

static unsigned char *buf;
static struct mw_page *pages[4];

static void test_first_write_is_caught(void)
{
    buf = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < 4 * ps; i++)
        buf[i] = (unsigned char)(i * 7);
    for (int i = 0; i < 4; i++)
        pages[i] = watch_page((uintptr_t)buf + i * ps, 0);
    CHECK_EQ_INT(det->protect((uintptr_t)buf, 4 * ps, PROT_READ | PROT_WRITE), 0);
    mw_fault_path_set_writer_hook(hook, "script.py");
    CHECK(!mw_fault_path_has_dirty());

    buf[ps + 10] = 0xAB;                  /* faults once */
    buf[ps + 11] = 0xCD;                  /* page writable now: no fault */
    CHECK_EQ_INT(buf[ps + 10], 0xAB);
    CHECK_EQ_INT(atomic_load(&accts[0].faults), 1);
    CHECK(mw_fault_path_has_dirty());
    struct mw_page *l = mw_fault_path_collect();
    CHECK(l == pages[1]);
    CHECK_EQ_INT(list_len(l), 1);
    CHECK_EQ_INT(atomic_load(&pages[1]->state), MW_PAGE_DIRTY);
    uint32_t slot = atomic_load(&pages[1]->slot);
    CHECK(slot != MW_SLOT_NONE);
    if (slot != MW_SLOT_NONE) {
        const unsigned char *old = mw_page_pool_data(pool, slot);
        CHECK_EQ_INT(old[10], (unsigned char)((ps + 10) * 7));   /* the old byte */
        CHECK_EQ_INT(old[11], (unsigned char)((ps + 11) * 7));
        const struct mw_slot_meta *m = mw_page_pool_meta(pool, slot);
        CHECK_EQ_INT(m->writer.tid, syscall(SYS_gettid));
        CHECK(m->writer.fault_ip != 0);
        CHECK(strcmp(m->writer.file, "script.py") == 0);
        CHECK_EQ_INT(m->writer.line, 42);
        CHECK(m->fault_ns > 0);
    }
    CHECK_EQ_INT(atomic_load(&accts[0].used), ps + sizeof(struct mw_slot_meta));
    CHECK_EQ_INT(atomic_load(&pages[0]->state), MW_PAGE_CLEAN);

    /* After a check re-arms the page, the next write faults again. */
    settle(det, pages[1]);
    CHECK_EQ_INT(atomic_load(&accts[0].used), 0);
    buf[ps + 12] = 1;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), 2);
    buf[3 * ps] = 1;
    CHECK_EQ_INT(atomic_load(&accts[0].faults), 3);
    l = mw_fault_path_collect();
    CHECK_EQ_INT(list_len(l), 2);
    settle(det, pages[1]);
    settle(det, pages[3]);
}

static void test_no_copy_at_limit(void)
{
    atomic_store(&accts[1].limit, 100);       /* less than one copy */
    struct mw_page *e = pages[2];
    atomic_store(&e->acct_prot, MW_ACCT_PROT(1, PROT_READ | PROT_WRITE));
    buf[2 * ps + 5] = 9;                      /* not blocked, not crashed */
    CHECK_EQ_INT(buf[2 * ps + 5], 9);
    CHECK_EQ_INT(atomic_load(&e->state), MW_PAGE_DIRTY);
    CHECK_EQ_INT(atomic_load(&e->slot), MW_SLOT_NONE);
    CHECK_EQ_INT(atomic_load(&accts[1].faults), 1);
    CHECK_EQ_INT(atomic_load(&accts[1].used), 0);
    CHECK(mw_fault_path_collect() == e);
    settle(det, e);
}

static void *late_writer(void *arg)
{
    (void)arg;
    buf[5] = 0x77;
    return NULL;
}

static void test_fault_waits_while_checking(void)
{
    struct mw_page *e = pages[0];
    atomic_store(&e->state, MW_PAGE_CHECKING);     /* protected, being compared */
    pthread_t t;
    pthread_create(&t, NULL, late_writer, NULL);
    struct timespec d = { 0, 50 * 1000 * 1000 };
    nanosleep(&d, NULL);
    CHECK(buf[5] != 0x77);                          /* still waiting */
    atomic_store(&e->state, MW_PAGE_CLEAN);
    pthread_join(t, NULL);
    CHECK_EQ_INT(buf[5], 0x77);
    CHECK_EQ_INT(atomic_load(&e->state), MW_PAGE_DIRTY);
    CHECK(mw_fault_path_collect() == e);
    settle(det, e);
}

static void test_foreign_fault_is_chained(void)
{
    foreign = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    foreign[1] = 5;                        /* not ours: the previous handler fixes it */
    CHECK_EQ_INT(foreign[1], 5);
    CHECK_EQ_INT(atomic_load(&prev_calls), 1);
    CHECK(!mw_fault_path_has_dirty());
}

static int died_by_sigsegv(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

static void test_default_action_kills(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        mw_signal_chain_sigaction(SIGSEGV, &dfl, NULL);   /* as if installed later */
        unsigned char *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;                                           /* a genuine crash */
        _exit(0);
    }
    CHECK(died_by_sigsegv(pid));

    /* A watched write still works in a child whose next handler is SIG_DFL. */
    pid = fork();
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        mw_signal_chain_sigaction(SIGSEGV, &dfl, NULL);
        buf[2 * ps + 100] = 3;
        _exit(buf[2 * ps + 100] == 3 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static volatile sig_atomic_t plain_called;
static void plain_handler(int sig)
{
    (void)sig;
    plain_called = 1;
    mprotect(foreign, ps, PROT_READ | PROT_WRITE);
}

static void test_plain_handler_convention(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = plain_handler;
        mw_signal_chain_sigaction(SIGSEGV, &sa, NULL);
        mprotect(foreign, ps, PROT_READ);
        *(volatile unsigned char *)&foreign[2] = 8;   /* ordered before the flag read */
        _exit(plain_called && foreign[2] == 8 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fprintf(stderr, "status %#x\n", st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static uint32_t this_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return (uint32_t)(ns >> MW_TRAPS_EPOCH_SHIFT) & 0xffffu;
}

static atomic_int offered;
static void on_hot(void)
{
    atomic_fetch_add(&offered, 1);
}

/* A page whose neighbours reach the budget in one epoch is offered once to the hot hook,
 * and still single-stepped meanwhile: no change, no writer lost. */
static void test_busy_page_is_offered(void)
{
    unsigned char *b = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct mw_page *e = watch_page((uintptr_t)b, 0);
    atomic_store(&e->watched, MW_WATCHED_ONE(MW_SPAN(0, 64)));
    CHECK_EQ_INT(det->protect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    mw_fault_path_set_hot_hook(on_hot);
    /* The budget is per epoch of ~16 ms: a run that a loaded machine stretches across an
     * epoch's end starts counting again, so it is tried again (a few times at most). */
    int before = 0, after = 0;
    for (int tries = 0; tries < 20; tries++) {
        atomic_store(&offered, 0);
        uint32_t epoch = this_epoch();
        atomic_store(&e->traps, epoch << 16 | (MW_BUSY_TRAPS - 2));
        b[1000] = 1;
        before = atomic_load(&offered);
        b[1001] = 1;                                    /* the budget: offered */
        b[1002] = 1;
        after = atomic_load(&offered);
        if (this_epoch() == epoch)
            break;
        struct mw_page *stale[4];
        mw_fault_path_take_hot(stale, 4);
    }
    CHECK_EQ_INT(before, 0);
    CHECK_EQ_INT(after, 1);
    CHECK(!mw_fault_path_has_dirty());
    CHECK_EQ_INT(atomic_load(&e->state), MW_PAGE_CLEAN);
    struct mw_page *hot[4];
    CHECK_EQ_INT(mw_fault_path_take_hot(hot, 4), 1);
    CHECK(hot[0] == e);
    CHECK_EQ_INT(mw_fault_path_take_hot(hot, 4), 0);
    mw_fault_path_set_hot_hook(NULL);
    det->unprotect((uintptr_t)b, ps, PROT_READ | PROT_WRITE);
    mw_region_index_remove(idx, e);
    munmap(b, ps);
}

/* A write outside the page's watched bytes runs single-stepped and leaves the page CLEAN
 * and protected; the next write to the watched bytes faults with its own writer. */
static void test_neighbour_write_is_not_a_change(void)
{
    unsigned char *b = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct mw_page *e = watch_page((uintptr_t)b, 0);
    atomic_store(&e->watched, MW_WATCHED_ONE(MW_SPAN(0, 64)));            /* only the first 64 bytes */
    CHECK_EQ_INT(det->protect((uintptr_t)b, ps, PROT_READ | PROT_WRITE), 0);
    uint64_t faults = atomic_load(&accts[0].faults);

    b[1000] = 1;                                        /* a neighbour */
    CHECK_EQ_INT(b[1000], 1);
    CHECK(!mw_fault_path_has_dirty());
    CHECK_EQ_INT(atomic_load(&e->state), MW_PAGE_CLEAN);
    CHECK_EQ_INT(atomic_load(&e->traps) & 0xffff, 1);
    CHECK_EQ_INT(atomic_load(&e->slot), MW_SLOT_NONE);
    uint32_t first_epoch = atomic_load(&e->traps) >> 16;
    b[2000] = 2;                                        /* protected again: traps again */
    if (atomic_load(&e->traps) >> 16 == first_epoch)
        CHECK_EQ_INT(atomic_load(&e->traps) & 0xffff, 2);
    else                                                /* a new epoch began: counted afresh */
        CHECK_EQ_INT(atomic_load(&e->traps) & 0xffff, 1);
    CHECK(!mw_fault_path_has_dirty());

    b[10] = 3;                                          /* the watched bytes */
    CHECK(mw_fault_path_has_dirty());
    struct mw_page *l = mw_fault_path_collect();
    CHECK(l == e);
    CHECK_EQ_INT(atomic_load(&e->state), MW_PAGE_DIRTY);
    uint32_t slot = atomic_load(&e->slot);
    CHECK(slot != MW_SLOT_NONE);
    if (slot != MW_SLOT_NONE) {
        const struct mw_slot_meta *m = mw_page_pool_meta(pool, slot);
        CHECK_EQ_INT(m->writer.line, 42);                /* the hook ran: writer known */
        CHECK_EQ_INT(((const unsigned char *)mw_page_pool_data(pool, slot))[10], 0);
    }
    CHECK(atomic_load(&accts[0].faults) > faults);
    settle(det, e);

    /* Past the limit in this epoch (nobody took the busy page), a neighbour leaves the page
     * DIRTY, writer unknown. */
    atomic_store(&e->traps, this_epoch() << 16 | MW_NEIGHBOUR_LIMIT);
    b[3000] = 4;
    CHECK(mw_fault_path_has_dirty());
    l = mw_fault_path_collect();
    CHECK(l == e);
    slot = atomic_load(&e->slot);
    if (slot != MW_SLOT_NONE)
        CHECK_EQ_INT(mw_page_pool_meta(pool, slot)->writer.tid, 0);
    settle(det, e);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = prev_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);

    CHECK_EQ_INT(fixture_start(det), 0);
    CHECK(mw_signal_chain_installed(SIGSEGV));

    RUN(test_first_write_is_caught);
    RUN(test_neighbour_write_is_not_a_change);
    RUN(test_busy_page_is_offered);
    RUN(test_no_copy_at_limit);
    RUN(test_fault_waits_while_checking);
    RUN(test_foreign_fault_is_chained);
    RUN(test_default_action_kills);
    RUN(test_plain_handler_convention);
    return UNIT_DONE();
}
