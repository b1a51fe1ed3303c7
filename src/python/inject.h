/* Process-wide state of the injected library: how `memwatch trace` configured this run. */
#ifndef MW_INJECT_H
#define MW_INJECT_H

#include "watcher.h"

enum mw_check_mode { MW_CHECK_LINE, MW_CHECK_INTERVAL, MW_CHECK_MANUAL };

struct mw_run_config {
    int traced;                    /* started by `memwatch trace` */
    enum mw_check_mode check_mode;
    unsigned interval_ms;          /* for MW_CHECK_INTERVAL */
    enum mw_backend backend;       /* requested by --backend */
    int on_nan;                    /* --on-nan: MW_ON_NAN_* */
};

enum { MW_ON_NAN_OFF, MW_ON_NAN_WARN, MW_ON_NAN_RAISE };

extern struct mw_run_config mw_run;

/* The built-in module's init function (module.c). */
PyObject *mw_module_init(void);

#endif
