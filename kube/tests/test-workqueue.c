/* Work queue semantics: dedup, no key twice in flight, re-add while processing, backoff, delays,
 * shutdown; plus the informer cache's index. */
#include "store.h"
#include "workqueue.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *get(kube_workqueue *q, int timeout)
{
        char *k = NULL;
        int r = kube_workqueue_get(q, &k, timeout);
        return r == 0 ? k : NULL;
}

static void test_dedup_and_processing(void)
{
        kube_workqueue *q = kube_workqueue_new(NULL);
        kube_workqueue_add(q, "a");
        kube_workqueue_add(q, "b");
        kube_workqueue_add(q, "a");
        assert(kube_workqueue_len(q) == 2);
        char *k = get(q, 0);
        assert(!strcmp(k, "a"));
        kube_workqueue_add(q, "a"); /* while processing: not handed out again until done */
        char *k2 = get(q, 0);
        assert(!strcmp(k2, "b"));
        assert(get(q, 10) == NULL);
        kube_workqueue_done(q, "a");
        char *k3 = get(q, 0);
        assert(k3 && !strcmp(k3, "a"));
        kube_workqueue_done(q, "a");
        kube_workqueue_done(q, "b");
        assert(kube_workqueue_len(q) == 0);
        free(k), free(k2), free(k3);
        kube_workqueue_free(q);
}

static void test_backoff(void)
{
        kube_workqueue_opts o = {.base_ms = 10, .max_ms = 40, .qps = 1000, .burst = 100};
        kube_workqueue *q = kube_workqueue_new(&o);
        assert(kube_workqueue_add_rate_limited(q, "x") == 10);
        assert(kube_workqueue_add_rate_limited(q, "x") == 20);
        assert(kube_workqueue_add_rate_limited(q, "x") == 40);
        assert(kube_workqueue_add_rate_limited(q, "x") == 40); /* capped */
        assert(kube_workqueue_failures(q, "x") == 4);
        assert(kube_workqueue_len(q) == 0 && kube_workqueue_delayed(q) == 1);
        assert(get(q, 0) == NULL);
        char *k = get(q, 500); /* due after the first (earliest) delay */
        assert(k && !strcmp(k, "x"));
        kube_workqueue_forget(q, "x");
        assert(kube_workqueue_failures(q, "x") == 0);
        kube_workqueue_done(q, "x");
        free(k);
        kube_workqueue_add_after(q, "later", 30);
        kube_workqueue_add(q, "now");
        k = get(q, 0);
        assert(!strcmp(k, "now"));
        free(k);
        k = get(q, 1000);
        assert(k && !strcmp(k, "later"));
        free(k);
        kube_workqueue_shutdown(q);
        char *none = NULL;
        assert(kube_workqueue_get(q, &none, -1) == -ESHUTDOWN);
        kube_workqueue_free(q);
}

static void test_bucket(void)
{
        kube_workqueue_opts o = {.base_ms = 1, .max_ms = 1, .qps = 10, .burst = 2};
        kube_workqueue *q = kube_workqueue_new(&o);
        assert(kube_workqueue_add_rate_limited(q, "a") <= 1);
        assert(kube_workqueue_add_rate_limited(q, "b") <= 1);
        assert(kube_workqueue_add_rate_limited(q, "c") >= 90); /* burst used up: 10/s */
        kube_workqueue_free(q);
}

static char *idx(const cJSON *o)
{
        const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "uid");
        return v ? strdup(v->valuestring) : NULL;
}

static void prune(cJSON *o)
{
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(o, "metadata"), "managedFields");
}

static void test_store(void)
{
        kube_store s;
        kube_store_ops ops = {prune, idx, NULL};
        assert(kube_store_init(&s, &ops) == 0);
        char buf[256];
        for (int i = 0; i < 3000; i++) { /* forces the table to grow twice */
                snprintf(buf, sizeof(buf),
                         "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"o%d\",\"uid\":\"u%d\","
                         "\"managedFields\":[1]}}",
                         i, i % 100);
                cJSON *o = cJSON_Parse(buf);
                assert(kube_store_upsert(&s, o) == 0);
                cJSON_Delete(o);
        }
        assert(kube_store_size(&s) == 3000);
        cJSON *got = kube_store_get(&s, "ns/o42");
        assert(got && !cJSON_GetObjectItem(cJSON_GetObjectItem(got, "metadata"), "managedFields"));
        cJSON_Delete(got);
        cJSON *byidx = kube_store_by_index(&s, "u7");
        assert(cJSON_GetArraySize(byidx) == 30);
        cJSON_Delete(byidx);
        assert(kube_store_delete(&s, "ns/o7") && !kube_store_delete(&s, "ns/o7"));
        byidx = kube_store_by_index(&s, "u7");
        assert(cJSON_GetArraySize(byidx) == 29);
        cJSON_Delete(byidx);
        /* re-indexing on update */
        cJSON *o = cJSON_Parse("{\"metadata\":{\"namespace\":\"ns\",\"name\":\"o107\",\"uid\":\"other\"}}");
        kube_store_upsert(&s, o);
        cJSON_Delete(o);
        byidx = kube_store_by_index(&s, "u7");
        assert(cJSON_GetArraySize(byidx) == 28);
        cJSON_Delete(byidx);
        kube_store_free(&s);
}

int main(void)
{
        test_dedup_and_processing();
        test_backoff();
        test_bucket();
        test_store();
        printf("workqueue+store: ok\n");
        return 0;
}
