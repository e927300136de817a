/* One HTTP connection to the API server (a libcurl easy handle kept alive between requests), the
 * TLS/credential setup shared with watches, Status decoding and retries. Not thread-safe: one client per
 * thread. */
#pragma once

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "status.h"

typedef struct kube_client {
        kube_config *cfg;
        CURL *easy;
        int max_attempts;       /* for 429/5xx/transport errors; default 6 */
        unsigned backoff_ms;    /* first retry delay; doubles, capped at 2 s, ±50 % jitter */
        long timeout_ms;        /* per request; default 30 s */
        unsigned long requests; /* counters for /metrics */
        unsigned long retries;
} kube_client;

kube_client *kube_client_new(kube_config *cfg);
void kube_client_free(kube_client *c);
static inline void kube_client_freep(kube_client **c)
{
        if (*c)
                kube_client_free(*c);
}

/* Prepares an easy handle for `url` with TLS, client certificate and bearer token. *headers receives the
 * list to free after the transfer. Shared by requests and watches. */
int kube_easy_setup(kube_config *cfg, CURL *e, const char *url, struct curl_slist **headers, kv_error *err);

/* Sends one request to `path` (absolute path with query). 2xx: 0 and *out = parsed body (NULL if out is
 * NULL or the body is empty). Otherwise a negative KUBE_E* with err naming method, path, reason and
 * message. Retries 429, 5xx and transport errors with backoff and jitter, except a POST after it may have
 * reached the server (a retried create could create twice). */
int kube_request(kube_client *c, const char *method, const char *path, const char *content_type,
                 const char *body, cJSON **out, kv_error *err);

/* GET of a text resource (pods/log): *out = the body, NUL-terminated (malloc'd). Errors as kube_request. */
int kube_get_text(kube_client *c, const char *path, char **out, kv_error *err);
