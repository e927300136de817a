/* Status fields written idempotently; see statusfields.h. */
#include "statusfields.h"
#include "controller.h"

#include <string.h>

typedef struct fields_args {
        const cJSON *fields;
        status_open_fn open;
} fields_args;

static bool is_time_key(const char *k)
{
        return k && (!strcmp(k, "time") || !strcmp(k, "lastTransitionTime") || !strcmp(k, "lastProbeTime"));
}

/* Equal, except for the values of timestamp keys. */
static bool same(const cJSON *a, const cJSON *b)
{
        if (!a || !b)
                return a == b;
        if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
                if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
                        return false;
                const cJSON *x;
                cJSON_ArrayForEach(x, a)
                {
                        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
                        if (!y || (!is_time_key(x->string) && !same(x, y)))
                                return false;
                }
                return true;
        }
        if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
                if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
                        return false;
                for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next)
                        if (!same(x, y))
                                return false;
                return true;
        }
        return cJSON_Compare(a, b, true);
}

static int mutate_fields(cJSON *obj, void *ud)
{
        const fields_args *a = ud;
        if (a->open && !a->open(obj))
                return 0;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
        if (!cJSON_IsObject(st)) {
                cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
                st = cJSON_AddObjectToObject(obj, "status");
        }
        bool changed = false;
        const cJSON *f;
        cJSON_ArrayForEach(f, a->fields)
        {
                const cJSON *cur = cJSON_GetObjectItemCaseSensitive(st, f->string);
                if (cJSON_IsNull(f) ? !cur : same(cur, f))
                        continue;
                changed = true;
                cJSON_DeleteItemFromObjectCaseSensitive(st, f->string);
                if (!cJSON_IsNull(f))
                        cJSON_AddItemToObject(st, f->string, cJSON_Duplicate(f, true));
        }
        return changed;
}

int status_fields_write(kube_client *api, const kube_resource *res, const cJSON *obj, cJSON *fields,
                        status_open_fn open, kv_error *err)
{
        _cleanup_json_ cJSON *owned = fields;
        if (!owned)
                return kv_error_errno(err, ENOMEM, "status");
        fields_args a = {owned, open};
        int r = kube_update_retry(api, res, kube_str(obj, "metadata.namespace"),
                                  kube_str(obj, "metadata.name"), obj, true, mutate_fields, &a, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}

cJSON *status_condition(const char *type, bool status, const char *reason, const char *message)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", type);
        cJSON_AddStringToObject(c, "status", status ? "True" : "False");
        cJSON_AddStringToObject(c, "reason", reason);
        cJSON_AddStringToObject(c, "message", message);
        cJSON_AddStringToObject(c, "lastTransitionTime", now);
        return c;
}

cJSON *status_error(const char *message)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "time", now);
        return e;
}
