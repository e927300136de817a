/* Unit tests for the error object, JSON escaping and strv. */
#include "error.h"
#include "jsonesc.h"
#include "strv.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-util.h"

static void test_error(void)
{
        kv_error err = {0};
        CHECK(kv_error_set(&err, EINVAL, "spec.domain.memory.guest: %s", "bad") == -EINVAL);
        CHECK(strcmp(err.msg, "spec.domain.memory.guest: bad") == 0);
        CHECK(kv_error_wrap(&err, "vmi %s", "demo") == -EINVAL);
        CHECK(strcmp(err.msg, "vmi demo: spec.domain.memory.guest: bad") == 0);
        CHECK(kv_error_errno(&err, ENOENT, "open %s", "/x") == -ENOENT);
        CHECK(strcmp(err.msg, "open /x: No such file or directory") == 0);
        CHECK(kv_error_set(NULL, EIO, "x") == -EIO);
}

static void test_escape(void)
{
        char out[64];
        CHECK(strcmp(json_escape("a\"b\\c\n\x01", out, sizeof(out)), "a\\\"b\\\\c\\n\\u0001") == 0);
        CHECK(strcmp(json_escape("abcdef", out, 4), "abc") == 0);
        CHECK(strcmp(json_escape("\"\"", out, 4), "\\\"") == 0); /* never splits an escape */
}

static void test_strv(void)
{
        strv s = {0};
        for (int i = 0; i < 100; i++)
                CHECK(strv_pushf(&s, "arg%d", i) == 0);
        CHECK(s.n == 100);
        CHECK(strcmp(s.v[42], "arg42") == 0);
        CHECK(s.v[100] == NULL);
        strv_free(&s);
        CHECK(s.v == NULL && s.n == 0);
}

int main(void)
{
        test_error();
        test_escape();
        test_strv();
        if (test_failures)
                fprintf(stderr, "%d failures\n", test_failures);
        return test_failures ? 1 : 0;
}
