/* How `memwatch trace` configured this run, as the injected library sees it. */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include "run_settings.h"

struct mw_run_config {
    int traced;                    /* started by `memwatch trace` */
    enum mw_check_mode check_mode;
    unsigned interval_ms;          /* for MW_CHECK_INTERVAL */
    enum mw_backend backend;       /* requested by --backend */
    enum mw_on_nan on_nan;
    enum mw_values_policy values;  /* --values: under full each object's base is sent */
};

/* Filled by the library's constructor (inject.c) before the interpreter starts, and only
 * read afterwards, so any thread may read it without a lock. */
extern struct mw_run_config mw_run;

/* Reads the settings the launcher put in the environment into mw_run (all but traced). */
void mw_config_load(void);

#endif
