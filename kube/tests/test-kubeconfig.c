/* kubeconfig parsing: every supported form, and one bad config per field with the error naming it. */
#include "config.h"
#include "macro.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char dir[] = "/tmp/test-kubeconfig-XXXXXX";
static int failures;

static void write_file(const char *name, const char *text)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        assert(f);
        fputs(text, f);
        fclose(f);
}

/* A kubeconfig with one cluster/user/context; cluster and user bodies are YAML fragments. */
static void write_config(const char *cluster, const char *user)
{
        char text[4096];
        snprintf(text, sizeof(text),
                 "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                 "clusters:\n- name: k\n  cluster:\n%s\n"
                 "users:\n- name: u\n  user:\n%s\n"
                 "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: ns1}\n",
                 cluster, user);
        write_file("config", text);
}

static int load(kube_config *cfg, kv_error *err)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/config", dir);
        return kube_config_from_file(cfg, p, NULL, err);
}

static void expect_ok(const char *what, const char *cluster, const char *user)
{
        kube_config cfg;
        kv_error err = {0};
        write_config(cluster, user);
        if (load(&cfg, &err) < 0) {
                fprintf(stderr, "FAIL %s: unexpected error: %s\n", what, err.msg);
                failures++;
        }
        kube_config_free(&cfg);
}

static void expect_err(const char *what, const char *cluster, const char *user, const char *needle)
{
        kube_config cfg;
        kv_error err = {0};
        write_config(cluster, user);
        int r = load(&cfg, &err);
        if (r >= 0 || !strstr(err.msg, needle)) {
                fprintf(stderr, "FAIL %s: r=%d msg=\"%s\", wanted \"%s\"\n", what, r, err.msg, needle);
                failures++;
        }
        kube_config_free(&cfg);
}

#define SERVER "    server: https://127.0.0.1:6443"
/* "hello" in base64 stands in for PEM: parsing checks encoding, curl checks the PEM later */
#define B64 "aGVsbG8="

static void test_good(void)
{
        kube_config cfg;
        kv_error err = {0};
        write_file("ca.crt", "PEM");
        write_file("tok", "secret-token\n");
        write_file("c.crt", "PEM");
        write_file("c.key", "PEM");
        write_config(SERVER "/\n    certificate-authority: ca.crt", "    tokenFile: tok");
        assert(load(&cfg, &err) == 0);
        assert(!strcmp(cfg.server, "https://127.0.0.1:6443"));
        assert(!strcmp(cfg.namespace, "ns1"));
        assert(cfg.ca_file && strstr(cfg.ca_file, dir) && strstr(cfg.ca_file, "/ca.crt"));
        char *t = NULL;
        assert(kube_config_bearer(&cfg, &t, &err) == 0 && !strcmp(t, "secret-token"));
        free(t);
        write_file("tok", "rotated-token-longer\n"); /* a rotated token is picked up without restart */
        assert(kube_config_bearer(&cfg, &t, &err) == 0 && !strcmp(t, "rotated-token-longer"));
        free(t);
        kube_config_free(&cfg);

        write_config(SERVER "\n    certificate-authority-data: " B64,
                     "    client-certificate-data: " B64 "\n    client-key-data: " B64);
        assert(load(&cfg, &err) == 0);
        assert(cfg.ca_data_len == 5 && !memcmp(cfg.ca_data, "hello", 5));
        assert(cfg.cert_data && cfg.key_data_len == 5);
        kube_config_free(&cfg);

        expect_ok("insecure+token", SERVER "\n    insecure-skip-tls-verify: true", "    token: abc");
        expect_ok("client cert files", SERVER, "    client-certificate: c.crt\n    client-key: c.key");
        expect_ok("anonymous", SERVER, "    {}");

        /* plain http: credentials are dropped, as clientcmd does */
        write_config("    server: http://127.0.0.1:8080", "    token: abc");
        assert(load(&cfg, &err) == 0 && !cfg.token);
        kube_config_free(&cfg);

        /* JSON kubeconfigs and --context */
        write_file("config", "{\"clusters\":[{\"name\":\"a\",\"cluster\":{\"server\":\"https://a:1\"}},"
                             "{\"name\":\"b\",\"cluster\":{\"server\":\"https://b:2\"}}],"
                             "\"contexts\":[{\"name\":\"ca\",\"context\":{\"cluster\":\"a\"}},{\"name\":"
                             "\"cb\",\"context\":{\"cluster\":\"b\"}}],"
                             "\"current-context\":\"ca\"}");
        char p[256];
        snprintf(p, sizeof(p), "%s/config", dir);
        assert(kube_config_from_file(&cfg, p, "cb", &err) == 0 && !strcmp(cfg.server, "https://b:2"));
        assert(!strcmp(cfg.namespace, "default"));
        kube_config_free(&cfg);
        assert(kube_config_from_file(&cfg, p, "nope", &err) < 0 &&
               strstr(err.msg, "no context named \"nope\""));
        kube_config_free(&cfg);
}

static void test_bad(void)
{
        expect_err("bad base64", SERVER, "    client-certificate-data: " B64 "\n    client-key-data: '%%%'",
                   "users[0].user.client-key-data: invalid base64");
        expect_err("bad ca base64", SERVER "\n    certificate-authority-data: 'a'", "    {}",
                   "clusters[0].cluster.certificate-authority-data: invalid base64");
        expect_err("ca+insecure",
                   SERVER "\n    insecure-skip-tls-verify: true\n    certificate-authority-data: " B64,
                   "    {}", "insecure-skip-tls-verify: specifying a root certificates file");
        expect_err("no server", "    certificate-authority-data: " B64, "    {}",
                   "clusters[0].cluster.server: required");
        expect_err("bad scheme", "    server: ftp://x", "    {}",
                   "clusters[0].cluster.server: \"ftp://x\" is not");
        expect_err("missing ca file", SERVER "\n    certificate-authority: nope.crt", "    {}",
                   "clusters[0].cluster.certificate-authority:");
        expect_err("missing token file", SERVER, "    tokenFile: missing", "users[0].user.tokenFile:");
        expect_err("cert without key", SERVER, "    client-certificate-data: " B64,
                   "users[0].user.client-key: required with client-certificate");
        expect_err("token+basic", SERVER, "    token: a\n    username: b",
                   "users[0].user.username: cannot be combined");
        expect_err("exec", SERVER, "    exec: {command: x}", "users[0].user: exec and auth-provider");
        expect_err("non-string token", SERVER, "    token: [1]", "users[0].user.token: must be a string");
        expect_err("bad bool", SERVER "\n    insecure-skip-tls-verify: maybe", "    {}",
                   "clusters[0].cluster.insecure-skip-tls-verify: must be a boolean");
        write_file("config", "current-context: c\ncontexts:\n- name: c\n  context: {cluster: missing}\n");
        kube_config cfg;
        kv_error err = {0};
        assert(load(&cfg, &err) < 0 &&
               strstr(err.msg, "contexts[0].context.cluster: no cluster named \"missing\""));
        kube_config_free(&cfg);
        write_file("config", "clusters: []\n");
        assert(load(&cfg, &err) < 0 && strstr(err.msg, "current-context: not set"));
        kube_config_free(&cfg);
        write_file("config", "a: [\n");
        assert(load(&cfg, &err) < 0 && strstr(err.msg, "line"));
        kube_config_free(&cfg);
}

static void test_in_cluster(void)
{
        kube_config cfg;
        kv_error err = {0};
        write_file("token", "sa-token\n");
        write_file("namespace", "kvlite\n");
        setenv("KVLITE_SA_DIR", dir, 1);
        unsetenv("KUBERNETES_SERVICE_HOST");
        assert(kube_config_in_cluster(&cfg, &err) < 0 && strstr(err.msg, "KUBERNETES_SERVICE_HOST"));
        kube_config_free(&cfg);
        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        assert(kube_config_in_cluster(&cfg, &err) == 0);
        assert(!strcmp(cfg.server, "https://[fd00::1]:443") && !strcmp(cfg.namespace, "kvlite"));
        char *t = NULL;
        assert(kube_config_bearer(&cfg, &t, &err) == 0 && !strcmp(t, "sa-token"));
        free(t);
        kube_config_free(&cfg);
}

int main(void)
{
        assert(mkdtemp(dir));
        test_good();
        test_bad();
        test_in_cluster();
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cleanup of %s failed\n", dir);
        if (failures)
                return 1;
        printf("kubeconfig: ok\n");
        return 0;
}
