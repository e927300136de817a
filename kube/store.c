/* Hash table of compact JSON objects with one secondary index; see store.h for why JSON text. */
#include "store.h"
#include "api.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kube_store_entry {
        kube_store_entry *next, *inext;
        char *key, *index, *json;
        size_t json_len;
        char tag[16];
};

static uint64_t hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

char *kube_object_key(const cJSON *obj)
{
        const char *ns = kube_str(obj, "metadata.namespace"), *name = kube_str(obj, "metadata.name");
        char *k = NULL;
        if (!name)
                return NULL;
        if (asprintf(&k, "%s/%s", ns ? ns : "", name) < 0)
                return NULL;
        return k;
}

int kube_store_init(kube_store *s, const kube_store_ops *ops)
{
        memset(s, 0, sizeof(*s));
        if (ops)
                s->ops = *ops;
        s->nbuckets = 1024;
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        s->ibuckets = calloc(s->nbuckets, sizeof(*s->ibuckets));
        if (!s->buckets || !s->ibuckets)
                return -ENOMEM;
        return -pthread_rwlock_init(&s->lock, NULL);
}

static void entry_free(kube_store_entry *e)
{
        free(e->key);
        free(e->index);
        free(e->json);
        free(e);
}

void kube_store_free(kube_store *s)
{
        for (size_t i = 0; s->buckets && i < s->nbuckets; i++)
                for (kube_store_entry *e = s->buckets[i], *nx; e; e = nx) {
                        nx = e->next;
                        entry_free(e);
                }
        free(s->buckets);
        free(s->ibuckets);
        pthread_rwlock_destroy(&s->lock);
        memset(s, 0, sizeof(*s));
}

static kube_store_entry **find(kube_store *s, const char *key)
{
        kube_store_entry **pp = &s->buckets[hash(key) % s->nbuckets];
        while (*pp && strcmp((*pp)->key, key) != 0)
                pp = &(*pp)->next;
        return pp;
}

static void index_link(kube_store *s, kube_store_entry *e)
{
        if (!e->index)
                return;
        kube_store_entry **b = &s->ibuckets[hash(e->index) % s->nbuckets];
        e->inext = *b;
        *b = e;
}

static void index_unlink(kube_store *s, kube_store_entry *e)
{
        if (!e->index)
                return;
        for (kube_store_entry **pp = &s->ibuckets[hash(e->index) % s->nbuckets]; *pp; pp = &(*pp)->inext)
                if (*pp == e) {
                        *pp = e->inext;
                        return;
                }
}

static void grow(kube_store *s)
{
        size_t nb = s->nbuckets * 2;
        kube_store_entry **b = calloc(nb, sizeof(*b)), **ib = calloc(nb, sizeof(*ib));
        if (!b || !ib) { /* keep the old, longer chains: correct, just slower */
                free(b);
                free(ib);
                return;
        }
        kube_store_entry **old = s->buckets;
        size_t onb = s->nbuckets;
        free(s->ibuckets);
        s->buckets = b;
        s->ibuckets = ib;
        s->nbuckets = nb;
        for (size_t i = 0; i < onb; i++)
                for (kube_store_entry *e = old[i], *nx; e; e = nx) {
                        nx = e->next;
                        kube_store_entry **slot = &b[hash(e->key) % nb];
                        e->next = *slot;
                        *slot = e;
                        index_link(s, e);
                }
        free(old);
}

int kube_store_upsert(kube_store *s, cJSON *obj)
{
        if (s->ops.prune)
                s->ops.prune(obj);
        kube_store_entry *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->key = kube_object_key(obj);
        e->json = cJSON_PrintUnformatted(obj);
        e->index = s->ops.index ? s->ops.index(obj) : NULL;
        if (s->ops.tag)
                s->ops.tag(obj, e->tag, sizeof(e->tag));
        if (!e->key || !e->json) {
                entry_free(e);
                return -ENOMEM;
        }
        e->json_len = strlen(e->json);
        pthread_rwlock_wrlock(&s->lock);
        kube_store_entry **pp = find(s, e->key);
        if (*pp) {
                kube_store_entry *old = *pp;
                index_unlink(s, old);
                e->next = old->next;
                s->bytes -= old->json_len;
                entry_free(old);
        } else {
                s->n++;
        }
        *pp = e;
        s->bytes += e->json_len;
        index_link(s, e);
        if (s->n > s->nbuckets)
                grow(s);
        pthread_rwlock_unlock(&s->lock);
        return 0;
}

bool kube_store_delete(kube_store *s, const char *key)
{
        pthread_rwlock_wrlock(&s->lock);
        kube_store_entry **pp = find(s, key), *e = *pp;
        if (e) {
                *pp = e->next;
                index_unlink(s, e);
                s->n--;
                s->bytes -= e->json_len;
                entry_free(e);
        }
        pthread_rwlock_unlock(&s->lock);
        return e != NULL;
}

cJSON *kube_store_get(kube_store *s, const char *key)
{
        cJSON *obj = NULL;
        pthread_rwlock_rdlock(&s->lock);
        kube_store_entry *e = *find(s, key);
        if (e)
                obj = cJSON_ParseWithLength(e->json, e->json_len);
        pthread_rwlock_unlock(&s->lock);
        return obj;
}

bool kube_store_has(kube_store *s, const char *key)
{
        pthread_rwlock_rdlock(&s->lock);
        bool has = *find(s, key) != NULL;
        pthread_rwlock_unlock(&s->lock);
        return has;
}

cJSON *kube_store_by_index(kube_store *s, const char *value)
{
        cJSON *arr = cJSON_CreateArray();
        if (!arr)
                return NULL;
        pthread_rwlock_rdlock(&s->lock);
        for (kube_store_entry *e = s->ibuckets[hash(value) % s->nbuckets]; e; e = e->inext)
                if (strcmp(e->index, value) == 0) {
                        cJSON *o = cJSON_ParseWithLength(e->json, e->json_len);
                        if (o)
                                cJSON_AddItemToArray(arr, o);
                }
        pthread_rwlock_unlock(&s->lock);
        return arr;
}

size_t kube_store_size(kube_store *s)
{
        pthread_rwlock_rdlock(&s->lock);
        size_t n = s->n;
        pthread_rwlock_unlock(&s->lock);
        return n;
}

void kube_store_foreach(kube_store *s, void (*fn)(const char *key, const char *tag, void *ud), void *ud)
{
        pthread_rwlock_rdlock(&s->lock);
        for (size_t i = 0; i < s->nbuckets; i++)
                for (kube_store_entry *e = s->buckets[i]; e; e = e->next)
                        fn(e->key, e->tag, ud);
        pthread_rwlock_unlock(&s->lock);
}
