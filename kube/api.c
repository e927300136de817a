/* REST verbs for the kinds the controller handles. */
#include "api.h"
#include "macro.h"

#include <stdarg.h>
#include <string.h>

int kube_get(kube_client *c, const kube_resource *r, const char *ns, const char *name, cJSON **out,
             kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, ns, name, NULL);
        if (!p)
                return kv_error_errno(err, ENOMEM, "get");
        return kube_request(c, "GET", p, NULL, NULL, out, err);
}

int kube_list(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector, cJSON **out,
              kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, ns, NULL, NULL), *q = NULL;
        if (p)
                q = kube_path_query(p, "labelSelector", label_selector, NULL);
        if (!q)
                return kv_error_errno(err, ENOMEM, "list");
        return kube_request(c, "GET", q, NULL, NULL, out, err);
}

static int send_json(kube_client *c, const char *method, const char *path, const char *ct, const cJSON *obj,
                     cJSON **out, kv_error *err)
{
        _cleanup_free_ char *body = cJSON_PrintUnformatted(obj);
        if (!body)
                return kv_error_errno(err, ENOMEM, "%s %s", method, path);
        return kube_request(c, method, path, ct, body, out, err);
}

int kube_create(kube_client *c, const kube_resource *r, const char *ns, const cJSON *obj, cJSON **out,
                kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, ns, NULL, NULL);
        if (!p)
                return kv_error_errno(err, ENOMEM, "create");
        return send_json(c, "POST", p, "application/json", obj, out, err);
}

static const char *sub_for(const kube_resource *r, bool status)
{
        return status && r->status_subresource ? "status" : NULL;
}

int kube_update(kube_client *c, const kube_resource *r, const cJSON *obj, bool status, cJSON **out,
                kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, kube_str(obj, "metadata.namespace"),
                                           kube_str(obj, "metadata.name"), sub_for(r, status));
        if (!p)
                return kv_error_errno(err, ENOMEM, "update");
        return send_json(c, "PUT", p, "application/json", obj, out, err);
}

int kube_merge_patch(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                     const cJSON *patch, bool status, cJSON **out, kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, ns, name, sub_for(r, status));
        if (!p)
                return kv_error_errno(err, ENOMEM, "patch");
        return send_json(c, "PATCH", p, "application/merge-patch+json", patch, out, err);
}

int kube_delete(kube_client *c, const kube_resource *r, const char *ns, const char *name, const char *uid,
                const char *resource_version, const char *propagation, kv_error *err)
{
        _cleanup_free_ char *p = kube_path(r, ns, name, NULL);
        cJSON *opts = cJSON_CreateObject(), *pre = cJSON_CreateObject();
        if (!p || !opts || !pre) {
                cJSON_Delete(opts);
                cJSON_Delete(pre);
                return kv_error_errno(err, ENOMEM, "delete");
        }
        cJSON_AddStringToObject(opts, "kind", "DeleteOptions");
        cJSON_AddStringToObject(opts, "apiVersion", "v1");
        if (propagation)
                cJSON_AddStringToObject(opts, "propagationPolicy", propagation);
        if (uid)
                cJSON_AddStringToObject(pre, "uid", uid);
        if (resource_version)
                cJSON_AddStringToObject(pre, "resourceVersion", resource_version);
        if (uid || resource_version)
                cJSON_AddItemToObject(opts, "preconditions", pre);
        else
                cJSON_Delete(pre);
        int ret = send_json(c, "DELETE", p, "application/json", opts, NULL, err);
        cJSON_Delete(opts);
        if (ret == -KUBE_ENOTFOUND)
                return 0;
        return ret;
}

int kube_update_retry(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                      const cJSON *obj_hint, bool status, kube_mutate_fn mutate, void *userdata, cJSON **out,
                      kv_error *err)
{
        int ret = 0;
        for (int attempt = 0; attempt < 5; attempt++) {
                cJSON *obj = NULL;
                if (attempt == 0 && obj_hint)
                        obj = cJSON_Duplicate(obj_hint, 1);
                else if ((ret = kube_get(c, r, ns, name, &obj, err)) < 0)
                        return ret;
                if (!obj)
                        return kv_error_errno(err, ENOMEM, "update %s/%s", ns, name);
                ret = mutate(obj, userdata);
                if (ret <= 0) {
                        cJSON_Delete(obj);
                        return ret;
                }
                ret = kube_update(c, r, obj, status, out, err);
                cJSON_Delete(obj);
                if (ret != -KUBE_ECONFLICT)
                        return ret;
        }
        return ret;
}
