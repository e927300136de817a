/* A rate-limited work queue of string keys (client-go semantics): a key is queued at most once, is never
 * handed to two workers at the same time (re-added while processing → queued again after done), failed
 * keys come back after a per-key exponential backoff, and all retries share a token bucket. Thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct kube_workqueue kube_workqueue;

typedef struct kube_workqueue_opts {
        unsigned base_ms, max_ms; /* per-key backoff: base·2^failures, capped (default 5 ms, 300 s) */
        double qps;               /* overall retry rate (default 50/s) … */
        unsigned burst;           /* … with this burst (default 200) */
} kube_workqueue_opts;

kube_workqueue *kube_workqueue_new(const kube_workqueue_opts *opts); /* opts may be NULL */
void kube_workqueue_free(kube_workqueue *q);
void kube_workqueue_add(kube_workqueue *q, const char *key);
void kube_workqueue_add_after(kube_workqueue *q, const char *key, unsigned delay_ms);
/* Re-adds after the key's backoff; returns the delay chosen. */
unsigned kube_workqueue_add_rate_limited(kube_workqueue *q, const char *key);
void kube_workqueue_forget(kube_workqueue *q, const char *key); /* success: reset its backoff */
unsigned kube_workqueue_failures(kube_workqueue *q, const char *key);
/* Blocks until a key is ready (returns 0, *key malloc'd) or the queue is shut down (-ESHUTDOWN).
 * timeout_ms < 0 waits forever; on timeout returns -ETIMEDOUT. */
int kube_workqueue_get(kube_workqueue *q, char **key, int timeout_ms);
void kube_workqueue_done(kube_workqueue *q, const char *key);
size_t kube_workqueue_len(kube_workqueue *q); /* ready keys (queue depth) */
size_t kube_workqueue_delayed(kube_workqueue *q);
void kube_workqueue_shutdown(kube_workqueue *q);
