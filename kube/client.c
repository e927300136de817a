/* Requests to the API server over a kept-alive libcurl easy handle; Status replies become kv_errors. */
#include "client.h"
#include "macro.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct buf {
        char *data;
        size_t len, cap;
} buf;

static size_t buf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
        buf *b = ud;
        size_t n = size * nmemb;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *d = realloc(b->data, cap);
                if (!d)
                        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = '\0';
        return n;
}

kube_client *kube_client_new(kube_config *cfg)
{
        kube_client *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->cfg = cfg;
        c->easy = curl_easy_init();
        if (!c->easy) {
                free(c);
                return NULL;
        }
        c->max_attempts = 6;
        c->backoff_ms = 50;
        c->timeout_ms = 30000;
        return c;
}

void kube_client_free(kube_client *c)
{
        curl_easy_cleanup(c->easy);
        free(c);
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int kube_easy_setup(kube_config *cfg, CURL *e, const char *url, struct curl_slist **headers, kv_error *err)
{
        _cleanup_free_ char *token = NULL, *auth = NULL;
        int r = kube_config_bearer(cfg, &token, err);
        if (r < 0)
                return r;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "virt-controller/kvlite");
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        if (cfg->insecure) {
                curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (cfg->ca_file)
                curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
        if (cfg->ca_data) {
                struct curl_blob blob = {
                    .data = cfg->ca_data, .len = cfg->ca_data_len, .flags = CURL_BLOB_NOCOPY};
                curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
        }
        if (cfg->cert_file) {
                curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
                curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
        }
        if (cfg->cert_data) {
                struct curl_blob cert = {
                    .data = cfg->cert_data, .len = cfg->cert_data_len, .flags = CURL_BLOB_NOCOPY};
                struct curl_blob key = {
                    .data = cfg->key_data, .len = cfg->key_data_len, .flags = CURL_BLOB_NOCOPY};
                curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
                curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
                curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
                curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (cfg->username) {
                curl_easy_setopt(e, CURLOPT_USERNAME, cfg->username);
                curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
        }
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        if (token) {
                if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
                        auth = NULL;
                h = auth && h ? curl_slist_append(h, auth) : h;
        }
        if (!h)
                return kv_error_errno(err, ENOMEM, "request headers");
        *headers = h;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        return 0;
}

static bool retryable(const char *method, CURLcode cc, long http, bool sent)
{
        if (cc != CURLE_OK) /* a create may have been applied if the request went out */
                return strcmp(method, "POST") != 0 || !sent;
        if (http == 429)
                return true;
        return http >= 500 && strcmp(method, "POST") != 0;
}

static CURLcode perform_once(kube_client *c, const char *method, const char *url, const char *content_type,
                             const char *body, buf *resp, long *http, kv_error *err, int *setup_err)
{
        struct curl_slist *headers = NULL;
        CURL *e = c->easy;
        curl_easy_reset(e);
        *setup_err = kube_easy_setup(c->cfg, e, url, &headers, err);
        if (*setup_err < 0)
                return CURLE_FAILED_INIT;
        if (content_type) {
                char ct[128];
                snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
                struct curl_slist *h = curl_slist_append(headers, ct);
                headers = h ? h : headers;
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        }
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (body)
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
        c->requests++;
        CURLcode cc = curl_easy_perform(e);
        *http = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, http);
        curl_slist_free_all(headers);
        return cc;
}

/* One request with retries; on 2xx *ok holds the body (the caller frees ok->data). */
static int request_buf(kube_client *c, const char *method, const char *path, const char *content_type,
                       const char *body, buf *ok, kv_error *err)
{
        _cleanup_free_ char *url = NULL;
        char what[512];
        if (asprintf(&url, "%s%s", c->cfg->server, path) < 0)
                return kv_error_errno(err, ENOMEM, "%s %s", method, path);
        snprintf(what, sizeof(what), "%s %s", method, path);
        for (int attempt = 0;; attempt++) {
                buf resp = {0};
                long http = 0;
                int setup_err = 0;
                CURLcode cc = perform_once(c, method, url, content_type, body, &resp, &http, err, &setup_err);
                if (setup_err < 0) {
                        free(resp.data);
                        return kv_error_wrap(err, "%s", what);
                }
                curl_off_t sent = 0;
                curl_easy_getinfo(c->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
                bool sent_any = sent > 0 || !body;
                if (cc == CURLE_OK && http >= 200 && http < 300) {
                        *ok = resp;
                        return 0;
                }
                int r;
                if (cc != CURLE_OK) {
                        r = kv_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED,
                                         "%s: %s", what, curl_easy_strerror(cc));
                } else {
                        cJSON *st = resp.len ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
                        r = kube_status_error(st, http, what, err);
                        cJSON_Delete(st);
                }
                free(resp.data);
                if (attempt + 1 >= c->max_attempts || !retryable(method, cc, http, sent_any))
                        return r;
                curl_off_t retry_after = 0;
                curl_easy_getinfo(c->easy, CURLINFO_RETRY_AFTER, &retry_after);
                unsigned delay = kube_backoff_ms(c->backoff_ms, 2000, (unsigned)attempt);
                if (retry_after > 0 && retry_after < 10)
                        delay = (unsigned)retry_after * 1000;
                c->retries++;
                sleep_ms(delay);
        }
}

int kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
                 const char *body, cJSON **out, kv_error *err)
{
        buf resp = {0};
        if (out)
                *out = NULL;
        int r = request_buf(c, method, path, content_type, body, &resp, err);
        if (r == 0 && out && resp.len > 0 && !(*out = cJSON_ParseWithLength(resp.data, resp.len)))
                r = kv_error_set(err, EPROTO, "%s %s: reply is not JSON", method, path);
        free(resp.data);
        return r;
}

int kube_get_text(kube_client *c, const char *path, char **out, kv_error *err)
{
        buf resp = {0};
        *out = NULL;
        int r = request_buf(c, "GET", path, NULL, NULL, &resp, err);
        if (r < 0)
                return r;
        *out = strndup(resp.data ? resp.data : "", resp.len);
        free(resp.data);
        return *out ? 0 : kv_error_errno(err, ENOMEM, "GET %s", path);
}
