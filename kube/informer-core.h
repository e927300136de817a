/* List-then-watch of one resource into a kube_store, from the caller's event loop: resumes from the last
 * resourceVersion (bookmarks included), relists on 410 Expired, reconnects with backoff and jitter, and
 * restarts from the last good event on an undecodable line. The transport is a kube_informer_transport:
 * libcurl's (informer.h, a curl multi handle: virt-controller) or the reporter's lite one (lite.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "resource.h"
#include "status.h"
#include "store.h"
#include "watchstream.h"

typedef struct kube_informer kube_informer;
typedef struct kube_client kube_client;
struct curl_slist;

/* How lists and the watch reach the API server. */
typedef struct kube_informer_transport {
        /* One GET of a list page (absolute path with query): 0 and *out, or a negative KUBE_E* and err. */
        int (*list)(kube_informer *inf, const char *path, cJSON **out, kv_error *err);
        /* Starts the watch request of path and sets inf->watch (non-NULL while it runs); the body goes to
         * kube_informer_watch_data, the end to kube_informer_watch_done. */
        int (*watch_start)(kube_informer *inf, const char *path, kv_error *err);
        void (*watch_stop)(kube_informer *inf); /* ends the running watch, clears inf->watch */
        void (*free)(kube_informer *inf);       /* the transport's own state */
} kube_informer_transport;
/* Called on the loop thread after the store was updated; obj is the (pruned) new state, or the last state
 * for DELETED. Relists report ADDED/MODIFIED/DELETED too. */
typedef void (*kube_informer_fn)(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud);

struct kube_informer {
        const kube_resource *res;
        char *ns;             /* NULL = all namespaces */
        char *label_selector; /* NULL = everything */
        char *field_selector; /* NULL = everything; kube_informer_set_field_selector */
        kube_store store;
        const kube_informer_transport *tp;
        void *watch; /* the transport's, non-NULL while a watch is in flight */
        /* libcurl's transport (informer.c) */
        kube_client *client; /* for lists, on the loop thread */
        void *multi;         /* CURLM */
        struct curl_slist *headers;
        void *conn; /* the lite transport's (lite.c) */
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

/* For transports: the transport-independent part of init (no list or watch yet). */
int kube_informer_setup(kube_informer *inf, const kube_informer_transport *tp, const kube_resource *res,
                        const char *ns, const char *label_selector, const kube_store_ops *ops,
                        kube_informer_fn fn, void *ud);
/* For transports: body bytes of the watch (http: the reply's status code). Returns n, or 0 when the watch
 * must stop (an ERROR event, an undecodable line): the transport then ends it and calls watch_done. */
size_t kube_informer_watch_data(kube_informer *inf, long http, const char *data, size_t n);
/* For transports, after watch_stop: how the watch ended (failure: the transport's error, or NULL when the
 * stream closed cleanly). */
void kube_informer_watch_done(kube_informer *inf, long http, const char *failure, uint64_t now_ms);
int kube_informer_set_field_selector(kube_informer *inf, const char *field_selector);
void kube_informer_free(kube_informer *inf);
/* Stops listing and watching (e.g. its resource is no longer served) and forgets the cache, reporting each
 * object as DELETED, and the resourceVersion; the store stays valid, so readers on other threads may keep
 * using it. Resume lists again on the next tick. Loop thread only. */
void kube_informer_pause(kube_informer *inf);
void kube_informer_resume(kube_informer *inf);
/* Starts a list or watch when one is due. Returns ms until it next needs a tick (or -1: nothing due). */
long kube_informer_tick(kube_informer *inf, uint64_t now_ms);
