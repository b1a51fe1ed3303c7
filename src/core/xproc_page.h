/* One writer process at a time on a page of watched shared memory (issue 16).
 *
 * Page protection is per process: two processes that map the same watched page can both
 * have it open at once, and each one's check would then find, and name as its own, bytes
 * the other wrote. So a page of memory shared with other traced processes carries a word
 * in memory they all map (shared_watch.c gives it: struct mw_page.xowner), holding the pid
 * of the one process that has the page open. A process takes it when a write opens the
 * page and gives it back when its check has compared the page and protected it again; a
 * write in another process meanwhile waits in its fault handler (sleeping on the word).
 * The wait is bounded (mw_xproc_set_wait, at most MW_XPROC_WAIT_MS: the owner may be
 * blocked on the line that wrote, perhaps waiting for the waiter, or check only when the
 * script asks): past it the write goes ahead with the page open in both processes. An
 * owner that died is found and replaced at once. README, Processes. */
#ifndef MW_XPROC_PAGE_H
#define MW_XPROC_PAGE_H

#include "region_index.h"

#define MW_XPROC_WAIT_MS 200

/* A page's word, in memory the processes share. Until a second process binds the page
 * (sharers), the one process that watches it goes without: its busy pages may be left
 * open as any other (fault_path.c). */
struct mw_xproc_word {
    _Atomic uint32_t owner;      /* pid with the page open, 0: none (a futex word) */
    _Atomic uint32_t sharers;    /* processes that bound it (at least; never decreases) */
    _Atomic uint32_t last_binder;
    uint32_t unused;
};

/* Async-signal-safe: whether e is a page of memory another traced process maps too. */
int mw_xproc_shared(const struct mw_page *e);

/* How long a write waits for another process's page: about as long as that process takes
 * to check it (line mode: its next line; interval mode: its interval; manual: no wait). */
void mw_xproc_set_wait(unsigned ms);
/* Async-signal-safe. e was just claimed (FAULTING): waits until this process owns its
 * word (or the bound passes). Pages with no word return at once. */
void mw_xproc_acquire(struct mw_page *e);
/* Async-signal-safe: 1 when this process owns e's word now, without waiting (or e has no
 * word), else 0. For pages taken ahead of a sweep. */
int mw_xproc_try(struct mw_page *e);
/* Async-signal-safe: e is protected again and compared (or was never opened): the word is
 * given back, and processes waiting for it are woken. */
void mw_xproc_release(struct mw_page *e);

#endif
