/* Unit tests for the `qmp` request language: tokenizer, key=value typing, dotted keys, transactions. */
#include <string.h>

#include "macro.h"
#include "qmp-cli-args.h"
#include "test-util.h"

/* Tokenize line, build the request, compare with {"execute":..,"arguments":..} (or the error text). */
static void request_case(const char *line, const char *expected)
{
        strv words = {0};
        kv_error err = {0};
        _cleanup_free_ char *command = NULL, *got = NULL;
        cJSON *args = NULL;
        int r = qmp_cli_tokenize(line, &words, &err);
        if (r >= 0)
                r = qmp_cli_build_request(words.v, words.n, &command, &args, &err);
        if (r < 0) {
                got = strdup(err.msg);
        } else {
                cJSON *req = cJSON_CreateObject();
                cJSON_AddStringToObject(req, "execute", command);
                if (args)
                        cJSON_AddItemToObject(req, "arguments", args);
                got = cJSON_PrintUnformatted(req);
                cJSON_Delete(req);
        }
        if (!check_at(!strcmp(got, expected), __FILE__, __LINE__, line))
                fprintf(stderr, "  expected: %s\n  got:      %s\n", expected, got);
        strv_free(&words);
}

static void test_tokenize(void)
{
        strv w = {0};
        kv_error err = {0};
        CHECK(qmp_cli_tokenize("  a 'b c'  \"d \\\"e\\\\\" f\\ g '' x=\"\" ", &w, &err) == 0);
        CHECK(w.n == 6);
        if (w.n == 6) {
                CHECK(!strcmp(w.v[0], "a"));
                CHECK(!strcmp(w.v[1], "b c"));
                CHECK(!strcmp(w.v[2], "d \"e\\"));
                CHECK(!strcmp(w.v[3], "f g"));
                CHECK(!strcmp(w.v[4], ""));
                CHECK(!strcmp(w.v[5], "x="));
        }
        strv_free(&w);
        CHECK(qmp_cli_tokenize("a 'open", &w, &err) == -EINVAL);
        CHECK(strstr(err.msg, "unterminated quote") != NULL);
        strv_free(&w);
}

int main(void)
{
        test_tokenize();
        request_case("query-status", "{\"execute\":\"query-status\"}");
        request_case("stop", "{\"execute\":\"stop\"}");
        request_case("x n=42 f=1.5 t=true F=false z=null s=hello q='\"7\"' forced:=123 e= neg=-3",
                     "{\"execute\":\"x\",\"arguments\":{\"n\":42,\"f\":1.5,\"t\":true,\"F\":false,\"z\":null,"
                     "\"s\":\"hello\",\"q\":\"7\",\"forced\":\"123\",\"e\":\"\",\"neg\":-3}}");
        request_case("blockdev-add driver=qcow2 node-name=d1 file.driver=file file.filename=/tmp/a.qcow2",
                     "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"qcow2\",\"node-name\":\"d1\","
                     "\"file\":{\"driver\":\"file\",\"filename\":\"/tmp/a.qcow2\"}}}");
        request_case("x a.b.c=1 a.b.d=2 a.e=[1,2] o='{\"k\":1}'",
                     "{\"execute\":\"x\",\"arguments\":{\"a\":{\"b\":{\"c\":1,\"d\":2},\"e\":[1,2]},\"o\":{"
                     "\"k\":1}}}");
        request_case("x '{\"id\":\"vdisk1\",\"n\":[1]}'",
                     "{\"execute\":\"x\",\"arguments\":{\"id\":\"vdisk1\",\"n\":[1]}}");
        request_case("x 'name=a b' url=http://h/p?a=b",
                     "{\"execute\":\"x\",\"arguments\":{\"name\":\"a b\",\"url\":\"http://h/p?a=b\"}}");
        request_case(
            "x 0x10=1 v=0x10 v2=1e3 v3=nan",
            "{\"execute\":\"x\",\"arguments\":{\"0x10\":1,\"v\":\"0x10\",\"v2\":1000,\"v3\":\"nan\"}}");
        /* errors name the offending word */
        request_case("x novalue", "argument 'novalue': expected key=value, key:=string or one JSON object");
        request_case("x =1", "argument '=1': expected key=value, key:=string or one JSON object");
        request_case("x a=1 a=2", "argument 'a=2': key 'a' given twice");
        request_case("x a=1 a.b=2", "argument 'a.b=2': 'a' is already set to a non-object");
        request_case("x a..b=1", "argument 'a..b=1': empty key component");
        request_case("x a.=1", "argument 'a.=1': empty key");
        request_case("x '{broken'", "arguments '{broken': not a valid JSON object");
        request_case("", "no command given");
        /* transactions */
        request_case("transaction( block-dirty-bitmap-add node=d1 name=b0 ; block-dirty-bitmap-clear node=d1 "
                     "name=b1 )",
                     "{\"execute\":\"transaction\",\"arguments\":{\"actions\":["
                     "{\"type\":\"block-dirty-bitmap-add\",\"data\":{\"node\":\"d1\",\"name\":\"b0\"}},"
                     "{\"type\":\"block-dirty-bitmap-clear\",\"data\":{\"node\":\"d1\",\"name\":\"b1\"}}]}}");
        request_case(
            "transaction( abort ; )",
            "{\"execute\":\"transaction\",\"arguments\":{\"actions\":[{\"type\":\"abort\",\"data\":{}}]}}");
        request_case("transaction( )", "transaction: no actions");
        request_case("transaction( a ; ; b )", "transaction: empty action (two ';' in a row?)");
        request_case("transaction( a x=1", "transaction: missing closing ')' (write it as a separate word)");
        request_case(
            "transaction( a bad )",
            "transaction action a: argument 'bad': expected key=value, key:=string or one JSON object");
        return test_exit();
}
