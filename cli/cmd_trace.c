/* memwatch trace: run a Python script under watch and record every change into a trace.
 *
 * DESIGN: this process is the launcher and the trace writer; the script runs in a child.
 * The child is Debian's own python3 executable (the interpreter users compare against, with
 * its PGO+LTO build: unwatched code runs at exactly python3's speed), into which
 * libmemwatch-inject.so is preloaded: it registers the built-in `memwatch` module before
 * the interpreter starts and sends what it finds through a pipe (src/trace/record.h). This
 * process turns the records into SQLite rows as they arrive. So:
 *   - an unwritable output path fails before the script starts;
 *   - however the child ends (exit, exception, signal, os._exit, SIGKILL), every record it
 *     sent is kept, and the run's end (exit status or signal) is known for certain;
 *   - this process then ends the way the child did (same status, or the same signal).
 * While the child runs, SIGINT and SIGQUIT are ignored here (the terminal delivers them to
 * the child as well, as with system(3)); SIGTERM and SIGHUP are forwarded to the child. If
 * this process is killed, the child is killed too (PR_SET_PDEATHSIG). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "launch.h"
#include "mw_error.h"
#include "writer.h"

const char *const trace_usage[] = {
    "usage: memwatch trace [-fhqu] [-o file] [--check mode] [--backend name] [--on-nan action] [-X opt] [-W arg] script.py [args ...]",
    "       memwatch trace [options] -m module [args ...]",
    "       memwatch trace [options] -c code [args ...]",
    "",
    "    -o, --output FILE      write the trace to FILE (default: memwatch-<script>.<pid>.db)",
    "    -f, --force            overwrite an existing trace file",
    "    -q, --quiet            do not print the end-of-run summary line",
    "    -m MODULE              run a library module as a script, like python3 -m",
    "    -c CODE                run CODE, like python3 -c",
    "        --check MODE       when to look for changes: line (default), interval:MS, manual",
    "        --backend NAME     detection mechanism: auto (default), uffd, mprotect",
    "        --on-nan ACTION    when NaN or Inf appears in a watched float array: off (default), warn, raise",
    "    -X OPT, -W ARG, -u     passed to python3 unchanged",
    "    -h, --help             show this help",
    NULL,
};

enum { OPT_CHECK = 256, OPT_BACKEND, OPT_ON_NAN };

static const struct option trace_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, 'f'},
    {"quiet", no_argument, NULL, 'q'},
    {"check", required_argument, NULL, OPT_CHECK},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"on-nan", required_argument, NULL, OPT_ON_NAN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
}

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The default trace name: memwatch-<stem>.<pid>.db in the current directory. */
static void default_output(char *out, size_t size, const struct mw_launch *l)
{
    const char *stem = "command";
    char buf[NAME_MAX];
    if (l->mode == MW_LAUNCH_SCRIPT) {
        const char *slash = strrchr(l->target, '/');
        snprintf(buf, sizeof buf, "%s", slash ? slash + 1 : l->target);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf)
            *dot = '\0';
        stem = buf;
    } else if (l->mode == MW_LAUNCH_MODULE) {
        snprintf(buf, sizeof buf, "%s", l->target);
        stem = buf;
    }
    snprintf(out, size, "memwatch-%s.%ld.db", stem, (long)getpid());
}

/* Ends this process the way the child ended: same exit status, or the same signal. */
static int die_like(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* The child already dumped core if it was going to; do not dump a second one. */
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;
    }
    return MW_EXIT_FAILURE;
}

static void print_summary(const char *path, const mw_trace_writer *w)
{
    struct mw_trace_totals t;
    mw_trace_writer_totals(w, &t);
    fprintf(stderr, "memwatch: %llu object%s watched, %llu change%s recorded in '%s'; see: memwatch query %s\n",
            (unsigned long long)t.objects, t.objects == 1 ? "" : "s",
            (unsigned long long)t.changes, t.changes == 1 ? "" : "s", path, path);
    /* NaN/Inf that appeared in watched float arrays (the writer decoded every change). */
    struct mw_trace_nonfinite nf;
    for (size_t i = 0; mw_trace_writer_nonfinite(w, i, &nf) == 1; i++) {
        char first[64], all[96] = "", at[1024] = "";
        if (nf.first_nan && nf.first_inf)
            snprintf(first, sizeof first, "%llu NaN and %llu Inf", (unsigned long long)nf.first_nan,
                     (unsigned long long)nf.first_inf);
        else
            snprintf(first, sizeof first, "%llu %s", (unsigned long long)(nf.first_nan ? nf.first_nan : nf.first_inf),
                     nf.first_nan ? "NaN" : "Inf");
        if (nf.nan_appeared + nf.inf_appeared > nf.first_nan + nf.first_inf)
            snprintf(all, sizeof all, " (%llu NaN, %llu Inf in all)", (unsigned long long)nf.nan_appeared,
                     (unsigned long long)nf.inf_appeared);
        if (nf.first_file)
            snprintf(at, sizeof at, ", %s:%d", nf.first_file, nf.first_line);
        fprintf(stderr, "memwatch: %s: %s appeared at seq %llu%s%s\n", nf.tag, first,
                (unsigned long long)nf.first_seq, at, all);
    }
}

int cmd_trace(int argc, char **argv)
{
    struct mw_launch launch;
    mw_launch_init(&launch);
    const char *output = NULL;
    int force = 0, quiet = 0, opt;

    opterr = 0;
    /* "+": options end at the script (or --); what follows belongs to the script. -m and
     * -c end them too: their value is the target and the rest is the script's argv. */
    while (launch.mode == MW_LAUNCH_NONE &&
           (opt = getopt_long(argc, argv, "+:o:fqm:c:X:W:uh", trace_options, NULL)) != -1) {
        switch (opt) {
        case 'o':
            output = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'm':
            launch.mode = MW_LAUNCH_MODULE;
            launch.target = optarg;
            break;
        case 'c':
            launch.mode = MW_LAUNCH_COMMAND;
            launch.target = optarg;
            break;
        case 'X':
        case 'W':
            if (mw_launch_add_python_option(&launch, opt, optarg) < 0)
                return mw_cli_usage_error(trace_usage, "too many python options");
            break;
        case 'u':
            if (mw_launch_add_python_option(&launch, opt, NULL) < 0)
                return mw_cli_usage_error(trace_usage, "too many python options");
            break;
        case OPT_CHECK:
            if (mw_parse_check_mode(optarg, &launch.settings) != 0)
                return mw_cli_usage_error(trace_usage,
                    "invalid --check '%s': use line, interval:MS (1 to 3600000) or manual", optarg);
            break;
        case OPT_BACKEND:
            if (mw_parse_backend(optarg, &launch.settings.backend) != 0)
                return mw_cli_usage_error(trace_usage,
                    "invalid --backend '%s': use auto, uffd or mprotect", optarg);
            break;
        case OPT_ON_NAN:
            if (mw_parse_on_nan(optarg, &launch.settings.on_nan) != 0)
                return mw_cli_usage_error(trace_usage,
                    "invalid --on-nan '%s': use off, warn or raise", optarg);
            break;
        case 'h':
            mw_cli_print_usage(stdout, trace_usage);
            return MW_EXIT_OK;
        default:
            return mw_cli_bad_option(trace_usage, opt, argv);
        }
    }
    if (launch.mode == MW_LAUNCH_NONE) {
        if (optind >= argc)
            return mw_cli_usage_error(trace_usage, "no script given");
        launch.mode = MW_LAUNCH_SCRIPT;
        launch.target = argv[optind++];
    }
    launch.script_argc = argc - optind;
    launch.script_argv = argv + optind;

    int status = mw_launch_check_backend(&launch);
    if (status < 0) {
        mw_cli_error("backend '%s' is not available on this system: %s",
                     mw_backend_name(launch.settings.backend),
                     "this kernel lacks userfaultfd write-protection (use --backend mprotect)");
        return MW_EXIT_USAGE;
    }
    if (launch.mode == MW_LAUNCH_SCRIPT) {
        int fd = open(launch.target, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0) {
            mw_cli_error("cannot open '%s': %s", launch.target, strerror(errno));
            return MW_EXIT_USAGE;
        }
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
            !mw_launch_is_runnable_dir(launch.target)) {
            close(fd);
            mw_cli_error("cannot open '%s': %s", launch.target, strerror(EISDIR));
            return MW_EXIT_USAGE;
        }
        close(fd);
    }
    if (mw_launch_resolve(&launch) < 0) {
        mw_cli_error("%s", launch.error);
        return MW_EXIT_USAGE;
    }

    char default_path[PATH_MAX];
    if (!output) {
        default_output(default_path, sizeof default_path, &launch);
        output = default_path;
    }
    mw_trace_writer *w = NULL;
    status = mw_trace_writer_create(output, force, &w);
    if (status == -EEXIST) {
        mw_cli_error("'%s' already exists (use -f to overwrite it)", output);
        return MW_EXIT_USAGE;
    }
    if (status < 0) {
        mw_cli_error("cannot write trace '%s': %s", output,
                     w ? mw_trace_writer_errmsg(w) : mw_strerror(status));
        mw_trace_writer_close(w);
        return MW_EXIT_USAGE;
    }

    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    struct mw_run_info run = {
        .mode = mw_launch_mode_name(launch.mode),
        .target = launch.target,
        .argc = launch.script_argc + 1,
        .argv = NULL,
        .cwd = cwd,
        .start_unix_ns = clock_ns(CLOCK_REALTIME),
    };
    /* sys.argv as the script will see it: argv[0] is the script path, "-m" (replaced by
     * the module's path once found), or "-c". */
    char **script_argv = calloc((size_t)run.argc + 1, sizeof *script_argv);
    if (!script_argv) {
        mw_cli_error("out of memory");
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    script_argv[0] = (char *)(launch.mode == MW_LAUNCH_SCRIPT ? launch.target
                              : launch.mode == MW_LAUNCH_MODULE ? "-m" : "-c");
    for (int i = 0; i < launch.script_argc; i++)
        script_argv[i + 1] = launch.script_argv[i];
    run.argv = script_argv;
    status = mw_trace_writer_begin_run(w, &run);
    free(script_argv);
    if (status < 0) {
        mw_cli_error("cannot write trace '%s': %s", output, mw_trace_writer_errmsg(w));
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        mw_cli_error("cannot create a pipe: %s", strerror(errno));
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    /* A larger pipe lets the traced program run ahead of the disk for longer. */
    fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20);

    int64_t start_mono = clock_ns(CLOCK_MONOTONIC);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        mw_cli_error("cannot start the script: %s", strerror(errno));
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    if (pid == 0) {
        close(pipefd[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(127);
        mw_launch_exec(&launch, pipefd[1], start_mono);
        /* Only reached when exec failed. */
        fprintf(stderr, "memwatch: cannot run '%s': %s\n", launch.python, strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    close(pipefd[1]);

    struct sigaction ign = {.sa_handler = SIG_IGN}, fwd = {.sa_handler = forward_signal};
    sigemptyset(&ign.sa_mask);
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);

    int write_status = mw_trace_writer_consume_fd(w, pipefd[0]);
    close(pipefd[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    child_pid = 0;

    struct mw_run_end end = {
        .end_unix_ns = clock_ns(CLOCK_REALTIME),
        .duration_ns = clock_ns(CLOCK_MONOTONIC) - start_mono,
        .exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
        .signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0,
        .core_dumped = WIFSIGNALED(wstatus) ? WCOREDUMP(wstatus) : 0,
    };
    if (write_status < 0)
        mw_cli_error("trace '%s' is incomplete: %s", output, mw_trace_writer_errmsg(w));
    if (mw_trace_writer_end_run(w, &end) < 0 && write_status >= 0)
        mw_cli_error("cannot finish trace '%s': %s", output, mw_trace_writer_errmsg(w));
    /* The writer kept writing to the open file; if its directory or the file itself was
     * removed meanwhile, nothing is left to look at: say so instead of the summary. */
    struct stat gone;
    if (stat(output, &gone) != 0 && errno == ENOENT)
        mw_cli_error("trace '%s' was removed while the script ran; its changes are lost", output);
    else if (!quiet)
        print_summary(output, w);
    mw_trace_writer_close(w);
    return die_like(wstatus);
}
