/* vmiwatch: list+watch of one VMI (fieldSelector=metadata.name=NAME) for virt-launcher-reporter, driven
 * by the caller's curl multi handle: the list is a short blocking request, the watch a transfer in the
 * multi. Every end of the watch (410, an ERROR event, an undecodable line, a closed stream) leads to a
 * relist, after a backoff when the API failed. Built on libkube (controller/kube) as it is: its informer
 * has no field selector, and the reporter must not see the other VMIs of its namespace. */
#pragma once

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "watchstream.h"

/* The VMI's newest state (owned by the callee), or NULL when it does not exist (deleted, not found). */
typedef void (*vmiwatch_fn)(cJSON *vmi, void *ud);

typedef struct vmiwatch {
        kube_client *client; /* for the list */
        CURLM *multi;
        char *path;     /* .../namespaces/NS/virtualmachineinstances */
        char *selector; /* metadata.name=NAME */
        CURL *easy;     /* the watch in flight, or NULL */
        struct curl_slist *headers;
        kube_watchstream ws;
        long http;
        bool broken; /* the stream said ERROR or sent garbage */
        char *rv;
        unsigned failures;
        int64_t due_ms;
        vmiwatch_fn fn;
        void *ud;
        unsigned long lists, watches;
} vmiwatch;

int vmiwatch_init(vmiwatch *w, kube_config *cfg, CURLM *multi, const char *ns, const char *name,
                  vmiwatch_fn fn, void *ud, kv_error *err);
void vmiwatch_free(vmiwatch *w);
/* Lists and starts the watch when due; returns ms until it is due, or -1 while the watch runs. */
long vmiwatch_tick(vmiwatch *w, int64_t now_ms);
/* A transfer of the multi finished: true when it was this watch's. */
bool vmiwatch_done(vmiwatch *w, CURL *e, CURLcode result, int64_t now_ms);
