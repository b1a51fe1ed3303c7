/* How `memwatch trace` starts the traced interpreter: which python3, with which arguments
 * and environment, and where the injected library is. */
#ifndef MW_LAUNCH_H
#define MW_LAUNCH_H

#include <limits.h>
#include <stdint.h>

#include "interpreter.h"
#include "run_settings.h"

enum mw_launch_mode { MW_LAUNCH_NONE, MW_LAUNCH_SCRIPT, MW_LAUNCH_MODULE, MW_LAUNCH_COMMAND };

#define MW_LAUNCH_MAX_PYOPTS 32

struct mw_launch {
    enum mw_launch_mode mode;
    const char *target;               /* script path, module name or code */
    int script_argc;                  /* arguments after the target */
    char **script_argv;
    struct mw_run_settings settings;  /* --check, --backend, --on-nan */
    int npyopts;
    const char *pyopts[MW_LAUNCH_MAX_PYOPTS];   /* "-X", "opt", "-u", ... */
    const char *python_option;        /* --python, or NULL */
    /* Filled by mw_launch_resolve: */
    struct mw_interpreter interp;     /* what runs the script, and its injected library */
    char error[2 * PATH_MAX + 256];
};

void mw_launch_init(struct mw_launch *l);
int mw_launch_add_python_option(struct mw_launch *l, int opt, const char *value);
/* -1 when the requested backend cannot work on this system. */
int mw_launch_check_backend(const struct mw_launch *l);
/* A directory python3 can run (it has a __main__.py). */
int mw_launch_is_runnable_dir(const char *path);
/* Chooses the interpreter (interpreter.h). 0, or -1 with the reason in error. */
int mw_launch_resolve(struct mw_launch *l);
const char *mw_launch_mode_name(enum mw_launch_mode mode);
/* In the child: sets the environment (the trace's socket; follow: fork children are
 * traced too) and execs the interpreter. Returns only on failure. */
void mw_launch_exec(const struct mw_launch *l, const char *trace_socket, int follow,
                    int64_t start_monotonic_ns);

#endif
