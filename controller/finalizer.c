/* Finalizer add/remove by conditional merge patch; see finalizer.h. */
#include "finalizer.h"
#include "controller.h"

#include <string.h>

bool finalizer_has(const cJSON *obj, const char *finalizer)
{
        const cJSON *f;
        cJSON_ArrayForEach(f, kube_obj(obj, "metadata.finalizers"))
        {
                if (cJSON_IsString(f) && !strcmp(f->valuestring, finalizer))
                        return true;
        }
        return false;
}

int finalizer_patch(kube_client *api, const kube_resource *res, const cJSON *obj, const char *finalizer,
                    bool add, cJSON *extra, cJSON **out, kv_error *err)
{
        _cleanup_json_ cJSON *patch = extra ? extra : cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(patch, "metadata");
        cJSON *md = cJSON_AddObjectToObject(patch, "metadata"),
              *fins = cJSON_AddArrayToObject(md, "finalizers");
        const cJSON *f;
        cJSON_ArrayForEach(f, kube_obj(obj, "metadata.finalizers"))
        {
                if (cJSON_IsString(f) && strcmp(f->valuestring, finalizer))
                        cJSON_AddItemToArray(fins, cJSON_CreateString(f->valuestring));
        }
        if (add)
                cJSON_AddItemToArray(fins, cJSON_CreateString(finalizer));
        cJSON_AddStringToObject(md, "resourceVersion", kube_str(obj, "metadata.resourceVersion"));
        return kube_merge_patch(api, res, kube_str(obj, "metadata.namespace"), kube_str(obj, "metadata.name"),
                                patch, false, out, err);
}

int finalizer_set(kube_client *api, const kube_resource *res, const cJSON *obj, const char *finalizer,
                  bool add, kv_error *err)
{
        if (finalizer_has(obj, finalizer) == add)
                return 0;
        int r = finalizer_patch(api, res, obj, finalizer, add, NULL, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r < 0 ? r : 1;
}
