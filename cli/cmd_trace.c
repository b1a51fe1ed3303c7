/* memwatch trace: run a Python script under watch and record every change into a trace.
 *
 * DESIGN: this process is the launcher and the trace writer; the script runs in a child.
 * The child is Debian's own python3 executable (the interpreter users compare against, with
 * its PGO+LTO build: unwatched code runs at exactly python3's speed), into which
 * libmemwatch-inject.so is preloaded: it registers the built-in `memwatch` module before
 * the interpreter starts and sends what it finds over a connection to a Unix socket this
 * process listens on (src/trace/serve.h), one per traced process: the script's, and its
 * children's unless --no-follow. This process turns the records into SQLite rows as
 * they arrive. So:
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

#include "args.h"
#include "cli.h"
#include "launch.h"
#include "mw_error.h"
#include "serve.h"
#include "show.h"
#include "writer.h"

enum { OPT_CHECK = 256, OPT_BACKEND, OPT_ON_NAN, OPT_PYTHON, OPT_VALUES, OPT_MAX_SIZE,
       OPT_NO_FOLLOW };

static const char *const trace_usage[] = {
    "usage: memwatch trace [-fhqu] [-o file] [--python path] [--check mode] [--backend name] [--on-nan action] [--values policy] [--max-trace-size size] [--no-follow] [-X opt] [-W arg] script.py [args ...]",
    "       memwatch trace [options] -m module [args ...]",
    "       memwatch trace [options] -c code [args ...]",
    "",
    MW_CLI_LIST,
    NULL,
};

static const struct mw_cli_option trace_options[] = {
    {"output", required_argument, 'o',
     "    -o, --output FILE      write the trace to FILE (default: memwatch-<script>.<pid>.db)"},
    {"force", no_argument, 'f', "    -f, --force            overwrite an existing trace file"},
    {"quiet", no_argument, 'q',
     "    -q, --quiet            do not print the end-of-run summary line"},
    {NULL, required_argument, 'm',
     "    -m MODULE              run a library module as a script, like python3 -m"},
    {NULL, required_argument, 'c', "    -c CODE                run CODE, like python3 -c"},
    {"python", required_argument, OPT_PYTHON,
     "        --python PATH      the interpreter to run (default: MEMWATCH_PYTHON, the active\n"
     "                           venv's, python3 on PATH if supported, /usr/bin/python3)"},
    {"check", required_argument, OPT_CHECK,
     "        --check MODE       when to look for changes: line (default), interval:MS, manual"},
    {"backend", required_argument, OPT_BACKEND,
     "        --backend NAME     detection mechanism: auto (default), uffd, mprotect"},
    {"on-nan", required_argument, OPT_ON_NAN,
     "        --on-nan ACTION    when NaN or Inf appears in a watched float array: off (default), warn, raise"},
    {"values", required_argument, OPT_VALUES,
     "        --values POLICY    which bytes the trace keeps: full (default), summary, last:N"},
    {"max-trace-size", required_argument, OPT_MAX_SIZE,
     "        --max-trace-size SIZE  keep the trace file under SIZE (e.g. 500M, 2G): older values go first"},
    {"no-follow", no_argument, OPT_NO_FOLLOW,
     "        --no-follow        trace only the script's process: its children run untraced"},
    {NULL, required_argument, 'X', "    -X OPT, -W ARG, -u     passed to python3 unchanged"},
    {NULL, required_argument, 'W', NULL},
    {NULL, no_argument, 'u', NULL},
    {"help", no_argument, 'h', "    -h, --help             show this help"},
    {NULL, 0, 0, NULL},
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
    /* A script's file name may take all of NAME_MAX: the trace's name, and SQLite's
     * "-journal" beside it, must still fit, so a long stem is cut (at a character's start,
     * so that a UTF-8 name stays UTF-8). */
    size_t room = NAME_MAX - strlen("memwatch-") - strlen(".4194304.db") - strlen("-journal");
    size_t keep = strlen(stem);
    if (keep > room) {
        keep = room;
        while (keep > 0 && ((unsigned char)stem[keep] & 0xc0) == 0x80)
            keep--;
    }
    snprintf(out, size, "memwatch-%.*s.%ld.db", (int)keep, stem, (long)getpid());
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

/* What --values and --max-trace-size left out, when they did (the trace's meta says the
 * same: values_dropped_changes, values_dropped_bytes, changes_not_recorded). */
static void print_dropped(const mw_trace_writer *w, const struct mw_run_settings *rs)
{
    uint64_t changes, bytes, not_recorded;
    mw_trace_writer_dropped(w, &changes, &bytes, &not_recorded);
    char size[32], policy[32], why[96];
    mw_format_size(rs->max_trace_size, size, sizeof size);
    mw_format_values(rs, policy, sizeof policy);
    if (rs->max_trace_size && rs->values == MW_VALUES_LAST)
        snprintf(why, sizeof why, "--values=%s and --max-trace-size %s", policy, size);
    else if (rs->max_trace_size)
        snprintf(why, sizeof why, "--max-trace-size %s", size);
    else
        snprintf(why, sizeof why, "--values=%s", policy);
    if (changes)
        fprintf(stderr, "memwatch: the values of %llu older change%s (%llu bytes) were dropped "
                        "to keep %s; their summaries stay\n",
                (unsigned long long)changes, changes == 1 ? "" : "s",
                (unsigned long long)bytes, why);
    if (not_recorded)
        fprintf(stderr, "memwatch: %llu change%s not recorded: the trace reached "
                        "--max-trace-size %s\n",
                (unsigned long long)not_recorded, not_recorded == 1 ? " was" : "s were", size);
}

/* The end-of-run line, what the values left out, and one line per float object in which
 * NaN or Inf appeared. Tags and file names are the script's: shown as a terminal may show
 * them (show.h). */
static void print_summary(const char *path, const mw_trace_writer *w,
                          const struct mw_run_settings *settings, uint64_t undelivered)
{
    struct mw_trace_totals t;
    mw_trace_writer_totals(w, &t);
    /* A command to paste: the path as one word of the shell's (a name with a space or a
     * ';' in it as it is would run something else). */
    char *bare = mw_show_shell_word(path);
    fprintf(stderr, "memwatch: %llu object%s watched, %llu change%s recorded in %s; see: memwatch query %s\n",
            (unsigned long long)t.objects, t.objects == 1 ? "" : "s",
            (unsigned long long)t.changes, t.changes == 1 ? "" : "s", mw_show_name(path),
            bare ? bare : path);
    free(bare);
    if (undelivered)
        fprintf(stderr, "memwatch: %llu change%s could not be delivered to the trace by the "
                        "traced process (trace meta changes_undelivered)\n",
                (unsigned long long)undelivered, undelivered == 1 ? "" : "s");
    print_dropped(w, settings);
    /* Memory that ran out in the traced process while it checked (src/python/check.c). */
    if (t.short_of_memory || t.lost_for_memory)
        fprintf(stderr, "memwatch: memory ran out while tracing: %llu change%s recorded with "
                "less than usual (old value unavailable, or ranges only), %llu lost\n",
                (unsigned long long)t.short_of_memory, t.short_of_memory == 1 ? "" : "s",
                (unsigned long long)t.lost_for_memory);
    /* NaN/Inf that appeared in watched float arrays (the writer decoded every change). */
    struct mw_trace_nonfinite nf;
    for (size_t i = 0; mw_trace_writer_nonfinite(w, i, &nf) == 1; i++) {
        char first[64], all[96] = "";
        if (nf.first_nan && nf.first_inf)
            snprintf(first, sizeof first, "%llu NaN and %llu Inf", (unsigned long long)nf.first_nan,
                     (unsigned long long)nf.first_inf);
        else
            snprintf(first, sizeof first, "%llu %s", (unsigned long long)(nf.first_nan ? nf.first_nan : nf.first_inf),
                     nf.first_nan ? "NaN" : "Inf");
        if (nf.nan_appeared + nf.inf_appeared > nf.first_nan + nf.first_inf)
            snprintf(all, sizeof all, " (%llu NaN, %llu Inf in all)", (unsigned long long)nf.nan_appeared,
                     (unsigned long long)nf.inf_appeared);
        char *tag = mw_show(nf.tag, strlen(nf.tag), MW_SHOW_NAME_MAX, NULL);
        char *file = nf.first_file ? mw_show(nf.first_file, strlen(nf.first_file),
                                             MW_SHOW_NAME_MAX, NULL) : NULL;
        char line[32] = "";
        if (file)
            snprintf(line, sizeof line, ":%d", nf.first_line);
        fprintf(stderr, "memwatch: %s: %s appeared at seq %llu%s%s%s%s\n", tag ? tag : "?", first,
                (unsigned long long)nf.first_seq, file ? ", " : "", file ? file : "", line, all);
        free(tag);
        free(file);
    }
}

/* What the command line asks for. */
struct trace_args {
    struct mw_launch launch;
    const char *output;
    int force, quiet, no_follow;
};

/* The steps below return MW_CLI_GO_ON to go on, else the exit status. */

/* rc of the launch setting --name's parser: MW_CLI_GO_ON, or the usage error naming the
 * values it takes. */
static int setting(int rc, const char *name, const char *choices)
{
    if (rc < 0)
        return mw_cli_usage_error(&mw_cmd_trace, "invalid --%s '%s': use %s", name, optarg,
                                  choices);
    return MW_CLI_GO_ON;
}

/* "+" in the option string: options end at the script (or --); -m and -c end them too. */
static int trace_option(void *args, int opt)
{
    struct trace_args *a = args;
    struct mw_launch *l = &a->launch;
    switch (opt) {
    case 'o':
        a->output = optarg;
        break;
    case 'f':
    case 'q':
        *(opt == 'f' ? &a->force : &a->quiet) = 1;
        break;
    case 'm':
    case 'c':
        /* Their value is the target and the rest is the script's argv. */
        l->mode = opt == 'm' ? MW_LAUNCH_MODULE : MW_LAUNCH_COMMAND;
        l->target = optarg;
        return MW_CLI_END_OPTIONS;
    case 'X':
    case 'W':
    case 'u':
        if (mw_launch_add_python_option(l, opt, opt == 'u' ? NULL : optarg) < 0)
            return mw_cli_usage_error(&mw_cmd_trace, "too many python options");
        break;
    case OPT_PYTHON:
        l->python_option = optarg;
        break;
    case OPT_NO_FOLLOW:
        a->no_follow = 1;
        break;
    case OPT_CHECK:
        return setting(mw_parse_check_mode(optarg, &l->settings), "check",
                       "line, interval:MS (1 to 3600000) or manual");
    case OPT_BACKEND:
        return setting(mw_parse_backend(optarg, &l->settings.backend), "backend",
                       "auto, uffd or mprotect");
    case OPT_ON_NAN:
        return setting(mw_parse_on_nan(optarg, &l->settings.on_nan), "on-nan", "off, warn or raise");
    case OPT_VALUES:
        return setting(mw_parse_values(optarg, &l->settings), "values",
                       "full, summary or last:N (N from 1 to 1000000)");
    case OPT_MAX_SIZE:
        return setting(mw_parse_max_trace_size(optarg, &l->settings.max_trace_size),
                       "max-trace-size", "a size of at least 1M, like 64M or 2G (K, M, G, T: "
                       "powers of 1024), or none");
    }
    return MW_CLI_GO_ON;
}

/* The options, then the script (or -m module, -c code) and its arguments. */
static int parse_trace_args(int argc, char **argv, struct trace_args *a)
{
    mw_launch_init(&a->launch);
    int status = mw_cli_parse_options(&mw_cmd_trace, argc, argv, trace_option, a);
    if (status != MW_CLI_GO_ON)
        return status;
    if (a->launch.mode == MW_LAUNCH_NONE) {
        if (optind >= argc)
            return mw_cli_usage_error(&mw_cmd_trace, "no script given");
        a->launch.mode = MW_LAUNCH_SCRIPT;
        a->launch.target = argv[optind++];
    }
    a->launch.script_argc = argc - optind;
    a->launch.script_argv = argv + optind;
    return MW_CLI_GO_ON;
}

/* What can be known before the trace file exists: the backend works here, the script can
 * be read, the interpreter and the injected library are found. */
static int check_launch(struct mw_launch *l)
{
    if (mw_launch_check_backend(l) < 0) {
        mw_cli_error("backend '%s' is not available on this system: %s",
                     mw_backend_name(l->settings.backend),
                     "this kernel lacks userfaultfd write-protection (use --backend mprotect)");
        return MW_EXIT_USAGE;
    }
    if (l->mode == MW_LAUNCH_SCRIPT) {
        int fd = open(l->target, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0) {
            mw_cli_error("cannot open '%s': %s", l->target, strerror(errno));
            return MW_EXIT_USAGE;
        }
        int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        close(fd);
        if (is_dir && !mw_launch_is_runnable_dir(l->target)) {
            mw_cli_error("cannot open '%s': %s", l->target, strerror(EISDIR));
            return MW_EXIT_USAGE;
        }
    }
    if (mw_launch_resolve(l) < 0) {
        mw_cli_error("%s", l->error);
        return MW_EXIT_USAGE;
    }
    return MW_CLI_GO_ON;
}

/* The rank of this process in a job that torchrun, mpirun or srun started (a plain decimal
 * number): what names its trace when several are read as one timeline (cli/timeline.h).
 * NULL when none is set; *from is the variable's name. */
static const char *job_rank(const char **from)
{
    static const char *const vars[] = {"RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
                                       "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        size_t n = v ? strspn(v, "0123456789") : 0;
        if (v && n > 0 && n <= 9 && v[n] == '\0') {
            *from = vars[i];
            return v;
        }
    }
    return NULL;
}

/* The run as the trace's run row describes it; sys.argv as the script will see it: argv[0]
 * is the script path, "-m" (replaced by the module's path once found), or "-c". */
static int begin_run(mw_trace_writer *w, const struct mw_launch *l, const char *output)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    struct mw_run_info run = {
        .mode = mw_launch_mode_name(l->mode),
        .target = l->target,
        .argc = l->script_argc + 1,
        .argv = NULL,
        .cwd = cwd,
        .start_unix_ns = clock_ns(CLOCK_REALTIME),
        .python_path = l->interp.path,
        .python_chosen_by = mw_interpreter_source_name(l->interp.source),
    };
    run.rank = job_rank(&run.rank_from);
    char **script_argv = calloc((size_t)run.argc + 1, sizeof *script_argv);
    if (!script_argv) {
        mw_cli_error("out of memory");
        return MW_EXIT_FAILURE;
    }
    script_argv[0] = (char *)(l->mode == MW_LAUNCH_SCRIPT ? l->target
                              : l->mode == MW_LAUNCH_MODULE ? "-m" : "-c");
    for (int i = 0; i < l->script_argc; i++)
        script_argv[i + 1] = l->script_argv[i];
    run.argv = script_argv;
    int status = mw_trace_writer_begin_run(w, &run);
    free(script_argv);
    if (status < 0) {
        mw_cli_error("cannot write trace '%s': %s", output, mw_trace_writer_errmsg(w));
        return MW_EXIT_FAILURE;
    }
    return MW_CLI_GO_ON;
}

/* Creates the trace file (a->output, or the default name into path) and records the run's
 * start. MW_CLI_GO_ON and *out, or the exit status. */
static int open_trace(struct trace_args *a, char *path, size_t size, mw_trace_writer **out)
{
    if (!a->output) {
        default_output(path, size, &a->launch);
        a->output = path;
    }
    /* A trace never replaces the script it runs, with -f or without (nor, by the writer's
     * own rule, any file that is not a memwatch trace). */
    struct stat out_st, script_st;
    if (a->launch.mode == MW_LAUNCH_SCRIPT && stat(a->output, &out_st) == 0 &&
        stat(a->launch.target, &script_st) == 0 && out_st.st_dev == script_st.st_dev &&
        out_st.st_ino == script_st.st_ino) {
        mw_cli_error("refusing to write the trace over '%s', the script it runs",
                     a->launch.target);
        return MW_EXIT_USAGE;
    }
    mw_trace_writer *w = NULL;
    char err[1024];
    int status = mw_trace_writer_open(a->output, a->force, &w, err, sizeof err);
    if (status == -EEXIST) {
        mw_cli_error("'%s' already exists (use -f to overwrite it)", a->output);
        return MW_EXIT_USAGE;
    }
    if (status < 0) {
        mw_cli_error("%s", err[0] ? err : mw_strerror(status));
        return status == -ENOMEM ? MW_EXIT_FAILURE : MW_EXIT_USAGE;
    }
    const struct mw_run_settings *rs = &a->launch.settings;
    struct mw_values_config values = {rs->values, rs->values_last, rs->max_trace_size};
    if (mw_trace_writer_set_values(w, &values) < 0) {
        mw_cli_error("cannot write trace '%s': %s", a->output, mw_trace_writer_errmsg(w));
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    if ((status = begin_run(w, &a->launch, a->output)) != MW_CLI_GO_ON) {
        mw_trace_writer_close(w);
        return status;
    }
    *out = w;
    return MW_CLI_GO_ON;
}

/* In the child: runs the script, which connects to the socket. Returns only when it
 * cannot. */
_Noreturn static void exec_child(const struct trace_args *a, const char *socket_name,
                                 int64_t start_mono)
{
    const struct mw_launch *l = &a->launch;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(127);
    mw_launch_exec(l, socket_name, !a->no_follow, start_mono);
    /* Only reached when exec failed. */
    fprintf(stderr, "memwatch: cannot run '%s': %s\n", l->interp.path, strerror(errno));
    _exit(127);
}

/* While the child runs (see DESIGN): the terminal's SIGINT and SIGQUIT reach it anyway,
 * SIGTERM and SIGHUP are passed on to it. */
static void handle_signals(void)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, fwd = {.sa_handler = forward_signal};
    sigemptyset(&ign.sa_mask);
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
}

/* Records the run's end, then says how it went (unless quiet). */
static void end_run(const struct trace_args *a, mw_trace_writer *w, int write_status,
                    int wstatus, int64_t start_mono, uint64_t undelivered)
{
    struct mw_run_end end = {
        .end_unix_ns = clock_ns(CLOCK_REALTIME),
        .duration_ns = clock_ns(CLOCK_MONOTONIC) - start_mono,
        .exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
        .signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0,
        .core_dumped = WIFSIGNALED(wstatus) ? WCOREDUMP(wstatus) : 0,
    };
    if (write_status < 0)
        mw_cli_error("trace '%s' is incomplete: %s", a->output,
                     write_status == -ENOMEM ? "out of memory" : mw_trace_writer_errmsg(w));
    int failed = mw_trace_writer_end_run(w, &end) < 0;
    if (failed && write_status >= 0)
        mw_cli_error("cannot finish trace '%s': %s", a->output, mw_trace_writer_errmsg(w));
    /* The trace is put in its place now (a replacement moved over the old file). If it,
     * or its directory, was removed or replaced meanwhile, nothing of this run is left to
     * look at: say so instead of the summary. */
    if (mw_trace_writer_finish(w) < 0 && (!mw_trace_writer_placed(w) ||
                                          (!failed && write_status >= 0)))
        mw_cli_error("%s", mw_trace_writer_errmsg(w));
    if (mw_trace_writer_placed(w) && !a->quiet)
        print_summary(a->output, w, &a->launch.settings, undelivered);
}

/* Runs the script in a child and records what its processes send until they end; then
 * ends this process the way the child ended. */
static int run_traced(const struct trace_args *a, mw_trace_writer *w)
{
    mw_serve *serve = NULL;
    char socket_name[96];
    int rc = mw_serve_listen(&serve, socket_name, sizeof socket_name);
    if (rc < 0) {
        mw_cli_error("cannot listen for the traced processes: %s", strerror(-rc));
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    int64_t start_mono = clock_ns(CLOCK_MONOTONIC);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        mw_cli_error("cannot start the script: %s", strerror(errno));
        mw_serve_destroy(serve);
        mw_trace_writer_close(w);
        return MW_EXIT_FAILURE;
    }
    if (pid == 0)
        exec_child(a, socket_name, start_mono);
    child_pid = pid;
    handle_signals();

    int wstatus = 0;
    int write_status = mw_serve_run(serve, w, pid, !a->no_follow, &wstatus);
    uint64_t undelivered = mw_serve_undelivered(serve);
    mw_serve_destroy(serve);
    child_pid = 0;
    end_run(a, w, write_status, wstatus, start_mono, undelivered);
    mw_trace_writer_close(w);
    return die_like(wstatus);
}

int cmd_trace(int argc, char **argv)
{
    struct trace_args a = {0};
    char default_path[PATH_MAX];
    mw_trace_writer *w = NULL;
    int status;
    if ((status = parse_trace_args(argc, argv, &a)) != MW_CLI_GO_ON ||
        (status = check_launch(&a.launch)) != MW_CLI_GO_ON ||
        (status = open_trace(&a, default_path, sizeof default_path, &w)) != MW_CLI_GO_ON)
        return status;
    return run_traced(&a, w);
}

const struct mw_command mw_cmd_trace = {
    .name = "trace",
    .summary = "run a Python script and record every change to the memory it watches",
    .usage = trace_usage, .options = trace_options, .getopt_flags = "+:", .run = cmd_trace,
};
