/* Registry configuration file: parsing (via yamljson) and prefix matching. */
#include "regconfig.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "yamljson.h"

void kvreg_config_init(kvreg_config *c)
{
        *c = (kvreg_config){.connect_timeout_ms = 3000, .low_speed_time_s = 10, .response_timeout_ms = 1000};
}

static void mirror_done(kvreg_mirror *m)
{
        free(m->location);
        free(m->ca_file);
        free(m->username);
        free(m->password);
}

void kvreg_config_done(kvreg_config *c)
{
        for (size_t i = 0; i < c->n_rules; i++) {
                for (size_t j = 0; j < c->rules[i].n_mirrors; j++)
                        mirror_done(&c->rules[i].mirrors[j]);
                free(c->rules[i].mirrors);
                free(c->rules[i].prefix);
        }
        free(c->rules);
        mirror_done(&c->source);
        kvreg_config_init(c);
}

static int dup_opt(const char *s, char **out)
{
        *out = s ? strdup(s) : NULL;
        return !s || *out ? 0 : -ENOMEM;
}

int kvreg_config_set_source(kvreg_config *c, const char *username, const char *password, const char *ca_file,
                            bool insecure)
{
        mirror_done(&c->source);
        c->source = (kvreg_mirror){.insecure = insecure};
        if (dup_opt(username, &c->source.username) < 0 || dup_opt(password, &c->source.password) < 0 ||
            dup_opt(ca_file, &c->source.ca_file) < 0)
                return -ENOMEM;
        return 0;
}

static int get_str(const cJSON *o, const char *key, char **out, const char *where, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return 0;
        if (!cJSON_IsString(v))
                return kv_error_set(err, EINVAL, "%s: %s must be a string", where, key);
        *out = strdup(v->valuestring);
        return *out ? 0 : -ENOMEM;
}

static int get_bool(const cJSON *o, const char *key, bool *out, const char *where, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return 0;
        if (!cJSON_IsBool(v))
                return kv_error_set(err, EINVAL, "%s: %s must be true or false", where, key);
        *out = cJSON_IsTrue(v);
        return 0;
}

static int read_file(const char *path, char **out, size_t *len, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return kv_error_errno(err, errno, "open %s", path);
        size_t cap = 4096, n = 0;
        _cleanup_free_ char *buf = malloc(cap);
        for (;;) {
                if (!buf)
                        return kv_error_set(err, ENOMEM, "out of memory");
                n += fread(buf + n, 1, cap - n - 1, f);
                if (n < cap - 1)
                        break;
                if (cap > (1 << 20))
                        return kv_error_set(err, EFBIG, "%s: larger than 1 MiB", path);
                cap *= 2;
                char *nb = realloc(buf, cap);
                if (!nb)
                        return kv_error_set(err, ENOMEM, "out of memory");
                buf = nb;
        }
        if (ferror(f))
                return kv_error_errno(err, EIO, "read %s", path);
        buf[n] = '\0';
        *len = n;
        *out = TAKE_PTR(buf);
        return 0;
}

static int mirror_parse(const cJSON *j, kvreg_mirror *m, const char *where, kv_error *err)
{
        if (!cJSON_IsObject(j))
                return kv_error_set(err, EINVAL, "%s: not an object", where);
        int r;
        if ((r = get_str(j, "location", &m->location, where, err)) < 0 ||
            (r = get_str(j, "caFile", &m->ca_file, where, err)) < 0 ||
            (r = get_str(j, "username", &m->username, where, err)) < 0 ||
            (r = get_str(j, "password", &m->password, where, err)) < 0 ||
            (r = get_bool(j, "plainHTTP", &m->plain_http, where, err)) < 0 ||
            (r = get_bool(j, "insecureSkipVerify", &m->insecure, where, err)) < 0)
                return r;
        _cleanup_free_ char *pw_file = NULL;
        if ((r = get_str(j, "passwordFile", &pw_file, where, err)) < 0)
                return r;
        if (pw_file && !m->password) {
                size_t len;
                if ((r = read_file(pw_file, &m->password, &len, err)) < 0)
                        return kv_error_wrap(err, "%s: passwordFile", where);
                m->password[strcspn(m->password, "\r\n")] = '\0';
        }
        if (!m->location || !*m->location || strstr(m->location, "://"))
                return kv_error_set(
                    err, EINVAL, "%s: location must be host[:port][/path] (use plainHTTP for http)", where);
        if (!!m->username != !!m->password)
                return kv_error_set(err, EINVAL, "%s: username and password go together", where);
        return 0;
}

static int rule_parse(const cJSON *j, kvreg_rule *rule, size_t idx, kv_error *err)
{
        char where[64];
        snprintf(where, sizeof(where), "registries[%zu]", idx);
        int r = get_str(j, "prefix", &rule->prefix, where, err);
        if (r < 0)
                return r;
        if (!rule->prefix || !*rule->prefix)
                return kv_error_set(err, EINVAL, "%s: prefix is required", where);
        const cJSON *mirrors = cJSON_GetObjectItemCaseSensitive(j, "mirrors");
        if (!cJSON_IsArray(mirrors) || cJSON_GetArraySize(mirrors) == 0)
                return kv_error_set(err, EINVAL, "%s: mirrors must be a non-empty list", where);
        rule->mirrors = calloc(cJSON_GetArraySize(mirrors), sizeof(*rule->mirrors));
        if (!rule->mirrors)
                return -ENOMEM;
        const cJSON *m;
        cJSON_ArrayForEach(m, mirrors)
        {
                char mwhere[96];
                snprintf(mwhere, sizeof(mwhere), "%s.mirrors[%zu]", where, rule->n_mirrors);
                r = mirror_parse(m, &rule->mirrors[rule->n_mirrors++], mwhere, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int get_timeout(const cJSON *root, const char *key, long scale, long *out, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!v)
                return 0;
        if (!cJSON_IsNumber(v) || v->valuedouble <= 0 || v->valuedouble > 3600)
                return kv_error_set(err, EINVAL, "%s must be a number of seconds in (0, 3600]", key);
        *out = (long)(v->valuedouble * scale);
        if (*out < 1)
                *out = 1;
        return 0;
}

int kvreg_config_parse(const char *text, size_t len, kvreg_config *c, kv_error *err)
{
        kvreg_config_init(c);
        cJSON *root = NULL;
        int r = yaml_or_json_parse(text, len, &root, err);
        if (r < 0)
                return kv_error_wrap(err, "registry configuration");
        const cJSON *regs = cJSON_GetObjectItemCaseSensitive(root, "registries");
        if (!cJSON_IsObject(root)) {
                r = kv_error_set(err, EINVAL, "registry configuration: not a mapping");
        } else if ((r = get_timeout(root, "connectTimeoutSeconds", 1000, &c->connect_timeout_ms, err)) < 0 ||
                   (r = get_timeout(root, "lowSpeedTimeoutSeconds", 1, &c->low_speed_time_s, err)) < 0 ||
                   (r = get_timeout(root, "responseTimeoutSeconds", 1000, &c->response_timeout_ms, err)) <
                       0) {
                kv_error_wrap(err, "registry configuration");
        } else if (regs && !cJSON_IsArray(regs)) {
                r = kv_error_set(err, EINVAL, "registry configuration: registries must be a list");
        } else if (regs) {
                c->rules = calloc(cJSON_GetArraySize(regs) + 1, sizeof(*c->rules));
                const cJSON *j;
                cJSON_ArrayForEach(j, regs)
                {
                        if (!c->rules) {
                                r = -ENOMEM;
                                break;
                        }
                        r = rule_parse(j, &c->rules[c->n_rules], c->n_rules, err);
                        c->n_rules++;
                        if (r < 0) {
                                kv_error_wrap(err, "registry configuration");
                                break;
                        }
                }
        }
        cJSON_Delete(root);
        if (r < 0)
                kvreg_config_done(c);
        return r;
}

int kvreg_config_load(const char *path, kvreg_config *c, kv_error *err)
{
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file(path, &text, &len, err);
        if (r < 0)
                return r;
        r = kvreg_config_parse(text, len, c, err);
        return r < 0 ? kv_error_wrap(err, "%s", path) : 0;
}

/* prefix matches "host/repo" at a path-component boundary. */
static size_t prefix_match(const char *prefix, const char *full)
{
        size_t n = strlen(prefix);
        while (n > 0 && prefix[n - 1] == '/')
                n--;
        if (strncmp(prefix, full, n) || (full[n] != '\0' && full[n] != '/'))
                return 0;
        return n;
}

static int endpoint_fill(kvreg_endpoint *e, const kvreg_mirror *m, const char *rest)
{
        const char *slash = strchr(m->location, '/');
        size_t hostlen = slash ? (size_t)(slash - m->location) : strlen(m->location);
        const char *path = slash ? slash + 1 : "";
        while (*rest == '/')
                rest++;
        e->mirror = m;
        e->name = strndup(m->location, hostlen);
        if (asprintf(&e->base_url, "%s://%.*s", m->plain_http ? "http" : "https", (int)hostlen, m->location) <
            0)
                e->base_url = NULL;
        if (asprintf(&e->repo, "%s%s%s", path, *path && *rest ? "/" : "", rest) < 0)
                e->repo = NULL;
        return e->name && e->base_url && e->repo ? 0 : -ENOMEM;
}

void kvreg_endpoints_free(kvreg_endpoint *e, size_t n)
{
        for (size_t i = 0; e && i < n; i++) {
                free(e[i].name);
                free(e[i].base_url);
                free(e[i].repo);
                free(e[i].token);
                mirror_done(&e[i].own);
        }
        free(e);
}

/* The host that serves the reference's own registry. */
static const char *ref_registry_host(const kvreg_ref *ref)
{
        return strcmp(ref->host, "docker.io") ? ref->host : "registry-1.docker.io";
}

/* The endpoint's settings with the source credentials and CA filled in where the mirror has none: only for
 * the registry the reference names (its host), so a DataVolume's secret never reaches another registry. */
static int endpoint_source(kvreg_endpoint *e, const kvreg_mirror *src, const char *ref_host)
{
        const kvreg_mirror *m = e->mirror;
        if (!src || strcmp(e->name, ref_host) || (!src->username && !src->ca_file && !src->insecure))
                return 0;
        kvreg_mirror merged = {.plain_http = m->plain_http, .insecure = m->insecure || src->insecure};
        bool own_auth = m->username != NULL;
        int r = 0;
        if (dup_opt(m->location, &merged.location) < 0 ||
            dup_opt(m->ca_file ?: src->ca_file, &merged.ca_file) < 0 ||
            dup_opt(own_auth ? m->username : src->username, &merged.username) < 0 ||
            dup_opt(own_auth ? m->password : src->password, &merged.password) < 0)
                r = -ENOMEM;
        mirror_done(&e->own); /* m may be e->own: it was copied above */
        e->own = merged;
        e->mirror = &e->own;
        return r;
}

int kvreg_config_endpoints(const kvreg_config *c, const kvreg_ref *ref, kvreg_endpoint **out, size_t *n,
                           kv_error *err)
{
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s/%s", ref->host, ref->repo) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        const kvreg_rule *best = NULL;
        size_t best_len = 0;
        for (size_t i = 0; c && i < c->n_rules; i++) {
                size_t l = prefix_match(c->rules[i].prefix, full);
                if (l > best_len) {
                        best = &c->rules[i];
                        best_len = l;
                }
        }
        size_t count = best ? best->n_mirrors : 1;
        kvreg_endpoint *e = calloc(count, sizeof(*e));
        if (!e)
                return kv_error_set(err, ENOMEM, "out of memory");
        int r = 0;
        if (best) {
                for (size_t i = 0; i < count && r == 0; i++)
                        r = endpoint_fill(&e[i], &best->mirrors[i], full + best_len);
        } else {
                const char *host = ref_registry_host(ref);
                e[0].own.location = strdup(host);
                r = e[0].own.location ? endpoint_fill(&e[0], &e[0].own, ref->repo) : -ENOMEM;
        }
        for (size_t i = 0; i < count && r == 0; i++)
                r = endpoint_source(&e[i], c ? &c->source : NULL, ref_registry_host(ref));
        if (r < 0) {
                kvreg_endpoints_free(e, count);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        *out = e;
        *n = count;
        return 0;
}
