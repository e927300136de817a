/* libcurl GET streamed to a sink, with the headers registries answer with captured. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

int kvreg_http_init(kvreg_http *h, kv_error *err)
{
        static bool global_done;
        if (!global_done) {
                curl_global_init(CURL_GLOBAL_DEFAULT);
                global_done = true;
        }
        *h = (kvreg_http){.connect_timeout_ms = 3000, .low_speed_time_s = 10, .response_timeout_ms = 1000};
        h->curl = curl_easy_init();
        return h->curl ? 0 : kv_error_set(err, ENOMEM, "curl_easy_init failed");
}

void kvreg_http_done(kvreg_http *h)
{
        if (h->curl)
                curl_easy_cleanup(h->curl);
        h->curl = NULL;
}

int kvreg_membuf_sink(void *ctx, const void *buf, size_t len)
{
        kvreg_membuf *m = ctx;
        if (m->len + len > m->max)
                return -EFBIG;
        char *n = realloc(m->data, m->len + len + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + m->len, buf, len);
        m->data = n;
        m->len += len;
        m->data[m->len] = '\0';
        return 0;
}

static void copy_header_value(char *dst, size_t size, const char *v, size_t n)
{
        while (n > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                n--;
        }
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
                n--;
        if (n >= size)
                n = size - 1;
        memcpy(dst, v, n);
        dst[n] = '\0';
}

static bool header_is(const char *line, size_t n, const char *name, const char **value)
{
        size_t l = strlen(name);
        if (n <= l || strncasecmp(line, name, l) || line[l] != ':')
                return false;
        *value = line + l + 1;
        return true;
}

/* A decimal number at the start of a header value that is not NUL-terminated (libcurl's buffer). */
static long long header_number(const char *v, size_t n)
{
        char buf[32];
        copy_header_value(buf, sizeof(buf), v, n);
        return strtoll(buf, NULL, 10);
}

void kvreg_http_header_line(kvreg_http_req *r, const char *line, size_t n)
{
        const char *v;
        r->responded = true;
        if (n > 5 && !strncmp(line, "HTTP/", 5)) {
                /* A new response (after a redirect or 100): forget the previous one's headers. */
                const char *sp = memchr(line, ' ', n);
                r->status = sp ? (long)header_number(sp + 1, n - (size_t)(sp + 1 - line)) : 0;
                r->content_type[0] = r->docker_digest[0] = r->www_auth[0] = '\0';
                r->content_length = -1;
        } else if (header_is(line, n, "Content-Type", &v)) {
                copy_header_value(r->content_type, sizeof(r->content_type), v, n - (v - line));
        } else if (header_is(line, n, "Docker-Content-Digest", &v)) {
                copy_header_value(r->docker_digest, sizeof(r->docker_digest), v, n - (v - line));
        } else if (header_is(line, n, "WWW-Authenticate", &v) && !r->www_auth[0]) {
                copy_header_value(r->www_auth, sizeof(r->www_auth), v, n - (v - line));
        } else if (header_is(line, n, "Content-Length", &v)) {
                long long len = header_number(v, n - (size_t)(v - line));
                r->content_length = len >= 0 ? len : -1;
        }
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
        kvreg_http_header_line(ud, line, size * nmemb);
        return size * nmemb;
}

struct body_state {
        kvreg_http_req *req;
        kvreg_http *h;
        int64_t skip;
        bool started;
        size_t errlen;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
        struct body_state *b = ud;
        kvreg_http_req *r = b->req;
        size_t n = size * nmemb;
        if (r->status != 200 && r->status != 206) {
                size_t room = sizeof(r->errbody) - 1 - b->errlen;
                size_t c = n < room ? n : room;
                memcpy(r->errbody + b->errlen, data, c);
                b->errlen += c;
                r->errbody[b->errlen] = '\0';
                return n;
        }
        if (!b->started) {
                b->started = true;
                b->skip = (r->status == 200) ? r->range_from : 0;
        }
        size_t off = 0;
        if (b->skip > 0) {
                off = (int64_t)n < b->skip ? n : (size_t)b->skip;
                b->skip -= off;
        }
        if (off < n) {
                int rc = r->sink(r->sink_ctx, data + off, n - off);
                if (rc < 0) {
                        r->sink_failed = true;
                        r->sink_rc = rc;
                        return 0; /* aborts with CURLE_WRITE_ERROR */
                }
                r->delivered += n - off;
        }
        return n;
}

/* A server that accepted the connection but does not answer (hung, overloaded, a listen backlog with no
 * process behind it) is given response_timeout_ms from the moment the request could be sent, however slow
 * the connection was to set up. Once the response started, only the low-speed limit applies, so a slow
 * but moving transfer is never cut. */
static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
        struct body_state *b = ud;
        curl_off_t total_us = 0, ready_us = 0;
        (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
        if (b->req->responded || b->h->response_timeout_ms <= 0)
                return 0;
        curl_easy_getinfo(b->h->curl, CURLINFO_PRETRANSFER_TIME_T, &ready_us);
        curl_easy_getinfo(b->h->curl, CURLINFO_TOTAL_TIME_T, &total_us);
        if (ready_us <= 0 || total_us - ready_us < b->h->response_timeout_ms * 1000)
                return 0;
        b->req->no_response = true;
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
}

int kvreg_http_get(kvreg_http *h, kvreg_http_req *r, kv_error *err)
{
        CURL *c = h->curl;
        struct body_state body = {.req = r, .h = h};
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *hdrs = NULL;
        char line[2048];
        r->status = 0;
        r->delivered = 0;
        r->content_length = -1;
        r->sink_failed = false;
        r->responded = r->no_response = false;
        r->errbody[0] = '\0';

        curl_easy_reset(c);
        for (const struct curl_slist *e = r->headers; e; e = e->next)
                hdrs = curl_slist_append(hdrs, e->data);
        if (r->accept) {
                snprintf(line, sizeof(line), "Accept: %s", r->accept);
                hdrs = curl_slist_append(hdrs, line);
        }
        if (r->bearer) {
                snprintf(line, sizeof(line), "Authorization: Bearer %s", r->bearer);
                hdrs = curl_slist_append(hdrs, line);
        } else if (r->username && r->password) {
                curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
                curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
        }
        if (r->range_from > 0) {
                snprintf(line, sizeof(line), "%lld-", (long long)r->range_from);
                curl_easy_setopt(c, CURLOPT_RANGE, line);
        }
        curl_easy_setopt(c, CURLOPT_URL, r->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "kvlite-importer/0.1");
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
        if (h->max_rate > 0)
                curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)h->max_rate);
        if (r->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
        if (r->insecure) {
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &body);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);

        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(hdrs);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        if (r->sink_failed)
                return kv_error_errno(err, -r->sink_rc, "writing data from %s", r->url);
        if (r->no_response)
                return kv_error_set(err, ETIMEDOUT, "no response within %ld ms", h->response_timeout_ms);
        if (cc != CURLE_OK)
                return kv_error_set(err, EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        r->status = code;
        return 0;
}
