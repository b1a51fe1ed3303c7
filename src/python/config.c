/* The run's configuration. It lives apart from the constructor that fills it (inject.c) so
 * that every part of the library can read it without depending on the library's entry
 * point, which depends on them. */
#include "config.h"

struct mw_run_config mw_run = {.check_mode = MW_CHECK_MANUAL, .backend = MW_BACKEND_AUTO};

/* The launcher validated these (run_settings.h); without `memwatch trace` they are absent
 * and the defaults apply. */
void mw_config_load(void)
{
    struct mw_run_settings settings;
    mw_run_settings_from_env(&settings);
    mw_run.check_mode = settings.check_mode;
    mw_run.interval_ms = settings.interval_ms;
    mw_run.backend = settings.backend;
    mw_run.on_nan = settings.on_nan;
    mw_run.values = settings.values;
}
