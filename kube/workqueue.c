/* Work queue: one hash table of per-key state, a FIFO of ready keys and a list of delayed keys. */
#include "workqueue.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct item {
        struct item *hnext, *qnext, *dnext;
        char *key;
        bool dirty, processing, queued, delayed;
        unsigned failures;
        uint64_t due_ms;
} item;

struct kube_workqueue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        item **buckets;
        size_t nbuckets, nitems;
        item *head, *tail; /* ready FIFO */
        size_t len;
        item *delayed; /* unsorted; short in practice */
        size_t ndelayed;
        bool shutdown;
        kube_workqueue_opts opts;
        double tokens;
        uint64_t tokens_at;
};

static size_t hash(const char *s, size_t n)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return (size_t)(h % n);
}

kube_workqueue *kube_workqueue_new(const kube_workqueue_opts *opts)
{
        kube_workqueue *q = calloc(1, sizeof(*q));
        if (!q)
                return NULL;
        q->opts = (kube_workqueue_opts){5, 300000, 50, 200};
        if (opts)
                q->opts = *opts;
        q->tokens = q->opts.burst;
        q->tokens_at = (uint64_t)kv_now_ms();
        q->nbuckets = 4096;
        q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&q->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&q->lock, NULL);
        if (!q->buckets) {
                kube_workqueue_free(q);
                return NULL;
        }
        return q;
}

void kube_workqueue_free(kube_workqueue *q)
{
        for (size_t i = 0; q->buckets && i < q->nbuckets; i++)
                for (item *it = q->buckets[i], *nx; it; it = nx) {
                        nx = it->hnext;
                        free(it->key);
                        free(it);
                }
        free(q->buckets);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
}

static item *lookup(kube_workqueue *q, const char *key, bool create)
{
        item **pp = &q->buckets[hash(key, q->nbuckets)];
        for (; *pp; pp = &(*pp)->hnext)
                if (strcmp((*pp)->key, key) == 0)
                        return *pp;
        if (!create)
                return NULL;
        item *it = calloc(1, sizeof(*it));
        if (!it || !(it->key = strdup(key))) {
                free(it);
                return NULL;
        }
        *pp = it;
        q->nitems++;
        return it;
}

/* Frees an item that carries no state any more. */
static void maybe_release(kube_workqueue *q, item *it)
{
        if (it->dirty || it->processing || it->queued || it->delayed || it->failures)
                return;
        for (item **pp = &q->buckets[hash(it->key, q->nbuckets)]; *pp; pp = &(*pp)->hnext)
                if (*pp == it) {
                        *pp = it->hnext;
                        break;
                }
        q->nitems--;
        free(it->key);
        free(it);
}

static void push(kube_workqueue *q, item *it)
{
        it->queued = true;
        it->qnext = NULL;
        if (q->tail)
                q->tail->qnext = it;
        else
                q->head = it;
        q->tail = it;
        q->len++;
        pthread_cond_signal(&q->cond);
}

static void add_locked(kube_workqueue *q, item *it)
{
        if (it->dirty)
                return;
        it->dirty = true;
        if (!it->processing)
                push(q, it);
}

void kube_workqueue_add(kube_workqueue *q, const char *key)
{
        pthread_mutex_lock(&q->lock);
        item *it = q->shutdown ? NULL : lookup(q, key, true);
        if (it)
                add_locked(q, it);
        pthread_mutex_unlock(&q->lock);
}

static void add_after_locked(kube_workqueue *q, item *it, unsigned delay_ms)
{
        uint64_t due = (uint64_t)kv_now_ms() + delay_ms;
        if (delay_ms == 0) {
                add_locked(q, it);
                return;
        }
        if (it->delayed) { /* keep the earlier deadline */
                if (due < it->due_ms)
                        it->due_ms = due;
        } else {
                it->delayed = true;
                it->due_ms = due;
                it->dnext = q->delayed;
                q->delayed = it;
                q->ndelayed++;
        }
        pthread_cond_broadcast(&q->cond); /* a sleeping worker may need to wake earlier */
}

void kube_workqueue_add_after(kube_workqueue *q, const char *key, unsigned delay_ms)
{
        pthread_mutex_lock(&q->lock);
        item *it = q->shutdown ? NULL : lookup(q, key, true);
        if (it)
                add_after_locked(q, it, delay_ms);
        pthread_mutex_unlock(&q->lock);
}

/* Token bucket shared by all retries, so a failing API server is not hammered by every key at once. */
static unsigned bucket_delay(kube_workqueue *q)
{
        uint64_t now = (uint64_t)kv_now_ms();
        q->tokens += (double)(now - q->tokens_at) * q->opts.qps / 1000.0;
        if (q->tokens > q->opts.burst)
                q->tokens = q->opts.burst;
        q->tokens_at = now;
        q->tokens -= 1;
        if (q->tokens >= 0 || q->opts.qps <= 0)
                return 0;
        return (unsigned)(-q->tokens * 1000.0 / q->opts.qps);
}

unsigned kube_workqueue_add_rate_limited(kube_workqueue *q, const char *key)
{
        unsigned delay = 0;
        pthread_mutex_lock(&q->lock);
        item *it = q->shutdown ? NULL : lookup(q, key, true);
        if (it) {
                uint64_t d = q->opts.base_ms;
                for (unsigned i = 0; i < it->failures && d < q->opts.max_ms; i++)
                        d *= 2;
                delay = (unsigned)(d > q->opts.max_ms ? q->opts.max_ms : d);
                it->failures++;
                unsigned b = bucket_delay(q);
                if (b > delay)
                        delay = b;
                add_after_locked(q, it, delay);
        }
        pthread_mutex_unlock(&q->lock);
        return delay;
}

void kube_workqueue_forget(kube_workqueue *q, const char *key)
{
        pthread_mutex_lock(&q->lock);
        item *it = lookup(q, key, false);
        if (it) {
                it->failures = 0;
                maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
}

unsigned kube_workqueue_failures(kube_workqueue *q, const char *key)
{
        pthread_mutex_lock(&q->lock);
        item *it = lookup(q, key, false);
        unsigned f = it ? it->failures : 0;
        pthread_mutex_unlock(&q->lock);
        return f;
}

/* Moves due delayed keys to the FIFO; returns ms until the next one is due (or -1). */
static long promote_due(kube_workqueue *q)
{
        uint64_t now = (uint64_t)kv_now_ms();
        long next = -1;
        for (item **pp = &q->delayed; *pp;) {
                item *it = *pp;
                if (it->due_ms <= now) {
                        *pp = it->dnext;
                        it->delayed = false;
                        q->ndelayed--;
                        add_locked(q, it);
                        continue;
                }
                long left = (long)(it->due_ms - now);
                if (next < 0 || left < next)
                        next = left;
                pp = &it->dnext;
        }
        return next;
}

int kube_workqueue_get(kube_workqueue *q, char **key, int timeout_ms)
{
        uint64_t deadline = timeout_ms >= 0 ? (uint64_t)kv_now_ms() + (uint64_t)timeout_ms : 0;
        int r = 0;
        pthread_mutex_lock(&q->lock);
        for (;;) {
                long next = promote_due(q);
                if (q->shutdown) {
                        r = -ESHUTDOWN;
                        break;
                }
                if (q->head)
                        break;
                uint64_t now = (uint64_t)kv_now_ms();
                if (timeout_ms >= 0 && now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                uint64_t wake = next >= 0 ? now + (uint64_t)next : 0;
                if (timeout_ms >= 0 && (!wake || deadline < wake))
                        wake = deadline;
                if (!wake) {
                        pthread_cond_wait(&q->cond, &q->lock);
                } else {
                        struct timespec ts = {.tv_sec = (time_t)(wake / 1000),
                                              .tv_nsec = (long)(wake % 1000) * 1000000L};
                        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
                }
        }
        if (r == 0) {
                item *it = q->head;
                q->head = it->qnext;
                if (!q->head)
                        q->tail = NULL;
                q->len--;
                it->queued = false;
                it->dirty = false;
                it->processing = true;
                *key = strdup(it->key);
                if (!*key)
                        r = -ENOMEM;
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

void kube_workqueue_done(kube_workqueue *q, const char *key)
{
        pthread_mutex_lock(&q->lock);
        item *it = lookup(q, key, false);
        if (it) {
                it->processing = false;
                if (it->dirty)
                        push(q, it);
                else
                        maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
}

size_t kube_workqueue_len(kube_workqueue *q)
{
        pthread_mutex_lock(&q->lock);
        size_t n = q->len;
        pthread_mutex_unlock(&q->lock);
        return n;
}

size_t kube_workqueue_delayed(kube_workqueue *q)
{
        pthread_mutex_lock(&q->lock);
        size_t n = q->ndelayed;
        pthread_mutex_unlock(&q->lock);
        return n;
}

void kube_workqueue_shutdown(kube_workqueue *q)
{
        pthread_mutex_lock(&q->lock);
        q->shutdown = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}
