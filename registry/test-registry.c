/* Unit tests of the pure parsers: references, WWW-Authenticate, manifests, the registry configuration and
 * archive path checks. */
#include <string.h>

#include "extract.h"
#include "manifest.h"
#include "reference.h"
#include "regconfig.h"
#include "test-util.h"
#include "wwwauth.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check_ref(const char *in, const char *host, const char *repo, const char *tag, const char *digest)
{
        kvreg_ref r;
        kv_error err = {0};
        if (kvreg_ref_parse(in, &r, &err) < 0) {
                fprintf(stderr, "%s: %s\n", in, err.msg);
                test_failures++;
                return;
        }
        CHECK_STR(r.host, host);
        CHECK_STR(r.repo, repo);
        CHECK_STR(r.tag ? r.tag : "-", tag);
        CHECK_STR(r.digest ? r.digest : "-", digest);
        kvreg_ref_done(&r);
}

static void test_references(void)
{
        check_ref("docker://127.0.0.1:5000/vms/guest:1", "127.0.0.1:5000", "vms/guest", "1", "-");
        check_ref("debian", "docker.io", "library/debian", "latest", "-");
        check_ref("docker://quay.io/kubevirt/fedora@sha256:" D64, "quay.io", "kubevirt/fedora", "-",
                  "sha256:" D64);
        check_ref("localhost/x:v1.2", "localhost", "x", "v1.2", "-");
        check_ref("user/img:tag", "docker.io", "user/img", "tag", "-");
        check_ref("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", "-");
        const char *bad[] = {"",     "docker://",    "http://x/y",   "Host/UPPER", "x:tag with space",
                             "a//b", "host:99999/x", "x@sha256:abc", "x:-tag",     "reg.io/-a"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                kvreg_ref r;
                kv_error err = {0};
                CHECK(kvreg_ref_parse(bad[i], &r, &err) < 0);
                CHECK(err.msg[0] != '\0');
        }
}

static void test_wwwauth(void)
{
        kvreg_challenge c;
        kv_error err = {0};
        CHECK(kvreg_challenge_parse(
                  "Bearer realm=\"https://auth.example/token\",service=\"reg\",scope=\"repository:a/b:pull\"",
                  &c, &err) == 0);
        CHECK(c.scheme == KVREG_AUTH_BEARER);
        CHECK_STR(c.realm, "https://auth.example/token");
        CHECK_STR(c.service, "reg");
        CHECK_STR(c.scope, "repository:a/b:pull");
        kvreg_challenge_done(&c);
        CHECK(kvreg_challenge_parse("Negotiate abc==, Basic realm=\"Registry \\\"x\\\"\"", &c, &err) == 0);
        CHECK(c.scheme == KVREG_AUTH_BASIC);
        CHECK_STR(c.realm, "Registry \"x\"");
        kvreg_challenge_done(&c);
        CHECK(kvreg_challenge_parse("Bearer service=x", &c, &err) < 0);
        CHECK(kvreg_challenge_parse("Bearer realm=\"unterminated", &c, &err) < 0);
        CHECK(kvreg_challenge_parse("", &c, &err) < 0);
}

static void test_manifests(void)
{
        kvreg_manifest m;
        kv_error err = {0};
        const char *img = "{\"schemaVersion\":2,\"mediaType\":\"" KVREG_MT_OCI_MANIFEST "\","
                          "\"config\":{\"mediaType\":\"c\",\"digest\":\"sha256:" D64 "\",\"size\":10},"
                          "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                          "\"digest\":\"sha256:" D64 "\",\"size\":1234}]}";
        CHECK(kvreg_manifest_parse(img, strlen(img), NULL, "amd64", &m, &err) == 0);
        CHECK(m.kind == KVREG_MANIFEST_IMAGE && m.n_layers == 1 && kvreg_manifest_layers_size(&m) == 1234);
        kvreg_manifest_done(&m);
        const char *idx = "{\"schemaVersion\":2,\"manifests\":["
                          "{\"digest\":\"sha256:" D64
                          "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
                          "{\"digest\":\"sha256:" D64
                          "\",\"size\":2,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
        CHECK(kvreg_manifest_parse(idx, strlen(idx), KVREG_MT_DOCKER_LIST, "amd64", &m, &err) == 0);
        CHECK(m.kind == KVREG_MANIFEST_INDEX && m.platform.size == 2);
        kvreg_manifest_done(&m);
        CHECK(kvreg_manifest_parse(idx, strlen(idx), KVREG_MT_OCI_INDEX, "s390x", &m, &err) < 0);
        const char *v1 = "{\"schemaVersion\":1,\"fsLayers\":[]}";
        CHECK(kvreg_manifest_parse(v1, strlen(v1), NULL, "amd64", &m, &err) < 0);
        const char *baddigest =
            "{\"schemaVersion\":2,\"config\":{\"digest\":\"md5:x\",\"size\":1},\"layers\":[]}";
        CHECK(kvreg_manifest_parse(baddigest, strlen(baddigest), NULL, "amd64", &m, &err) < 0);
}

static void test_config(void)
{
        const char *yaml =
            "connectTimeoutSeconds: 1.5\n"
            "registries:\n"
            "- prefix: vms.example\n"
            "  mirrors:\n"
            "  - {location: '127.0.0.1:5001', plainHTTP: true}\n"
            "  - {location: '127.0.0.1:5003/mirror', caFile: /ca.pem, username: u, password: p}\n"
            "- prefix: vms.example/special\n"
            "  mirrors: [{location: 'special.example/x'}]\n";
        kvreg_config c;
        kv_error err = {0};
        CHECK(kvreg_config_parse(yaml, strlen(yaml), &c, &err) == 0);
        CHECK(c.connect_timeout_ms == 1500 && c.n_rules == 2);
        kvreg_ref ref;
        CHECK(kvreg_ref_parse("vms.example/guests/a:1", &ref, &err) == 0);
        kvreg_endpoint *e = NULL;
        size_t n = 0;
        CHECK(kvreg_config_endpoints(&c, &ref, &e, &n, &err) == 0);
        CHECK(n == 2);
        if (n == 2) {
                CHECK_STR(e[0].base_url, "http://127.0.0.1:5001");
                CHECK_STR(e[0].repo, "guests/a");
                CHECK_STR(e[1].base_url, "https://127.0.0.1:5003");
                CHECK_STR(e[1].repo, "mirror/guests/a");
                CHECK_STR(e[1].mirror->username, "u");
        }
        kvreg_endpoints_free(e, n);
        kvreg_ref_done(&ref);
        CHECK(kvreg_ref_parse("vms.example/special/b", &ref, &err) == 0);
        CHECK(kvreg_config_endpoints(&c, &ref, &e, &n, &err) == 0);
        CHECK(n == 1 && !strcmp(e[0].base_url, "https://special.example") && !strcmp(e[0].repo, "x/b"));
        kvreg_endpoints_free(e, n);
        kvreg_ref_done(&ref);
        CHECK(kvreg_ref_parse("vms.examplex/a", &ref, &err) == 0); /* not a component-boundary match */
        CHECK(kvreg_config_endpoints(&c, &ref, &e, &n, &err) == 0);
        CHECK(n == 1 && !strcmp(e[0].base_url, "https://vms.examplex"));
        kvreg_endpoints_free(e, n);
        kvreg_ref_done(&ref);
        kvreg_config_done(&c);
        const char *bad[] = {"registries: 3", "registries: [{prefix: x}]",
                             "registries: [{prefix: x, mirrors: [{location: 'http://h'}]}]",
                             "registries: [{prefix: x, mirrors: [{location: h, username: u}]}]",
                             "connectTimeoutSeconds: -1"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                err = (kv_error){0};
                CHECK(kvreg_config_parse(bad[i], strlen(bad[i]), &c, &err) < 0);
                CHECK(err.msg[0] != '\0');
        }
}

static void test_paths(void)
{
        CHECK(kvreg_path_check("disk/disk.qcow2", NULL) == 0);
        CHECK(kvreg_path_check("./disk/a..b", NULL) == 0);
        CHECK(kvreg_path_check("/etc/passwd", NULL) < 0);
        CHECK(kvreg_path_check("disk/../../x", NULL) < 0);
        CHECK(kvreg_path_check("..", NULL) < 0);
}

int main(void)
{
        test_references();
        test_wwwauth();
        test_manifests();
        test_config();
        test_paths();
        return test_result("test-registry");
}
