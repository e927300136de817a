/* The informer's local cache: objects keyed "namespace/name", stored as compact JSON after pruning fields
 * the controller never reads (managedFields, last-applied annotations, …), with one secondary index
 * (e.g. Pods by kubevirt.io/created-by) and a short per-object tag (e.g. VMI phase) for metrics.
 * Readers get a private parsed copy. Thread-safe (rwlock). */
#pragma once

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct kube_store_entry kube_store_entry;

typedef struct kube_store_ops {
        void (*prune)(cJSON *obj);                             /* drop unread fields before storing */
        char *(*index)(const cJSON *obj);                      /* malloc'd index value or NULL */
        void (*tag)(const cJSON *obj, char *out, size_t size); /* short summary, "" for none */
} kube_store_ops;

typedef struct kube_store {
        pthread_rwlock_t lock;
        kube_store_entry **buckets, **ibuckets;
        size_t n, nbuckets;
        size_t bytes; /* JSON bytes held, for metrics */
        kube_store_ops ops;
} kube_store;

int kube_store_init(kube_store *s, const kube_store_ops *ops);
void kube_store_free(kube_store *s);
/* Prunes obj in place and stores it. Returns 0 or -ENOMEM. */
int kube_store_upsert(kube_store *s, cJSON *obj);
/* Returns true when the key existed. */
bool kube_store_delete(kube_store *s, const char *key);
/* A parsed private copy, or NULL. */
cJSON *kube_store_get(kube_store *s, const char *key);
bool kube_store_has(kube_store *s, const char *key);
/* Parsed copies of every object whose index equals value (a JSON array, possibly empty; NULL on ENOMEM). */
cJSON *kube_store_by_index(kube_store *s, const char *value);
size_t kube_store_size(kube_store *s);
/* Calls fn(key, tag, ud) for every entry under the read lock; fn must not touch the store. */
void kube_store_foreach(kube_store *s, void (*fn)(const char *key, const char *tag, void *ud), void *ud);
/* "namespace/name" of an object (malloc'd) or NULL. */
char *kube_object_key(const cJSON *obj);
