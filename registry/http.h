/* One HTTP GET with libcurl, streamed to a sink: the transport under registry pulls and http imports.
 * A sink failure (disk full, reader gone) is told apart from a transport failure so callers only fail
 * over on the latter. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Receives body bytes; returns 0 or a negative errno (which aborts the transfer). */
typedef int (*kvreg_sink)(void *ctx, const void *buf, size_t len);

typedef struct kvreg_http {
        CURL *curl;
        long connect_timeout_ms;
        long low_speed_time_s;
        long response_timeout_ms; /* from the request sent to the first response byte (0 = none) */
        int64_t max_rate;         /* bytes/s, 0 = unlimited */
} kvreg_http;

typedef struct kvreg_http_req {
        /* in */
        const char *url;
        const char *accept;
        const char *ca_file;
        bool insecure;
        const char *username, *password; /* basic auth when both set */
        const char *bearer;
        const struct curl_slist *headers; /* extra "Name: value" lines */
        int64_t range_from;               /* >0: ask for the rest from this offset */
        kvreg_sink sink;
        void *sink_ctx;
        /* out */
        long status;
        bool sink_failed;
        bool responded;   /* a byte of the response (status line) arrived */
        bool no_response; /* response_timeout_ms passed without a byte of the response */
        int sink_rc;
        int64_t delivered;      /* body bytes given to the sink (after any skip) */
        int64_t content_length; /* -1 when unknown */
        char content_type[128];
        char docker_digest[80];
        char www_auth[1024];
        char errbody[256];
} kvreg_http_req;

int kvreg_http_init(kvreg_http *h, kv_error *err);
void kvreg_http_done(kvreg_http *h);
/* Returns 0 when a response arrived (look at req->status; the body went to the sink only for 200/206),
 * -EIO with err filled on a transport failure or a sink failure (req->sink_failed). A 200 answer to a
 * range request is handled here: the first range_from bytes are dropped. */
int kvreg_http_get(kvreg_http *h, kvreg_http_req *req, kv_error *err);

/* One response header line as libcurl hands it over (not NUL-terminated, CRLF included): the status line
 * starts a new response; Content-Type, Docker-Content-Digest, WWW-Authenticate and Content-Length are kept.
 */
void kvreg_http_header_line(kvreg_http_req *r, const char *line, size_t n);

/* A sink that collects up to `max` bytes in memory (manifests, tokens). */
typedef struct kvreg_membuf {
        char *data;
        size_t len, max;
} kvreg_membuf;
int kvreg_membuf_sink(void *ctx, const void *buf, size_t len);
