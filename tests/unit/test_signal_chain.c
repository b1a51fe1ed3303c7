/* signal_chain.c: handlers installed after memwatch's are chained behind it, a raw
 * replacement is undone by ensure_first, and the faulthandler pattern (print, restore the
 * previous handler, raise) still ends in death by SIGSEGV. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "signal_chain.h"
#include "unit.h"

static int claim_nothing(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    return 0;
}

static atomic_int intruder_calls;
static void intruder(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    atomic_fetch_add(&intruder_calls, 1);
}

static int is_ours(int sig)
{
    struct sigaction cur;
    mw_signal_chain_real_sigaction(sig, NULL, &cur);
    return (cur.sa_flags & SA_SIGINFO) && (cur.sa_flags & SA_ONSTACK) &&
           cur.sa_sigaction != intruder;
}

static struct sigaction before_install;

static void test_later_handlers_are_chained(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = intruder;
    sa.sa_flags = SA_SIGINFO;
    CHECK_EQ_INT(mw_signal_chain_sigaction(SIGSEGV, &sa, &old), 1);
    /* What was there before memwatch (SIG_DFL, or a sanitizer's handler). */
    CHECK(old.sa_handler == before_install.sa_handler);
    CHECK(is_ours(SIGSEGV));
    struct sigaction now;
    CHECK_EQ_INT(mw_signal_chain_sigaction(SIGSEGV, NULL, &now), 1);
    CHECK(now.sa_sigaction == intruder);
    raise(SIGSEGV);                              /* not a fault of ours: chained */
    CHECK_EQ_INT(atomic_load(&intruder_calls), 1);
    CHECK_EQ_INT(mw_signal_chain_sigaction(SIGUSR1, &sa, NULL), 0);   /* not ours */
    mw_signal_chain_sigaction(SIGSEGV, &before_install, NULL);
}

static void test_ensure_first_undoes_raw_replacement(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = intruder;
    sa.sa_flags = SA_SIGINFO;
    mw_signal_chain_real_sigaction(SIGBUS, &sa, NULL);   /* behind memwatch's back */
    CHECK(!is_ours(SIGBUS));
    CHECK_EQ_INT(mw_signal_chain_ensure_first(), 1);
    CHECK(is_ours(SIGBUS));
    CHECK_EQ_INT(mw_signal_chain_ensure_first(), 0);
    int before = atomic_load(&intruder_calls);
    raise(SIGBUS);
    CHECK_EQ_INT(atomic_load(&intruder_calls), before + 1);
}

/* faulthandler's fatal path: report, restore the previous handler, raise again. */
static int report_fd;
static struct sigaction fh_previous;
static void fake_faulthandler(int sig, siginfo_t *info, void *uc)
{
    (void)info;
    (void)uc;
    if (write(report_fd, "Fatal Python error\n", 19) < 0)
        _exit(3);
    mw_signal_chain_sigaction(sig, &fh_previous, NULL);   /* what the interposer does */
    raise(sig);
}

static void test_faulthandler_pattern_dies_by_sigsegv(void)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;                 /* as in a plain python3 process */
        mw_signal_chain_sigaction(SIGSEGV, &sa, NULL);
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = fake_faulthandler;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        mw_signal_chain_sigaction(SIGSEGV, &sa, &fh_previous);
        volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;
        _exit(0);
    }
    close(fds[1]);
    char out[64] = { 0 };
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(n == 19 && strcmp(out, "Fatal Python error\n") == 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
}

static void test_resethand(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = intruder;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
        mw_signal_chain_sigaction(SIGSEGV, &sa, NULL);
        raise(SIGSEGV);              /* runs intruder once, then the default applies */
        raise(SIGSEGV);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
}

static void *thread_altstack(void *arg)
{
    (void)arg;
    stack_t ss;
    int ok = mw_signal_altstack_ensure() == 0 && sigaltstack(NULL, &ss) == 0 &&
             !(ss.ss_flags & SS_DISABLE) && ss.ss_size >= 16384;
    return (void *)(intptr_t)ok;
}

static void test_altstack_per_thread(void)
{
    pthread_t t;
    void *ok = NULL;
    pthread_create(&t, NULL, thread_altstack, NULL);
    pthread_join(t, &ok);
    CHECK(ok == (void *)1);
}

int main(void)
{
    mw_signal_chain_resolve();
    mw_signal_chain_real_sigaction(SIGSEGV, NULL, &before_install);
    CHECK_EQ_INT(mw_signal_chain_install(claim_nothing), 0);
    CHECK(mw_signal_chain_installed(SIGSEGV));
    CHECK(mw_signal_chain_installed(SIGBUS));
    RUN(test_later_handlers_are_chained);
    RUN(test_ensure_first_undoes_raw_replacement);
    RUN(test_faulthandler_pattern_dies_by_sigsegv);
    RUN(test_resethand);
    RUN(test_altstack_per_thread);
    return UNIT_DONE();
}
