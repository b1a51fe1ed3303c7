/* A minimal test harness for the C unit tests: CHECK records a failure and goes on, the
 * process exits non-zero if any check failed. */
#ifndef MW_UNIT_H
#define MW_UNIT_H
#include <stdio.h>
#include <stdlib.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond) do { unit_checks++; if (!(cond)) { unit_failures++; \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long va_ = (long long)(a), vb_ = (long long)(b); unit_checks++; \
    if (va_ != vb_) { unit_failures++; fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
    __FILE__, __LINE__, #a, va_, #b, vb_); } } while (0)
#define RUN(test) do { fprintf(stderr, "-- %s\n", #test); test(); } while (0)
#define UNIT_DONE() (fprintf(stderr, "%d checks, %d failed\n", unit_checks, unit_failures), \
    unit_failures ? EXIT_FAILURE : EXIT_SUCCESS)
#endif
