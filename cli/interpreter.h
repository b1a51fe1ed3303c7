/* Which Python interpreter `memwatch trace` runs, and the injected library for it. */
#ifndef MW_INTERPRETER_H
#define MW_INTERPRETER_H

#include <limits.h>

enum mw_interpreter_source {
    MW_PYTHON_FROM_OPTION,    /* --python */
    MW_PYTHON_FROM_ENV,       /* MEMWATCH_PYTHON */
    MW_PYTHON_FROM_VENV,      /* the activated venv (VIRTUAL_ENV) */
    MW_PYTHON_FROM_PATH,      /* python3 on PATH */
    MW_PYTHON_FROM_DEFAULT,   /* Debian's python3 */
};

struct mw_interpreter {
    enum mw_interpreter_source source;
    char path[PATH_MAX];       /* the executable to run */
    char argv0[PATH_MAX];      /* argv[0] for it: the name python3 would have been run by */
    char version[32];          /* "3.12" from its name, or "3.12.1" when it was asked */
    char minor[16];            /* "3.12": which injected library */
    char inject[PATH_MAX];     /* libmemwatch-inject-<minor>.so */
};

/* Chooses the interpreter as described in memwatch-trace(1), INTERPRETER: option (the
 * --python value, or NULL), else MEMWATCH_PYTHON, else the activated venv's python, else
 * python3 on PATH when memwatch supports it, else Debian's python3. An interpreter chosen
 * by the first three must be supported; python3 on PATH is skipped when it is not.
 * 0, or -1 with one line for the user in err. */
int mw_interpreter_choose(const char *option, struct mw_interpreter *out, char *err,
                          size_t errsize);

/* How it was chosen, for people and the trace: "--python", "MEMWATCH_PYTHON",
 * "VIRTUAL_ENV", "PATH" or "default". */
const char *mw_interpreter_source_name(enum mw_interpreter_source source);

#endif
