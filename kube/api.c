/* REST verbs for the kinds the controller handles. */
#include "api.h"
#include "macro.h"

#include <stdarg.h>
#include <string.h>

const kube_resource kube_vmi = {"/apis/kubevirt.io/v1", "virtualmachineinstances", "VirtualMachineInstance",
                                "kubevirt.io/v1", false};
const kube_resource kube_vm = {"/apis/kubevirt.io/v1", "virtualmachines", "VirtualMachine", "kubevirt.io/v1",
                               true};
const kube_resource kube_vmim = {"/apis/kubevirt.io/v1", "virtualmachineinstancemigrations",
                                 "VirtualMachineInstanceMigration", "kubevirt.io/v1", true};
const kube_resource kube_pod = {"/api/v1", "pods", "Pod", "v1", true};
const kube_resource kube_namespace = {"/api/v1", "namespaces", "Namespace", "v1", false};
const kube_resource kube_vmsnapshot = {"/apis/snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshots",
                                       "VirtualMachineSnapshot", "snapshot.kubevirt.io/v1beta1", true};
const kube_resource kube_vmsnapshotcontent = {
    "/apis/snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshotcontents", "VirtualMachineSnapshotContent",
    "snapshot.kubevirt.io/v1beta1", true};
const kube_resource kube_vmrestore = {"/apis/snapshot.kubevirt.io/v1beta1", "virtualmachinerestores",
                                      "VirtualMachineRestore", "snapshot.kubevirt.io/v1beta1", true};
const kube_resource kube_pvc = {"/api/v1", "persistentvolumeclaims", "PersistentVolumeClaim", "v1", true};
const kube_resource kube_secret = {"/api/v1", "secrets", "Secret", "v1", false};
const kube_resource kube_event = {"/api/v1", "events", "Event", "v1", false};
const kube_resource kube_datavolume = {"/apis/cdi.kubevirt.io/v1beta1", "datavolumes", "DataVolume",
                                       "cdi.kubevirt.io/v1beta1", true};
/* apps/v1: a VM's instancetype/preference revisions */
const kube_resource kube_controllerrevision = {"/apis/apps/v1", "controllerrevisions", "ControllerRevision",
                                               "apps/v1", false};
/* instancetype.kubevirt.io/v1beta1; the cluster kinds are cluster-scoped (ns NULL) */
const kube_resource kube_vminstancetype = {"/apis/instancetype.kubevirt.io/v1beta1",
                                           "virtualmachineinstancetypes", "VirtualMachineInstancetype",
                                           "instancetype.kubevirt.io/v1beta1", false};
const kube_resource kube_vmclusterinstancetype = {
    "/apis/instancetype.kubevirt.io/v1beta1", "virtualmachineclusterinstancetypes",
    "VirtualMachineClusterInstancetype", "instancetype.kubevirt.io/v1beta1", false};
const kube_resource kube_vmpreference = {"/apis/instancetype.kubevirt.io/v1beta1",
                                         "virtualmachinepreferences", "VirtualMachinePreference",
                                         "instancetype.kubevirt.io/v1beta1", false};
const kube_resource kube_vmclusterpreference = {
    "/apis/instancetype.kubevirt.io/v1beta1", "virtualmachineclusterpreferences",
    "VirtualMachineClusterPreference", "instancetype.kubevirt.io/v1beta1", false};
/* cluster-scoped: pass ns NULL */
const kube_resource kube_migrationpolicy = {"/apis/migrations.kubevirt.io/v1alpha1", "migrationpolicies",
                                            "MigrationPolicy", "migrations.kubevirt.io/v1alpha1", false};

static char *escape(const char *s)
{
        return curl_easy_escape(NULL, s, 0);
}

char *kube_path(const kube_resource *r, const char *ns, const char *name, const char *sub)
{
        char *ens = ns ? escape(ns) : NULL, *ename = name ? escape(name) : NULL, *out = NULL;
        if ((ns && !ens) || (name && !ename))
                goto done;
        if (asprintf(&out, "%s%s%s/%s%s%s%s%s", r->prefix, ens ? "/namespaces/" : "", ens ? ens : "",
                     r->plural, ename ? "/" : "", ename ? ename : "", sub ? "/" : "", sub ? sub : "") < 0)
                out = NULL;
done:
        curl_free(ens);
        curl_free(ename);
        return out;
}

char *kube_path_query(const char *path, ...)
{
        size_t cap = strlen(path) + 256, len;
        char *out = malloc(cap);
        if (!out)
                return NULL;
        strcpy(out, path);
        len = strlen(out);
        char sep = strchr(path, '?') ? '&' : '?';
        va_list ap;
        va_start(ap, path);
        for (const char *k; (k = va_arg(ap, const char *));) {
                const char *v = va_arg(ap, const char *);
                if (!v)
                        continue;
                char *ev = escape(v);
                size_t need = len + strlen(k) + (ev ? strlen(ev) : 0) + 3;
                if (!ev || need > cap) {
                        char *n = ev ? realloc(out, cap = need * 2) : NULL;
                        if (!n) {
                                curl_free(ev);
                                free(out);
                                va_end(ap);
                                return NULL;
                        }
                        out = n;
                }
                len += sprintf(out + len, "%c%s=%s", sep, k, ev);
                sep = '&';
                curl_free(ev);
        }
        va_end(ap);
        return out;
}

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

cJSON *kube_obj(const cJSON *obj, const char *dotted_path)
{
        char key[128];
        const char *p = dotted_path;
        cJSON *cur = (cJSON *)obj;
        while (cur && *p) {
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n >= sizeof(key))
                        return NULL;
                memcpy(key, p, n);
                key[n] = '\0';
                cur = cJSON_GetObjectItemCaseSensitive(cur, key);
                p += n + (dot ? 1 : 0);
        }
        return cur;
}

const char *kube_str(const cJSON *obj, const char *dotted_path)
{
        const cJSON *v = kube_obj(obj, dotted_path);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

int kube_obj_ident(const cJSON *obj, const char *kind, const char *key, const char **ns, const char **name,
                   const char **uid, kv_error *err)
{
        *ns = kube_str(obj, "metadata.namespace");
        *name = kube_str(obj, "metadata.name");
        *uid = kube_str(obj, "metadata.uid");
        if (!*ns || !*name || !*uid)
                return kv_error_set(err, EINVAL, "%s %s: no namespace, name or uid", kind, key);
        return 0;
}

cJSON *kube_merge_patch_diff(const cJSON *from, const cJSON *to)
{
        if (!cJSON_IsObject(from) || !cJSON_IsObject(to))
                return cJSON_Duplicate(to, 1);
        cJSON *patch = cJSON_CreateObject();
        const cJSON *f, *t;
        cJSON_ArrayForEach(f, from)
        {
                if (!cJSON_GetObjectItemCaseSensitive(to, f->string))
                        cJSON_AddNullToObject(patch, f->string);
        }
        cJSON_ArrayForEach(t, to)
        {
                f = cJSON_GetObjectItemCaseSensitive(from, t->string);
                if (!f || !cJSON_Compare(f, t, true))
                        cJSON_AddItemToObject(patch, t->string, kube_merge_patch_diff(f, t));
        }
        return patch;
}

cJSON *kube_controller_ref(const char *api_version, const char *kind, const char *name, const char *uid)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "apiVersion", api_version);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "name", name ? name : "");
        cJSON_AddStringToObject(o, "uid", uid ? uid : "");
        cJSON_AddBoolToObject(o, "controller", true);
        cJSON_AddBoolToObject(o, "blockOwnerDeletion", true);
        return o;
}

cJSON *kube_controller_ref_of(const cJSON *owner, const char *api_version, const char *kind)
{
        return kube_controller_ref(api_version, kind, kube_str(owner, "metadata.name"),
                                   kube_str(owner, "metadata.uid"));
}
