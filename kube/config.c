/* kubeconfig and in-cluster configuration. Every failure names the kubeconfig field it comes from, e.g.
 * "kubeconfig users[0].user.client-key-data: invalid base64". */
#include "config.h"
#include "base64.h"
#include "macro.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "yamljson.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static int read_file(const char *path, char **out, size_t *outlen, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return kv_error_errno(err, errno, "open %s", path);
        size_t cap = 4096, n = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return kv_error_errno(err, ENOMEM, "read %s", path);
        for (;;) {
                if (n + 1 >= cap) {
                        char *nb = realloc(buf, cap *= 2);
                        if (!nb)
                                return kv_error_errno(err, ENOMEM, "read %s", path);
                        buf = nb;
                }
                size_t r = fread(buf + n, 1, cap - n - 1, f);
                n += r;
                if (r == 0)
                        break;
        }
        if (ferror(f))
                return kv_error_errno(err, EIO, "read %s", path);
        buf[n] = '\0';
        *out = TAKE_PTR(buf);
        if (outlen)
                *outlen = n;
        return 0;
}

static void strip_trailing_space(char *s)
{
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
                s[--n] = '\0';
}

/* A path from the kubeconfig, made absolute against the kubeconfig's directory. */
static char *resolve_path(const char *dir, const char *p)
{
        char *out = NULL;
        if (p[0] == '/' || !dir)
                return strdup(p);
        if (asprintf(&out, "%s/%s", dir, p) < 0)
                return NULL;
        return out;
}

/* Looks up a named entry (clusters[]/users[]/contexts[]) and returns its inner object and its index. */
static const cJSON *find_named(const cJSON *doc, const char *list, const char *inner, const char *name,
                               int *index)
{
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, list), *it;
        int i = 0;
        cJSON_ArrayForEach(it, arr)
        {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
                if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
                        *index = i;
                        return cJSON_GetObjectItemCaseSensitive(it, inner);
                }
                i++;
        }
        return NULL;
}

/* Reads an optional string field; a present non-string is an error naming the field. */
static int opt_string(const cJSON *obj, const char *key, const char *where, const char **out, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        *out = NULL;
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsString(v))
                return kv_error_set(err, EINVAL, "kubeconfig %s.%s: must be a string", where, key);
        *out = v->valuestring;
        return 0;
}

static int opt_bool(const cJSON *obj, const char *key, const char *where, bool *out, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (cJSON_IsBool(v)) {
                *out = cJSON_IsTrue(v);
                return 0;
        }
        if (cJSON_IsString(v) && (!strcmp(v->valuestring, "true") || !strcmp(v->valuestring, "false"))) {
                *out = !strcmp(v->valuestring, "true");
                return 0;
        }
        return kv_error_set(err, EINVAL, "kubeconfig %s.%s: must be a boolean", where, key);
}

static int opt_data(const cJSON *obj, const char *key, const char *where, char **out, size_t *len,
                    kv_error *err)
{
        const char *s;
        int r = opt_string(obj, key, where, &s, err);
        if (r < 0 || !s)
                return r;
        r = base64_decode(s, 0, out, len);
        if (r < 0)
                return kv_error_set(err, -r, "kubeconfig %s.%s: invalid base64", where, key);
        return 0;
}

static int opt_path(const cJSON *obj, const char *key, const char *where, const char *dir, char **out,
                    kv_error *err)
{
        const char *s;
        int r = opt_string(obj, key, where, &s, err);
        if (r < 0 || !s)
                return r;
        *out = resolve_path(dir, s);
        if (!*out)
                return kv_error_errno(err, ENOMEM, "kubeconfig %s.%s", where, key);
        if (access(*out, R_OK) < 0)
                return kv_error_errno(err, errno, "kubeconfig %s.%s: %s", where, key, *out);
        return 0;
}

static int dup_opt(const char *s, char **out, kv_error *err)
{
        if (!s)
                return 0;
        *out = strdup(s);
        return *out ? 0 : kv_error_errno(err, ENOMEM, "kubeconfig");
}

static int parse_cluster(kube_config *cfg, const cJSON *c, const char *where, const char *dir, kv_error *err)
{
        const char *server, *tls_name;
        int r;
        if (!cJSON_IsObject(c))
                return kv_error_set(err, EINVAL, "kubeconfig %s: missing or not an object", where);
        if ((r = opt_string(c, "server", where, &server, err)) < 0)
                return r;
        if (!server || !*server)
                return kv_error_set(err, EINVAL, "kubeconfig %s.server: required", where);
        if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
                return kv_error_set(err, EINVAL, "kubeconfig %s.server: \"%s\" is not an http(s):// URL",
                                    where, server);
        if ((r = dup_opt(server, &cfg->server, err)) < 0)
                return r;
        size_t n = strlen(cfg->server);
        while (n && cfg->server[n - 1] == '/')
                cfg->server[--n] = '\0';
        if ((r = opt_path(c, "certificate-authority", where, dir, &cfg->ca_file, err)) < 0 ||
            (r = opt_data(c, "certificate-authority-data", where, &cfg->ca_data, &cfg->ca_data_len, err)) <
                0 ||
            (r = opt_bool(c, "insecure-skip-tls-verify", where, &cfg->insecure, err)) < 0 ||
            (r = opt_string(c, "tls-server-name", where, &tls_name, err)) < 0 ||
            (r = dup_opt(tls_name, &cfg->tls_server_name, err)) < 0)
                return r;
        if (cfg->insecure && (cfg->ca_file || cfg->ca_data))
                return kv_error_set(
                    err, EINVAL,
                    "kubeconfig %s.insecure-skip-tls-verify: specifying a root certificates file with "
                    "the insecure flag is not allowed",
                    where);
        return 0;
}

static int parse_user(kube_config *cfg, const cJSON *u, const char *where, const char *dir, kv_error *err)
{
        const char *token, *user, *pass;
        int r;
        if (!u || cJSON_IsNull(u))
                return 0; /* anonymous */
        if (!cJSON_IsObject(u))
                return kv_error_set(err, EINVAL, "kubeconfig %s: not an object", where);
        if (cJSON_GetObjectItemCaseSensitive(u, "exec") ||
            cJSON_GetObjectItemCaseSensitive(u, "auth-provider"))
                return kv_error_set(err, ENOTSUP,
                                    "kubeconfig %s: exec and auth-provider credentials are not supported",
                                    where);
        if ((r = opt_string(u, "token", where, &token, err)) < 0 ||
            (r = dup_opt(token, &cfg->token, err)) < 0 ||
            (r = opt_path(u, "tokenFile", where, dir, &cfg->token_file, err)) < 0 ||
            (r = opt_path(u, "client-certificate", where, dir, &cfg->cert_file, err)) < 0 ||
            (r = opt_path(u, "client-key", where, dir, &cfg->key_file, err)) < 0 ||
            (r = opt_data(u, "client-certificate-data", where, &cfg->cert_data, &cfg->cert_data_len, err)) <
                0 ||
            (r = opt_data(u, "client-key-data", where, &cfg->key_data, &cfg->key_data_len, err)) < 0 ||
            (r = opt_string(u, "username", where, &user, err)) < 0 ||
            (r = opt_string(u, "password", where, &pass, err)) < 0 ||
            (r = dup_opt(user, &cfg->username, err)) < 0 || (r = dup_opt(pass, &cfg->password, err)) < 0)
                return r;
        bool has_cert = cfg->cert_file || cfg->cert_data, has_key = cfg->key_file || cfg->key_data;
        if (has_cert != has_key)
                return kv_error_set(err, EINVAL, "kubeconfig %s.%s: required with %s", where,
                                    has_cert ? "client-key" : "client-certificate",
                                    has_cert ? "client-certificate" : "client-key");
        if (cfg->cert_file && cfg->cert_data)
                return kv_error_set(
                    err, EINVAL,
                    "kubeconfig %s.client-certificate-data: cannot be combined with client-certificate",
                    where);
        if (cfg->key_file && cfg->key_data)
                return kv_error_set(
                    err, EINVAL, "kubeconfig %s.client-key-data: cannot be combined with client-key", where);
        if ((cfg->token || cfg->token_file) && cfg->username)
                return kv_error_set(err, EINVAL, "kubeconfig %s.username: cannot be combined with a token",
                                    where);
        if (cfg->token_file && !cfg->token) { /* read once now so a bad file is reported at startup */
                _cleanup_free_ char *t = NULL;
                if ((r = kube_config_bearer(cfg, &t, err)) < 0)
                        return kv_error_wrap(err, "kubeconfig %s.tokenFile", where);
        }
        return 0;
}

static void drop_credentials(kube_config *cfg)
{
        /* clientcmd sends no credentials over plain http; neither do we (see the test-server notes §0.3) */
        free(cfg->token), cfg->token = NULL;
        free(cfg->token_file), cfg->token_file = NULL;
        free(cfg->username), cfg->username = NULL;
        free(cfg->password), cfg->password = NULL;
}

static int config_init(kube_config *cfg)
{
        memset(cfg, 0, sizeof(*cfg));
        return -pthread_mutex_init(&cfg->token_lock, NULL);
}

int kube_config_from_json(kube_config *cfg, const cJSON *doc, const char *dir, const char *context,
                          kv_error *err)
{
        char where[128];
        int r, ci = 0, ui = 0, xi = 0;
        const char *ctx_name = context, *cluster_name, *user_name, *ns;

        config_init(cfg);
        if (!cJSON_IsObject(doc))
                return kv_error_set(err, EINVAL, "kubeconfig: not a mapping");
        if (!ctx_name) {
                if ((r = opt_string(doc, "current-context", "", &ctx_name, err)) < 0)
                        return kv_error_set(err, EINVAL, "kubeconfig current-context: must be a string");
                if (!ctx_name || !*ctx_name)
                        return kv_error_set(err, EINVAL,
                                            "kubeconfig current-context: not set (pass --context)");
        }
        const cJSON *ctx = find_named(doc, "contexts", "context", ctx_name, &xi);
        if (!ctx)
                return kv_error_set(err, ENOENT, "kubeconfig contexts: no context named \"%s\"", ctx_name);
        snprintf(where, sizeof(where), "contexts[%d].context", xi);
        if ((r = opt_string(ctx, "cluster", where, &cluster_name, err)) < 0 ||
            (r = opt_string(ctx, "user", where, &user_name, err)) < 0 ||
            (r = opt_string(ctx, "namespace", where, &ns, err)) < 0)
                return r;
        if (!cluster_name)
                return kv_error_set(err, EINVAL, "kubeconfig %s.cluster: required", where);
        const cJSON *cluster = find_named(doc, "clusters", "cluster", cluster_name, &ci);
        if (!cluster)
                return kv_error_set(err, ENOENT, "kubeconfig %s.cluster: no cluster named \"%s\"", where,
                                    cluster_name);
        const cJSON *user = NULL;
        if (user_name && *user_name) {
                user = find_named(doc, "users", "user", user_name, &ui);
                if (!user)
                        return kv_error_set(err, ENOENT, "kubeconfig %s.user: no user named \"%s\"", where,
                                            user_name);
        }
        if ((r = dup_opt(ns && *ns ? ns : "default", &cfg->namespace, err)) < 0)
                return r;
        snprintf(where, sizeof(where), "clusters[%d].cluster", ci);
        if ((r = parse_cluster(cfg, cluster, where, dir, err)) < 0)
                return r;
        snprintf(where, sizeof(where), "users[%d].user", ui);
        if ((r = parse_user(cfg, user, where, dir, err)) < 0)
                return r;
        if (!strncmp(cfg->server, "http://", 7))
                drop_credentials(cfg);
        return 0;
}

static cJSON *parse_document(const char *text, size_t len, const char *path, kv_error *err)
{
        cJSON *doc = NULL;
        if (yaml_or_json_parse(text, len, &doc, err) < 0) {
                kv_error_wrap(err, "kubeconfig %s", path);
                return NULL;
        }
        return doc;
}

int kube_config_from_file(kube_config *cfg, const char *path, const char *context, kv_error *err)
{
        _cleanup_free_ char *text = NULL, *pathcopy = strdup(path);
        size_t len;
        int r;
        if (!pathcopy)
                return kv_error_errno(err, ENOMEM, "kubeconfig");
        if ((r = read_file(path, &text, &len, err)) < 0) {
                config_init(cfg);
                return kv_error_wrap(err, "kubeconfig");
        }
        cJSON *doc = parse_document(text, len, path, err);
        if (!doc) {
                config_init(cfg);
                return -(err && err->code ? err->code : EINVAL);
        }
        r = kube_config_from_json(cfg, doc, dirname(pathcopy), context, err);
        cJSON_Delete(doc);
        if (r < 0)
                kv_error_wrap(err, "%s", path);
        return r;
}

int kube_config_from_default(kube_config *cfg, const char *context, kv_error *err)
{
        _cleanup_free_ char *path = NULL;
        const char *env = getenv("KUBECONFIG");
        if (env && *env) {
                const char *colon = strchr(env, ':');
                path = colon ? strndup(env, colon - env) : strdup(env);
        } else {
                const char *home = getenv("HOME");
                if (asprintf(&path, "%s/.kube/config", home ? home : "/root") < 0)
                        path = NULL;
        }
        if (!path)
                return kv_error_errno(err, ENOMEM, "kubeconfig");
        return kube_config_from_file(cfg, path, context, err);
}

int kube_config_in_cluster(kube_config *cfg, kv_error *err)
{
        const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
        const char *dir = getenv("KVLITE_SA_DIR");
        int r;
        config_init(cfg);
        if (!dir)
                dir = SA_DIR;
        if (!host || !*host || !port || !*port)
                return kv_error_set(
                    err, ENOENT,
                    "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
        bool v6 = strchr(host, ':') != NULL;
        if (asprintf(&cfg->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) < 0 ||
            asprintf(&cfg->token_file, "%s/token", dir) < 0 || asprintf(&cfg->ca_file, "%s/ca.crt", dir) < 0)
                return kv_error_errno(err, ENOMEM, "in-cluster");
        if (access(cfg->ca_file, R_OK) < 0)
                return kv_error_errno(err, errno, "in-cluster: %s", cfg->ca_file);
        _cleanup_free_ char *t = NULL, *nspath = NULL, *ns = NULL;
        if ((r = kube_config_bearer(cfg, &t, err)) < 0)
                return kv_error_wrap(err, "in-cluster");
        if (asprintf(&nspath, "%s/namespace", dir) < 0)
                return kv_error_errno(err, ENOMEM, "in-cluster");
        if (read_file(nspath, &ns, NULL, NULL) == 0) {
                strip_trailing_space(ns);
                cfg->namespace = TAKE_PTR(ns);
        } else
                cfg->namespace = strdup("default");
        return cfg->namespace ? 0 : kv_error_errno(err, ENOMEM, "in-cluster");
}

/* Re-reads token_file when its identity, size or mtime changed, so rotated tokens are picked up at once
 * without a read per request. */
static int refresh_file_token(kube_config *cfg, kv_error *err)
{
        struct stat st;
        if (stat(cfg->token_file, &st) < 0)
                return kv_error_errno(err, errno, "token file %s", cfg->token_file);
        if (cfg->file_token && st.st_mtime == cfg->token_mtime && st.st_size == cfg->token_size &&
            st.st_ino == cfg->token_ino)
                return 0;
        char *t;
        int r = read_file(cfg->token_file, &t, NULL, err);
        if (r < 0)
                return r;
        strip_trailing_space(t);
        if (!*t) {
                free(t);
                return kv_error_set(err, EINVAL, "token file %s: empty", cfg->token_file);
        }
        free(cfg->file_token);
        cfg->file_token = t;
        cfg->token_mtime = st.st_mtime;
        cfg->token_size = st.st_size;
        cfg->token_ino = st.st_ino;
        return 0;
}

int kube_config_bearer(kube_config *cfg, char **token, kv_error *err)
{
        int r = 0;
        *token = NULL;
        if (cfg->token) {
                *token = strdup(cfg->token);
        } else if (cfg->token_file) {
                pthread_mutex_lock(&cfg->token_lock);
                r = refresh_file_token(cfg, err);
                if (r == 0)
                        *token = strdup(cfg->file_token);
                pthread_mutex_unlock(&cfg->token_lock);
                if (r < 0)
                        return r;
        } else
                return 0;
        return *token ? 0 : kv_error_errno(err, ENOMEM, "token");
}

void kube_config_free(kube_config *cfg)
{
        char **fields[] = {&cfg->server,          &cfg->namespace, &cfg->ca_file,    &cfg->ca_data,
                           &cfg->tls_server_name, &cfg->token,     &cfg->token_file, &cfg->cert_file,
                           &cfg->key_file,        &cfg->cert_data, &cfg->key_data,   &cfg->username,
                           &cfg->password,        &cfg->file_token};
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                free(*fields[i]);
                *fields[i] = NULL;
        }
        pthread_mutex_destroy(&cfg->token_lock);
}

int kube_config_load(kube_config *cfg, const char *kubeconfig, const char *context, bool in_cluster,
                     kv_error *err)
{
        if (in_cluster)
                return kube_config_in_cluster(cfg, err);
        if (kubeconfig)
                return kube_config_from_file(cfg, kubeconfig, context, err);
        if (getenv("KUBERNETES_SERVICE_HOST") && !context)
                return kube_config_in_cluster(cfg, err);
        return kube_config_from_default(cfg, context, err);
}
