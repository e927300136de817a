/* Tiny assertion helpers shared by the C unit tests: CHECK/CHECK_MSG/CHECK_STR count failures in
 * test_failures. */
#pragma once

#include <stdio.h>
#include <string.h>

#include "macro.h"

static int test_failures;

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
                        test_failures++;                                                                     \
                }                                                                                            \
        } while (0)

/* CHECK with a description: "ok - what" on stdout when it holds (a TAP-like trace), "FAIL what" when not. */
#define CHECK_MSG(cond, what)                                                                                \
        do {                                                                                                 \
                if (cond) {                                                                                  \
                        printf("ok - %s\n", what);                                                           \
                } else {                                                                                     \
                        fprintf(stderr, "FAIL %s (%s:%d)\n", what, __FILE__, __LINE__);                      \
                        test_failures++;                                                                     \
                }                                                                                            \
        } while (0)

#define CHECK_STR(got, want)                                                                                 \
        do {                                                                                                 \
                if (strcmp((got), (want))) {                                                                 \
                        fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, (got),       \
                                (want));                                                                     \
                        test_failures++;                                                                     \
                }                                                                                            \
        } while (0)

static inline int test_result(const char *name)
{
        fprintf(stderr, "%s: %s\n", name, test_failures ? "FAILED" : "ok");
        return test_failures ? 1 : 0;
}
