/* Pending-creation counts per key with a timestamp, so a lost event cannot block a key forever. */
#include "expectations.h"
#include "informer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct exp {
        struct exp *next;
        char *key;
        int pending;
        uint64_t since_ms;
} exp;

#define NB 4096

struct expectations {
        pthread_mutex_t lock;
        exp *b[NB];
        unsigned timeout_ms;
};

static exp **slot(expectations *e, const char *key)
{
        uint64_t h = 1469598103934665603ULL;
        for (const char *s = key; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        exp **pp = &e->b[h % NB];
        while (*pp && strcmp((*pp)->key, key))
                pp = &(*pp)->next;
        return pp;
}

expectations *expectations_new(unsigned timeout_ms)
{
        expectations *e = calloc(1, sizeof(*e));
        if (!e)
                return NULL;
        pthread_mutex_init(&e->lock, NULL);
        e->timeout_ms = timeout_ms;
        return e;
}

static void drop(exp **pp)
{
        exp *x = *pp;
        *pp = x->next;
        free(x->key);
        free(x);
}

void expectations_free(expectations *e)
{
        for (size_t i = 0; i < NB; i++)
                while (e->b[i])
                        drop(&e->b[i]);
        pthread_mutex_destroy(&e->lock);
        free(e);
}

void expectations_expect_create(expectations *e, const char *key)
{
        pthread_mutex_lock(&e->lock);
        exp **pp = slot(e, key);
        if (!*pp && (*pp = calloc(1, sizeof(exp))) && !((*pp)->key = strdup(key))) {
                free(*pp);
                *pp = NULL;
        }
        if (*pp) {
                (*pp)->pending++;
                (*pp)->since_ms = kv_now_ms();
        }
        pthread_mutex_unlock(&e->lock);
}

void expectations_observed(expectations *e, const char *key)
{
        pthread_mutex_lock(&e->lock);
        exp **pp = slot(e, key);
        if (*pp && --(*pp)->pending <= 0)
                drop(pp);
        pthread_mutex_unlock(&e->lock);
}

bool expectations_satisfied(expectations *e, const char *key)
{
        pthread_mutex_lock(&e->lock);
        exp **pp = slot(e, key);
        bool ok = !*pp || kv_now_ms() - (*pp)->since_ms > e->timeout_ms;
        if (*pp && ok)
                drop(pp); /* timed out: the event was lost; the API lookup before create covers us */
        pthread_mutex_unlock(&e->lock);
        return ok;
}

void expectations_forget(expectations *e, const char *key)
{
        pthread_mutex_lock(&e->lock);
        exp **pp = slot(e, key);
        if (*pp)
                drop(pp);
        pthread_mutex_unlock(&e->lock);
}
