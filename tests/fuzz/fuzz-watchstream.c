/* libFuzzer: a watch response body fed in fuzzer-chosen chunks, each event decoded and applied to an
 * informer cache (prune, index, store, read back) as virt-controller does. */
#include "store.h"
#include "watchstream.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *index_uid(const cJSON *obj)
{
        const cJSON *uid = cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "uid");
        return cJSON_IsString(uid) ? strdup(uid->valuestring) : NULL;
}

static int apply(enum kube_event_type type, cJSON *obj, void *ud)
{
        kube_store *s = ud;
        char *key = kube_object_key(obj);
        if (key) {
                if (type == KUBE_DELETED)
                        kube_store_delete(s, key);
                else if (type != KUBE_BOOKMARK && type != KUBE_ERROR)
                        kube_store_upsert(s, obj);
                cJSON_Delete(kube_store_get(s, key));
                free(key);
        }
        char *uid = index_uid(obj);
        if (uid) {
                cJSON_Delete(kube_store_by_index(s, uid));
                free(uid);
        }
        cJSON_Delete(obj);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        kube_store store;
        kube_store_ops ops = {NULL, index_uid, NULL};
        kube_watchstream ws;
        if (kube_store_init(&store, &ops) < 0)
                return 0;
        kube_watchstream_init(&ws, apply, &store);
        ws.max_line = 4096;
        /* the first byte picks the chunk size, so partial lines are exercised */
        size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
        for (size_t off = 1; off < size; off += step)
                kube_watchstream_feed(&ws, (const char *)data + off, off + step > size ? size - off : step);
        kube_watchstream_free(&ws);
        kube_store_free(&store);
        return 0;
}
