/* backendstorage: the persistent state claim of a VMI (backendstorage.h). */
#include "backendstorage.h"

#include <stdio.h>
#include <string.h>

#include "datavolume.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "vmi.h"

/* The VM controlling the VMI, as an owner reference; else the VMI itself. */
static cJSON *owner_of(const cJSON *obj)
{
        const cJSON *o = dv_controller_ref(obj);
        cJSON *ref = o && !strcmp(kube_str(o, "kind") ?: "", "VirtualMachine")
                         ? cJSON_Duplicate(o, true)
                         : kube_controller_ref_of(obj, "kubevirt.io/v1", "VirtualMachineInstance");
        cJSON_DeleteItemFromObjectCaseSensitive(ref, "controller");
        return ref;
}

static cJSON *claim_for(const cJSON *obj, const char *name)
{
        cJSON *pvc = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(pvc, "metadata");
        cJSON_AddStringToObject(pvc, "apiVersion", "v1");
        cJSON_AddStringToObject(pvc, "kind", "PersistentVolumeClaim");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), BACKEND_STORAGE_LABEL,
                                kube_str(obj, "metadata.name"));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"), owner_of(obj));
        cJSON *spec = cJSON_AddObjectToObject(pvc, "spec");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "accessModes"),
                             cJSON_CreateString("ReadWriteOnce"));
        cJSON_AddStringToObject(spec, "volumeMode", "Filesystem");
        cJSON_AddStringToObject(
            cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "resources"), "requests"), "storage",
            BACKEND_STORAGE_SIZE);
        return pvc;
}

int backend_storage_ensure(kube_client *api, const cJSON *obj, kv_error *err)
{
        const char *ns = kube_str(obj, "metadata.namespace");
        char name[300];
        snprintf(name, sizeof(name), VMI_BACKEND_STORAGE_PREFIX "%s", kube_str(obj, "metadata.name") ?: "");
        _cleanup_json_ cJSON *pvc = NULL, *want = claim_for(obj, name);
        int r = kube_get(api, &kube_pvc, ns, name, &pvc, err);
        if (r != -KUBE_ENOTFOUND)
                return r;
        r = kube_create(api, &kube_pvc, ns, want, NULL, err);
        if (r == 0)
                log_info("VMI %s/%s: backend storage claim %s created", ns, kube_str(obj, "metadata.name"),
                         name);
        return r == -KUBE_EEXISTS ? 0 : r;
}
