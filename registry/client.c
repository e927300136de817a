/* Registry pull path: auth (Basic, Bearer token flow), manifest resolution with digest pinning, blob
 * failover with resume, and the served/failed report. */
#include "client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonesc.h"
#include "macro.h"
#include "wwwauth.h"

int kvreg_client_init(kvreg_client *c, const kvreg_config *cfg, const char *reference, kv_error *err)
{
        *c = (kvreg_client){.arch = "amd64"};
        int r = kvreg_ref_parse(reference, &c->ref, err);
        if (r < 0)
                return r;
        r = kvreg_config_endpoints(cfg, &c->ref, &c->endpoints, &c->n_endpoints, err);
        if (r < 0)
                return r;
        r = kvreg_http_init(&c->http, err);
        if (r < 0)
                return r;
        if (cfg) {
                c->http.connect_timeout_ms = cfg->connect_timeout_ms;
                c->http.low_speed_time_s = cfg->low_speed_time_s;
                c->http.response_timeout_ms = cfg->response_timeout_ms;
        }
        return 0;
}

void kvreg_client_done(kvreg_client *c)
{
        kvreg_http_done(&c->http);
        kvreg_endpoints_free(c->endpoints, c->n_endpoints);
        kvreg_ref_done(&c->ref);
        *c = (kvreg_client){0};
}

__attribute__((format(printf, 4, 5))) static void report_failure(kvreg_client *c, const kvreg_endpoint *e,
                                                                 const char *what, const char *fmt, ...)
{
        kvreg_report *rep = &c->report;
        if (rep->n_failed == KVREG_MAX_FAILURES)
                return;
        kvreg_failure *f = &rep->failed[rep->n_failed++];
        snprintf(f->registry, sizeof(f->registry), "%s", e->name);
        snprintf(f->what, sizeof(f->what), "%s", what);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
        va_end(ap);
}

static void report_served(kvreg_client *c, const kvreg_endpoint *e)
{
        kvreg_report *rep = &c->report;
        for (size_t i = 0; i < rep->n_served; i++)
                if (!strcmp(rep->served[i], e->name))
                        return;
        if (rep->n_served < ARRAY_SIZE(rep->served))
                snprintf(rep->served[rep->n_served++], sizeof(rep->served[0]), "%s", e->name);
}

char *kvreg_report_json(const kvreg_report *r)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "resolvedBy", r->resolved_by);
        cJSON_AddStringToObject(o, "digest", r->digest);
        cJSON *served = cJSON_AddArrayToObject(o, "servedBy");
        for (size_t i = 0; i < r->n_served; i++)
                cJSON_AddItemToArray(served, cJSON_CreateString(r->served[i]));
        cJSON *failed = cJSON_AddArrayToObject(o, "failed");
        for (size_t i = 0; i < r->n_failed; i++) {
                cJSON *f = cJSON_CreateObject();
                cJSON_AddStringToObject(f, "registry", r->failed[i].registry);
                cJSON_AddStringToObject(f, "what", r->failed[i].what);
                cJSON_AddStringToObject(f, "reason", r->failed[i].reason);
                cJSON_AddItemToArray(failed, f);
        }
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return s;
}

static int fetch_token(kvreg_client *c, kvreg_endpoint *e, const kvreg_challenge *ch, kv_error *err)
{
        _cleanup_free_ char *scope_default = NULL, *url = NULL;
        if (asprintf(&scope_default, "repository:%s:pull", e->repo) < 0)
                return -ENOMEM;
        char *service = ch->service ? curl_easy_escape(c->http.curl, ch->service, 0) : NULL;
        char *scope = curl_easy_escape(c->http.curl, ch->scope ? ch->scope : scope_default, 0);
        int n = asprintf(&url, "%s%sscope=%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                         scope ? scope : "", service ? "&service=" : "", service ? service : "");
        curl_free(service);
        curl_free(scope);
        if (n < 0)
                return -ENOMEM;
        kvreg_membuf buf = {.max = 64 * 1024};
        kvreg_http_req req = {.url = url,
                              .ca_file = e->mirror->ca_file,
                              .insecure = e->mirror->insecure,
                              .username = e->mirror->username,
                              .password = e->mirror->password,
                              .sink = kvreg_membuf_sink,
                              .sink_ctx = &buf};
        int r = kvreg_http_get(&c->http, &req, err);
        if (r == 0 && req.status != 200)
                r = kv_error_set(err, EACCES, "token endpoint %s answered HTTP %ld", ch->realm, req.status);
        cJSON *j = r == 0 ? cJSON_ParseWithLength(buf.data ? buf.data : "", buf.len) : NULL;
        free(buf.data);
        if (r < 0)
                return r;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");
        if (!cJSON_IsString(t) || !*t->valuestring)
                t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
        if (cJSON_IsString(t) && *t->valuestring && strlen(t->valuestring) < 1800 &&
            !strpbrk(t->valuestring, "\r\n")) {
                free(e->token);
                e->token = strdup(t->valuestring);
        } else {
                r = kv_error_set(err, EACCES, "token endpoint %s returned no token", ch->realm);
        }
        cJSON_Delete(j);
        return r;
}

/* GET base_url + path on endpoint e, answering one 401 challenge (Bearer token or Basic). */
static int endpoint_get(kvreg_client *c, kvreg_endpoint *e, const char *path, kvreg_http_req *req,
                        kv_error *err)
{
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s%s", e->base_url, path) < 0)
                return -ENOMEM;
        req->url = url;
        req->ca_file = e->mirror->ca_file;
        req->insecure = e->mirror->insecure;
        req->username = e->mirror->username;
        req->password = e->mirror->password;
        for (int attempt = 0;; attempt++) {
                req->bearer = e->token;
                int r = kvreg_http_get(&c->http, req, err);
                if (r < 0 || req->status != 401 || attempt > 0 || !req->www_auth[0])
                        return r;
                kvreg_challenge ch;
                if (kvreg_challenge_parse(req->www_auth, &ch, NULL) < 0 || ch.scheme != KVREG_AUTH_BEARER) {
                        kvreg_challenge_done(&ch);
                        return 0; /* Basic was already sent if we have credentials */
                }
                r = fetch_token(c, e, &ch, err);
                kvreg_challenge_done(&ch);
                if (r < 0)
                        return r;
        }
}

static bool digest_matches(const char *data, size_t len, const char *digest, char out[80])
{
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
        strcpy(out, "sha256:");
        for (int i = 0; i < 32; i++)
                sprintf(out + 7 + 2 * i, "%02x", md[i]);
        return !digest || !strcmp(out, digest);
}

/* Fetches manifests/<ref> from the first endpoint that serves a parseable manifest matching `digest`
 * (when given). Sets *served_by and the body's computed digest. */
static int manifest_get(kvreg_client *c, const char *ref, const char *digest, kvreg_manifest *m,
                        char computed[80], const kvreg_endpoint **served_by, kv_error *err)
{
        char what[160];
        snprintf(what, sizeof(what), "manifest %s", ref);
        for (size_t i = 0; i < c->n_endpoints; i++) {
                kvreg_endpoint *e = &c->endpoints[i];
                if (e->dead)
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "/v2/%s/manifests/%s", e->repo, ref) < 0)
                        return -ENOMEM;
                kvreg_membuf buf = {.max = KVREG_MANIFEST_MAX};
                kvreg_http_req req = {
                    .accept = KVREG_MANIFEST_ACCEPT, .sink = kvreg_membuf_sink, .sink_ctx = &buf};
                kv_error e2 = {0};
                int r = endpoint_get(c, e, path, &req, &e2);
                _cleanup_free_ char *body = buf.data;
                if (r < 0) {
                        if (!req.sink_failed && req.status == 0)
                                e->dead = true;
                        report_failure(c, e, what, "%s", e2.msg);
                        continue;
                }
                if (req.status != 200) {
                        report_failure(c, e, what, "HTTP %ld", req.status);
                        continue;
                }
                if (!digest_matches(body ? body : "", buf.len, digest, computed) ||
                    (req.docker_digest[0] && strcmp(req.docker_digest, computed))) {
                        report_failure(c, e, what, "content does not match digest %s",
                                       digest ? digest : req.docker_digest);
                        continue;
                }
                r = kvreg_manifest_parse(body ? body : "", buf.len, req.content_type, c->arch, m, &e2);
                if (r < 0) {
                        report_failure(c, e, what, "%s", e2.msg);
                        continue;
                }
                *served_by = e;
                return 0;
        }
        return kv_error_set(err, EHOSTUNREACH, "no registry served %s of %s (%zu tried)", what, c->ref.repo,
                            c->n_endpoints);
}

int kvreg_resolve(kvreg_client *c, kvreg_manifest *out, kv_error *err)
{
        const kvreg_endpoint *by = NULL;
        char computed[80];
        const char *ref = c->ref.digest ? c->ref.digest : c->ref.tag;
        int r = manifest_get(c, ref, c->ref.digest, out, computed, &by, err);
        if (r < 0)
                return r;
        snprintf(c->report.resolved_by, sizeof(c->report.resolved_by), "%s", by->name);
        snprintf(c->report.digest, sizeof(c->report.digest), "%s", computed);
        if (out->kind == KVREG_MANIFEST_IMAGE)
                return 0;
        /* Index: the platform's manifest by digest, from any registry. */
        kvreg_manifest idx = *out;
        *out = (kvreg_manifest){0};
        r = manifest_get(c, idx.platform.digest, idx.platform.digest, out, computed, &by, err);
        kvreg_manifest_done(&idx);
        if (r == 0 && out->kind != KVREG_MANIFEST_IMAGE) {
                kvreg_manifest_done(out);
                r = kv_error_set(err, EINVAL, "index entry for linux/%s is itself an index", c->arch);
        }
        return r;
}

struct blob_state {
        kvreg_client *c;
        EVP_MD_CTX *sha;
        int64_t done;
        int64_t size;
        kvreg_sink sink;
        void *sink_ctx;
};

static int blob_sink(void *ctx, const void *buf, size_t len)
{
        struct blob_state *b = ctx;
        if (b->done + (int64_t)len > b->size)
                return -EFBIG;
        EVP_DigestUpdate(b->sha, buf, len);
        int r = b->sink(b->sink_ctx, buf, len);
        if (r < 0)
                return r;
        b->done += len;
        if (b->c->progress)
                b->c->progress(b->c->progress_ctx, len);
        return 0;
}

static int blob_verify(struct blob_state *b, const kvreg_descriptor *blob, kv_error *err)
{
        unsigned char md[32];
        unsigned int mdlen = 0;
        char hex[80] = "sha256:";
        EVP_DigestFinal_ex(b->sha, md, &mdlen);
        for (int i = 0; i < 32; i++)
                sprintf(hex + 7 + 2 * i, "%02x", md[i]);
        if (strcmp(hex, blob->digest))
                return kv_error_set(err, EBADMSG, "blob %s: content has digest %s", blob->digest, hex);
        return 0;
}

int kvreg_blob_fetch(kvreg_client *c, const kvreg_descriptor *blob, kvreg_sink sink, void *sink_ctx,
                     kv_error *err)
{
        struct blob_state b = {
            .c = c, .sha = EVP_MD_CTX_new(), .size = blob->size, .sink = sink, .sink_ctx = sink_ctx};
        if (!b.sha || !EVP_DigestInit_ex(b.sha, EVP_sha256(), NULL)) {
                EVP_MD_CTX_free(b.sha);
                return kv_error_set(err, ENOMEM, "sha256 context");
        }
        char what[96];
        snprintf(what, sizeof(what), "blob %.19s", blob->digest);
        int r = -EIO;
        for (size_t i = 0; i < c->n_endpoints; i++) {
                kvreg_endpoint *e = &c->endpoints[i];
                if (e->dead)
                        continue;
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "/v2/%s/blobs/%s", e->repo, blob->digest) < 0) {
                        r = -ENOMEM;
                        break;
                }
                int64_t before = b.done;
                kvreg_http_req req = {.range_from = b.done, .sink = blob_sink, .sink_ctx = &b};
                kv_error e2 = {0};
                r = endpoint_get(c, e, path, &req, &e2);
                if (b.done > before)
                        report_served(c, e);
                if (req.sink_failed) {
                        r = kv_error_set(err, e2.code, "%s", e2.msg);
                        break;
                }
                if (r < 0) {
                        if (req.status == 0)
                                e->dead = true;
                        report_failure(c, e, what, "%s%s (after %lld of %lld bytes)",
                                       e->dead ? "" : "transfer: ", e2.msg, (long long)b.done,
                                       (long long)b.size);
                        r = -EIO;
                        continue;
                }
                if (req.status != 200 && req.status != 206) {
                        report_failure(c, e, what, "HTTP %ld", req.status);
                        r = -EIO;
                        continue;
                }
                if (b.done != b.size) {
                        report_failure(c, e, what, "short body (%lld of %lld bytes)", (long long)b.done,
                                       (long long)b.size);
                        r = -EIO;
                        continue;
                }
                r = blob_verify(&b, blob, err);
                break;
        }
        EVP_MD_CTX_free(b.sha);
        if (r == -EIO)
                return kv_error_set(err, EHOSTUNREACH,
                                    "no registry could serve %s (%lld of %lld bytes received)", what,
                                    (long long)b.done, (long long)b.size);
        return r;
}
