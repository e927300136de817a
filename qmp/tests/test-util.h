/* Tiny assertion helpers for the qmp tests: count failures, report them all, exit non-zero. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

static int test_failures, test_checks;

static inline bool check_at(bool ok, const char *file, int line, const char *what)
{
        test_checks++;
        if (!ok) {
                fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
                test_failures++;
        }
        return ok;
}

#define CHECK(cond) check_at((cond), __FILE__, __LINE__, #cond)

static inline int test_exit(void)
{
        fprintf(stderr, "%d of %d checks failed\n", test_failures, test_checks);
        return test_failures ? 1 : 0;
}
