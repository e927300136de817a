/* libkubelite: the API client of virt-launcher-reporter without libcurl (issue 21: its memory per VM).
 * Requests over one kept-alive HTTPS connection (httpc.h, mbedTLS) with the config's bearer token and CA,
 * Status replies as kv_errors (status.h, as libkube's client), and the informer's transport
 * (informer-core.h): the list as blocking requests, the watch as a streamed response on its own connection
 * whose descriptor the caller polls. No retries: the caller's loop retries. Not thread-safe. */
#pragma once

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config.h"
#include "httpc.h"
#include "informer-core.h"
#include "resource.h"
#include "status.h"

typedef struct kube_lite {
        kube_config *cfg;
        httpc_server srv;
        httpc_conn conn; /* requests */
        long timeout_ms; /* per request (and to set up a watch); default 30 s */
        unsigned long requests;
} kube_lite;

/* Only what a service account gives: bearer token (static or file), CA (file or data), insecure, server
 * name; client certificates and basic auth are refused (-EINVAL naming them). Reads the CA here. */
int kube_lite_init(kube_lite *c, kube_config *cfg, kv_error *err);
void kube_lite_free(kube_lite *c);
/* As kube_request (client.h) with one attempt: 2xx: 0 and *out = the parsed body (NULL if out is NULL or
 * the body is empty); else a negative KUBE_E* (a Status reply) or transport errno, err naming method and
 * path. */
int kube_lite_request(kube_lite *c, const char *method, const char *path, const char *content_type,
                      const char *body, cJSON **out, kv_error *err);
/* A JSON merge patch (RFC 7386) of an object, as kube_merge_patch without the status subresource. */
int kube_lite_merge_patch(kube_lite *c, const kube_resource *r, const char *ns, const char *name,
                          const cJSON *patch, cJSON **out, kv_error *err);

/* An informer whose lists and watch go through c (which must outlive it). Then, from the caller's loop:
 * kube_informer_tick as usual, and poll kube_lite_informer_fd for reading (when >= 0), calling
 * kube_lite_informer_io when it is readable. */
int kube_lite_informer_init(kube_informer *inf, kube_lite *c, const kube_resource *res, const char *ns,
                            const char *label_selector, const kube_store_ops *ops, kube_informer_fn fn,
                            void *ud);
/* The timeout of its list pages and of setting up its watch (default: the client's at init). */
void kube_lite_informer_set_timeout(kube_informer *inf, long timeout_ms);
int kube_lite_informer_fd(const kube_informer *inf);
void kube_lite_informer_io(kube_informer *inf, uint64_t now_ms);
