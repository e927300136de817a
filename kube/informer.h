/* List-then-watch of one resource into a kube_store, driven by a curl multi handle from the caller's
 * event loop: resumes from the last resourceVersion (bookmarks included), relists on 410 Expired,
 * reconnects with backoff and jitter, and restarts from the last good event on an undecodable line. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "clock.h"
#include "store.h"
#include "watchstream.h"

typedef struct kube_informer kube_informer;
/* Called on the loop thread after the store was updated; obj is the (pruned) new state, or the last state
 * for DELETED. Relists report ADDED/MODIFIED/DELETED too. */
typedef void (*kube_informer_fn)(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud);

struct kube_informer {
        const kube_resource *res;
        char *ns;             /* NULL = all namespaces */
        char *label_selector; /* NULL = everything */
        char *field_selector; /* NULL = everything; kube_informer_set_field_selector */
        kube_store store;
        kube_client *client; /* for lists, on the loop thread */
        CURLM *multi;
        CURL *watch; /* non-NULL while a watch is in flight */
        struct curl_slist *headers;
        kube_watchstream ws;
        char errbody[1024]; /* body of a non-200 watch reply */
        size_t errlen;
        long http;
        char *rv;
        bool synced, need_relist, aborted;
        bool paused; /* kube_informer_pause: no list or watch until kube_informer_resume */
        unsigned failures;
        uint64_t due_ms;          /* when to (re)start; 0 = now */
        unsigned page_size;       /* list limit (server may ignore it) */
        unsigned watch_timeout_s; /* 0 = random 300..600 like client-go */
        kube_informer_fn fn;
        void *ud;
        /* counters for /metrics and tests */
        unsigned long lists, watches, events, expired, watch_errors;
};

int kube_informer_init(kube_informer *inf, kube_config *cfg, CURLM *multi, const kube_resource *res,
                       const char *ns, const char *label_selector, const kube_store_ops *ops,
                       kube_informer_fn fn, void *ud);
/* Narrows the list and the watch to objects matching a field selector ("metadata.name=x"), e.g. one
 * object by name. Call between init and the first tick (the store and the resourceVersion it resumes
 * from belong to one selector); NULL clears it. Returns 0 or -ENOMEM. */
int kube_informer_set_field_selector(kube_informer *inf, const char *field_selector);
void kube_informer_free(kube_informer *inf);
/* Stops listing and watching (e.g. its resource is no longer served) and forgets the cache, reporting each
 * object as DELETED, and the resourceVersion; the store stays valid, so readers on other threads may keep
 * using it. Resume lists again on the next tick. Loop thread only. */
void kube_informer_pause(kube_informer *inf);
void kube_informer_resume(kube_informer *inf);
/* Starts a list or watch when one is due. Returns ms until it next needs a tick (or -1: nothing due). */
long kube_informer_tick(kube_informer *inf, uint64_t now_ms);
/* Hands over a finished transfer; returns true if it was this informer's. */
bool kube_informer_transfer_done(kube_informer *inf, CURL *e, CURLcode result, uint64_t now_ms);
