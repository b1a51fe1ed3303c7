/* xproc_page.c: one process at a time owns a shared page's word. A second process's
 * acquire waits until the owner releases it (and not longer), a dead owner is replaced at
 * once, the wait is bounded, and a page no second process bound costs nothing. */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "xproc_page.h"

static struct mw_xproc_word *word;   /* in memory the test's processes share */

static void page_with_word(struct mw_page *e, uint32_t sharers)
{
    memset(e, 0, sizeof *e);
    memset(word, 0, sizeof *word);
    atomic_store(&word->sharers, sharers);
    atomic_store(&e->xowner, word);
}

static void unshared_page_is_never_owned(void)
{
    struct mw_page e;
    page_with_word(&e, 1);
    mw_xproc_acquire(&e);
    CHECK_EQ_INT(atomic_load(&word->owner), 0);
    CHECK(mw_xproc_try(&e));
    CHECK(!mw_xproc_shared(&e));
}

/* A child takes the page and holds it for hold_ms (then releases it, or dies holding it). */
static pid_t child_holds(struct mw_page *e, int hold_ms, int release)
{
    pid_t pid = fork();
    if (pid == 0) {
        mw_xproc_acquire(e);
        usleep((useconds_t)hold_ms * 1000);
        if (release)
            mw_xproc_release(e);
        _exit(0);
    }
    while (atomic_load(&word->owner) != (uint32_t)pid)
        usleep(100);
    return pid;
}

static void second_process_waits_for_the_release(void)
{
    struct mw_page e;
    page_with_word(&e, 2);
    mw_xproc_set_wait(MW_XPROC_WAIT_MS);
    pid_t pid = child_holds(&e, 20, 1);
    CHECK(!mw_xproc_try(&e));
    mw_xproc_acquire(&e);
    /* It has the word: it waited for the release (past the bound it would go ahead
     * without it, and the word would still be the child's or free). */
    CHECK_EQ_INT(atomic_load(&word->owner), (uint32_t)getpid());
    mw_xproc_release(&e);
    CHECK_EQ_INT(atomic_load(&word->owner), 0);
    waitpid(pid, NULL, 0);
}

static void dead_owner_is_replaced(void)
{
    struct mw_page e;
    page_with_word(&e, 2);
    pid_t pid = child_holds(&e, 0, 0);
    waitpid(pid, NULL, 0);   /* died holding it */
    mw_xproc_acquire(&e);
    CHECK_EQ_INT(atomic_load(&word->owner), (uint32_t)getpid());
    mw_xproc_release(&e);
}

static void the_wait_is_bounded(void)
{
    struct mw_page e;
    page_with_word(&e, 2);
    mw_xproc_set_wait(30);
    pid_t pid = child_holds(&e, 2000, 1);
    mw_xproc_acquire(&e);   /* goes ahead without the word, long before the release */
    CHECK_EQ_INT(atomic_load(&word->owner), (uint32_t)pid);
    mw_xproc_release(&e);   /* not ours: the owner keeps it */
    CHECK_EQ_INT(atomic_load(&word->owner), (uint32_t)pid);
    mw_xproc_set_wait(0);
    CHECK(!mw_xproc_try(&e));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    mw_xproc_set_wait(MW_XPROC_WAIT_MS);
}

int main(void)
{
    word = mmap(NULL, sizeof *word, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (word == MAP_FAILED)
        return 1;
    RUN(unshared_page_is_never_owned);
    RUN(second_process_waits_for_the_release);
    RUN(dead_owner_is_replaced);
    RUN(the_wait_is_bounded);
    return UNIT_DONE();
}
