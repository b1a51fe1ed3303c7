/* --values and --max-trace-size (run_settings.c): what the launcher formats the injected
 * library parses back the same, and nothing else gets through. */
#include <stdlib.h>
#include <string.h>

#include "mw_error.h"
#include "run_settings.h"
#include "unit.h"

static void values_round_trip(void)
{
    static const char *const good[] = {"full", "summary", "last:1", "last:8", "last:1000000"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct mw_run_settings s;
        mw_run_settings_init(&s);
        CHECK_EQ_INT(mw_parse_values(good[i], &s), 0);
        char text[32];
        mw_format_values(&s, text, sizeof text);
        CHECK(strcmp(text, good[i]) == 0);
    }
    struct mw_run_settings s;
    mw_run_settings_init(&s);
    CHECK_EQ_INT(s.values, MW_VALUES_FULL);
    CHECK_EQ_INT(mw_parse_values("last:16", &s), 0);
    CHECK_EQ_INT(s.values, MW_VALUES_LAST);
    CHECK_EQ_INT(s.values_last, 16);
    CHECK_EQ_INT(mw_parse_values("summary", &s), 0);
    CHECK_EQ_INT(s.values, MW_VALUES_SUMMARY);
    CHECK_EQ_INT(s.values_last, 0);
}

static void bad_values_are_refused(void)
{
    static const char *const bad[] = {"", "Full", "full ", "last", "last:", "last:0",
                                      "last:1000001", "last:-1", "last:+3", "last: 3",
                                      "last:0x10", "last:99999999999", "summary:1", "none"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct mw_run_settings s;
        mw_run_settings_init(&s);
        int rc = mw_parse_values(bad[i], &s);
        if (rc != MW_EINVAL)
            fprintf(stderr, "accepted --values '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, MW_EINVAL);
        CHECK_EQ_INT(s.values, MW_VALUES_FULL);   /* unchanged */
    }
    CHECK_EQ_INT(mw_parse_values(NULL, NULL), MW_EINVAL);
}

static void sizes(void)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"1M", 1 << 20}, {"1MiB", 1 << 20}, {"1MB", 1 << 20}, {"1536K", 1536 << 10},
        {"2g", (uint64_t)2 << 30}, {"3T", (uint64_t)3 << 40}, {"1048577", 1048577},
        {"none", 0}, {"0", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t n = 12345;
        CHECK_EQ_INT(mw_parse_max_trace_size(good[i].text, &n), 0);
        CHECK(n == good[i].bytes);
        /* What it formats reads back as the same size. */
        char text[32];
        uint64_t again = 7;
        mw_format_size(n, text, sizeof text);
        CHECK_EQ_INT(mw_parse_max_trace_size(text, &again), 0);
        CHECK(again == n);
    }
    char text[32];
    mw_format_size((uint64_t)512 << 20, text, sizeof text);
    CHECK(strcmp(text, "512MiB") == 0);
    mw_format_size(1048577, text, sizeof text);
    CHECK(strcmp(text, "1048577") == 0);

    static const char *const bad[] = {"", "M", "1", "1023K", "-1M", "+1M", "1 M", "1MBB",
                                      "1X", "1.5M", "0x100000", "2000000T",
                                      "99999999999999999999", "1Mi"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t n = 12345;
        int rc = mw_parse_max_trace_size(bad[i], &n);
        if (rc != MW_EINVAL)
            fprintf(stderr, "accepted --max-trace-size '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, MW_EINVAL);
        CHECK(n == 12345);   /* unchanged */
    }
}

static void environment_round_trip(void)
{
    struct mw_run_settings out, in;
    mw_run_settings_init(&out);
    out.values = MW_VALUES_LAST;
    out.values_last = 12;
    out.max_trace_size = (uint64_t)64 << 20;
    CHECK_EQ_INT(mw_run_settings_to_env(&out), 0);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), 0);
    CHECK(memcmp(&in, &out, sizeof in) == 0);

    setenv(MW_ENV_VALUES, "last:0", 1);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), MW_EINVAL);
    CHECK_EQ_INT(in.values, MW_VALUES_FULL);
    CHECK(in.max_trace_size == (uint64_t)64 << 20);

    for (size_t i = 0; mw_env_ours[i]; i++)
        unsetenv(mw_env_ours[i]);
    CHECK_EQ_INT(mw_run_settings_from_env(&in), 0);
    CHECK_EQ_INT(in.values, MW_VALUES_FULL);
    CHECK(in.max_trace_size == 0);
}

int main(void)
{
    RUN(values_round_trip);
    RUN(bad_values_are_refused);
    RUN(sizes);
    RUN(environment_round_trip);
    return UNIT_DONE();
}
