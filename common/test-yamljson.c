/* Unit tests for yamljson: core-schema typing, multi-document streams, rejected constructs, positions. */
#include "yamljson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"

/* Convert and compare the unformatted JSON. */
static void expect(const char *yaml, const char *json)
{
        kv_error err = {0};
        cJSON *j = NULL;
        int r = yaml_or_json_parse(yaml, strlen(yaml), &j, &err);
        if (r < 0) {
                fprintf(stderr, "unexpected error for %s: %s\n", yaml, err.msg);
                test_failures++;
                return;
        }
        char *s = cJSON_PrintUnformatted(j);
        if (strcmp(s, json)) {
                fprintf(stderr, "for %s\n got      %s\n expected %s\n", yaml, s, json);
                test_failures++;
        }
        free(s);
        cJSON_Delete(j);
}

static void expect_error(const char *yaml, const char *substr)
{
        kv_error err = {0};
        cJSON *j = NULL;
        int r = yaml_or_json_parse(yaml, strlen(yaml), &j, &err);
        CHECK(r == -EINVAL);
        CHECK(j == NULL);
        if (r < 0 && !strstr(err.msg, substr)) {
                fprintf(stderr, "error for %s: \"%s\" lacks \"%s\"\n", yaml, err.msg, substr);
                test_failures++;
        }
        cJSON_Delete(j);
}

int main(void)
{
        expect("a: 1\nb: '1'\nc: \"true\"\nd: true\ne: null\nf: ~\ng:\nh: 1.5\ni: 0x1f\nj: 0o17\nk: -3\nl: "
               "yes\n",
               "{\"a\":1,\"b\":\"1\",\"c\":\"true\",\"d\":true,\"e\":null,\"f\":null,\"g\":null,\"h\":1.5,"
               "\"i\":31,\"j\":15,\"k\":-3,\"l\":\"yes\"}");
        expect("x: [1, two, {y: 3}]\n", "{\"x\":[1,\"two\",{\"y\":3}]}");
        expect("- a\n- - b\n  - c\n", "[\"a\",[\"b\",\"c\"]]");
        expect("s: !!str 123\nt: |\n  line1\n  line2\n", "{\"s\":\"123\",\"t\":\"line1\\nline2\\n\"}");
        expect("v: 1e3\nw: .5\nz: 1.2.3\n", "{\"v\":1000,\"w\":0.5,\"z\":\"1.2.3\"}");
        expect("{\"a\": [1, \"2\"]}", "{\"a\":[1,\"2\"]}");
        expect("  [true]\n", "[true]");

        expect_error("a: &x 1\nb: *x\n", "line 1, column 4: anchors and aliases");
        expect_error("a: 1\na: 2\n", "line 2, column 1: duplicate key \"a\"");
        expect_error("a: [1\n", "line 2");
        expect_error("---\na: 1\n---\nb: 2\n", "exactly one YAML document, found 2");
        expect_error("", "found 0");
        expect_error("{\"a\": }", "line 1, column 7: invalid JSON");
        expect_error("{}\n{}", "line 2, column 1: trailing data");
        expect_error("? [a]\n: 1\n", "mapping keys must be scalars");
        expect_error("a: !!int abc\n", "tag");

        kv_error err = {0};
        cJSON *docs = NULL;
        const char *multi = "---\na: 1\n---\n- 2\n";
        CHECK(yaml_to_json_all(multi, strlen(multi), &docs, &err) == 0);
        CHECK(cJSON_GetArraySize(docs) == 2);
        cJSON_Delete(docs);

        if (test_failures)
                fprintf(stderr, "%d test_failures\n", test_failures);
        return test_failures ? 1 : 0;
}
