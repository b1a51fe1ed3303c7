/* Process-wide state of the injected library: how `memwatch trace` configured this run. */
#ifndef MW_INJECT_H
#define MW_INJECT_H

#include "run_settings.h"

struct mw_run_config {
    int traced;                    /* started by `memwatch trace` */
    enum mw_check_mode check_mode;
    unsigned interval_ms;          /* for MW_CHECK_INTERVAL */
    enum mw_backend backend;       /* requested by --backend */
    enum mw_on_nan on_nan;
};

extern struct mw_run_config mw_run;

/* The built-in module's init function (module.c). */
PyObject *mw_module_init(void);

#endif
