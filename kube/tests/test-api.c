/* REST helpers without a server: URL paths and query escaping, Status → kv_error mapping, backoff range. */
#include "api.h"
#include "macro.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static void test_paths(void)
{
        _cleanup_free_ char *a = kube_path(&kube_vmi, "ns1", "x", NULL);
        assert(!strcmp(a, "/apis/kubevirt.io/v1/namespaces/ns1/virtualmachineinstances/x"));
        _cleanup_free_ char *b = kube_path(&kube_pod, NULL, NULL, NULL);
        assert(!strcmp(b, "/api/v1/pods"));
        _cleanup_free_ char *c = kube_path(&kube_vm, "d", "v", "status");
        assert(!strcmp(c, "/apis/kubevirt.io/v1/namespaces/d/virtualmachines/v/status"));
        _cleanup_free_ char *d = kube_path(&kube_pod, "a/b", "c d", NULL); /* never a path injection */
        assert(!strcmp(d, "/api/v1/namespaces/a%2Fb/pods/c%20d"));
        _cleanup_free_ char *q = kube_path_query(b, "labelSelector", "kubevirt.io/created-by=u1,x in (a,b)",
                                                 "skip", NULL, "limit", "500", NULL);
        assert(!strcmp(
            q, "/api/v1/pods?labelSelector=kubevirt.io%2Fcreated-by%3Du1%2Cx%20in%20%28a%2Cb%29&limit=500"));
        _cleanup_free_ char *q2 = kube_path_query(q, "watch", "true", NULL);
        assert(strstr(q2, "&watch=true"));
}

static int status_code(const char *json, long http, kv_error *err)
{
        cJSON *st = json ? cJSON_Parse(json) : NULL;
        int r = kube_status_error(st, http, "GET /x", err);
        cJSON_Delete(st);
        return r;
}

static void test_status(void)
{
        kv_error err = {0};
        assert(status_code(
                   "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"vmis \\\"x\\\" not found\","
                   "\"code\":404}",
                   404, &err) == -KUBE_ENOTFOUND);
        assert(!strcmp(err.msg, "GET /x: 404 NotFound: vmis \"x\" not found"));
        assert(status_code("{\"reason\":\"AlreadyExists\",\"code\":409}", 409, &err) == -KUBE_EEXISTS);
        assert(status_code("{\"reason\":\"Conflict\",\"code\":409}", 409, &err) == -KUBE_ECONFLICT);
        assert(status_code("{\"reason\":\"Expired\",\"code\":410}", 200, &err) == -KUBE_EEXPIRED);
        assert(status_code("{\"reason\":\"Invalid\",\"code\":422}", 422, &err) == -KUBE_EINVALID);
        assert(status_code(NULL, 503, &err) == -KUBE_ESERVER && strstr(err.msg, "503 Error: (no message)"));
        assert(status_code("{\"reason\":\"TooManyRequests\"}", 429, &err) == -KUBE_ETHROTTLED);
        assert(status_code("{}", 401, &err) == -KUBE_EUNAUTH);
}

static void test_backoff(void)
{
        for (unsigned a = 0; a < 20; a++) {
                unsigned d = kube_backoff_ms(50, 2000, a);
                unsigned base = 50u << (a < 6 ? a : 6);
                if (base > 2000)
                        base = 2000;
                assert(d >= base / 2 && d < base + base / 2);
        }
}

static void test_accessors(void)
{
        cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"n\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"x\":1}}");
        assert(!strcmp(kube_str(o, "metadata.name"), "n"));
        assert(kube_str(o, "spec.x") == NULL && kube_obj(o, "spec.x"));
        assert(kube_str(o, "missing.deeper") == NULL && kube_str(NULL, "a") == NULL);
        cJSON_Delete(o);
}

static void test_merge_patch_diff(void)
{
        cJSON *from = cJSON_Parse(
                  "{\"a\":1,\"gone\":2,\"o\":{\"k\":1,\"x\":2},\"arr\":[1,2],\"same\":{\"q\":1}}"),
              *to = cJSON_Parse(
                  "{\"a\":3,\"o\":{\"k\":1},\"arr\":[1],\"new\":{\"n\":true},\"same\":{\"q\":1}}");
        cJSON *p = kube_merge_patch_diff(from, to);
        char *s = cJSON_PrintUnformatted(p);
        assert(!strcmp(s, "{\"gone\":null,\"a\":3,\"o\":{\"x\":null},\"arr\":[1],\"new\":{\"n\":true}}"));
        free(s);
        cJSON_Delete(p);
        p = kube_merge_patch_diff(NULL, to); /* nothing before: the whole document */
        assert(cJSON_Compare(p, to, true));
        cJSON_Delete(p);
        cJSON_Delete(from);
        cJSON_Delete(to);
}

int main(void)
{
        test_merge_patch_diff();
        test_paths();
        test_status();
        test_backoff();
        test_accessors();
        printf("api: ok\n");
        return 0;
}
