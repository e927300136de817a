/* Resource descriptors, URL paths and object accessors: pure, no transport (libkubecore). */
#include "resource.h"
#include "macro.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
const kube_resource kube_vmi = {"/apis/kubevirt.io/v1", "virtualmachineinstances", "VirtualMachineInstance",
                                "kubevirt.io/v1", false};
const kube_resource kube_vm = {"/apis/kubevirt.io/v1", "virtualmachines", "VirtualMachine", "kubevirt.io/v1",
                               true};
const kube_resource kube_vmim = {"/apis/kubevirt.io/v1", "virtualmachineinstancemigrations",
                                 "VirtualMachineInstanceMigration", "kubevirt.io/v1", true};
const kube_resource kube_vmirs = {"/apis/kubevirt.io/v1", "virtualmachineinstancereplicasets",
                                  "VirtualMachineInstanceReplicaSet", "kubevirt.io/v1", true};
const kube_resource kube_vmpool = {"/apis/pool.kubevirt.io/v1beta1", "virtualmachinepools",
                                   "VirtualMachinePool", "pool.kubevirt.io/v1beta1", true};
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
/* CDI's DataSource: a named pointer to a claim, a DataVolume's sourceRef */
const kube_resource kube_datasource = {"/apis/cdi.kubevirt.io/v1beta1", "datasources", "DataSource",
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

/* Percent-encodes everything but RFC 3986's unreserved characters (as curl_easy_escape did). */
static char *escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        char *out = malloc(strlen(s) * 3 + 1), *o = out;
        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~", *p)) {
                        *o++ = (char)*p;
                        continue;
                }
                *o++ = '%';
                *o++ = hex[*p >> 4];
                *o++ = hex[*p & 15];
        }
        *o = '\0';
        return out;
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
        free(ens);
        free(ename);
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
                                free(ev);
                                free(out);
                                va_end(ap);
                                return NULL;
                        }
                        out = n;
                }
                len += sprintf(out + len, "%c%s=%s", sep, k, ev);
                sep = '&';
                free(ev);
        }
        va_end(ap);
        return out;
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
