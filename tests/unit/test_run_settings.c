/* The launcher <-> injected library contract: what one side formats, the other parses back
 * the same, and nothing else gets through. */
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "run_settings.h"
#include "unit.h"

static void check_modes_round_trip(void)
{
    static const char *const good[] = {"line", "manual", "interval:1", "interval:50",
                                       "interval:3600000"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct mw_run_settings s;
        mw_run_settings_init(&s);
        CHECK_EQ_INT(mw_parse_check_mode(good[i], &s), 0);
        char text[32];
        mw_format_check_mode(&s, text, sizeof text);
        CHECK(strcmp(text, good[i]) == 0);
    }
    struct mw_run_settings s;
    mw_run_settings_init(&s);
    CHECK_EQ_INT(mw_parse_check_mode("interval:250", &s), 0);
    CHECK_EQ_INT(s.check_mode, MW_CHECK_INTERVAL);
    CHECK_EQ_INT(s.interval_ms, 250);
}

static void bad_check_modes_are_refused(void)
{
    static const char *const bad[] = {"", "Line", "line ", "interval:", "interval:0",
                                      "interval:3600001", "interval:-5", "interval:+5",
                                      "interval: 5", "interval:0x10", "interval:5ms",
                                      "interval:99999999999999999999", "manual:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct mw_run_settings s;
        mw_run_settings_init(&s);
        int rc = mw_parse_check_mode(bad[i], &s);
        if (rc != MW_EINVAL)
            fprintf(stderr, "accepted --check '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, MW_EINVAL);
        CHECK_EQ_INT(s.check_mode, MW_CHECK_LINE);   /* unchanged */
    }
    CHECK_EQ_INT(mw_parse_check_mode(NULL, NULL), MW_EINVAL);
}

static void backends_and_on_nan(void)
{
    enum mw_backend b = MW_BACKEND_AUTO;
    CHECK_EQ_INT(mw_parse_backend("uffd", &b), 0);
    CHECK_EQ_INT(b, MW_BACKEND_UFFD);
    CHECK_EQ_INT(mw_parse_backend("mprotect", &b), 0);
    CHECK_EQ_INT(b, MW_BACKEND_MPROTECT);
    CHECK_EQ_INT(mw_parse_backend("UFFD", &b), MW_EINVAL);
    CHECK_EQ_INT(mw_parse_backend("", &b), MW_EINVAL);
    CHECK_EQ_INT(b, MW_BACKEND_MPROTECT);
    for (int i = MW_BACKEND_AUTO; i <= MW_BACKEND_UFFD; i++) {
        CHECK_EQ_INT(mw_parse_backend(mw_backend_name((enum mw_backend)i), &b), 0);
        CHECK_EQ_INT(b, i);
    }
    enum mw_on_nan n = MW_ON_NAN_OFF;
    for (int i = MW_ON_NAN_OFF; i <= MW_ON_NAN_RAISE; i++) {
        CHECK_EQ_INT(mw_parse_on_nan(mw_on_nan_name((enum mw_on_nan)i), &n), 0);
        CHECK_EQ_INT(n, i);
    }
    CHECK_EQ_INT(mw_parse_on_nan("ignore", &n), MW_EINVAL);
}

static void environment_round_trip(void)
{
    struct mw_run_settings out, in;
    mw_run_settings_init(&out);
    out.check_mode = MW_CHECK_INTERVAL;
    out.interval_ms = 75;
    out.backend = MW_BACKEND_MPROTECT;
    out.on_nan = MW_ON_NAN_RAISE;
    CHECK_EQ_INT(mw_run_settings_to_env(&out), 0);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), 0);
    CHECK(memcmp(&in, &out, sizeof in) == 0);

    /* A meddled variable is reported and leaves that setting at its default. */
    setenv(MW_ENV_CHECK, "interval:0", 1);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), MW_EINVAL);
    CHECK_EQ_INT(in.check_mode, MW_CHECK_LINE);
    CHECK_EQ_INT(in.backend, MW_BACKEND_MPROTECT);

    /* Without `memwatch trace`: the defaults. */
    for (size_t i = 0; mw_env_ours[i]; i++)
        unsetenv(mw_env_ours[i]);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), 0);
    CHECK_EQ_INT(in.check_mode, MW_CHECK_LINE);
    CHECK_EQ_INT(in.backend, MW_BACKEND_AUTO);
    CHECK_EQ_INT(in.on_nan, MW_ON_NAN_OFF);
}

int main(void)
{
    RUN(check_modes_round_trip);
    RUN(bad_check_modes_are_refused);
    RUN(backends_and_on_nan);
    RUN(environment_round_trip);
    return UNIT_DONE();
}
