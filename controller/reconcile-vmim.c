/* VMIM reconciler: migrations are accepted and given a phase; moving the guest is a later issue. */
#include "api.h"
#include "controller.h"
#include "vmistatus.h"

#include <string.h>

typedef struct vmim_args {
        const char *phase, *reason;
} vmim_args;

static int mutate_vmim_status(cJSON *vmim, void *ud)
{
        vmim_args *a = ud;
        const char *cur = kube_str(vmim, "status.phase");
        if (cur && !strcmp(cur, a->phase))
                return 0;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(vmim, "status");
        if (!cJSON_IsObject(st)) {
                cJSON_DeleteItemFromObjectCaseSensitive(vmim, "status");
                st = cJSON_AddObjectToObject(vmim, "status");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(st, "phase");
        cJSON_AddStringToObject(st, "phase", a->phase);
        cJSON *conds = cJSON_CreateArray(), *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", "Accepted");
        cJSON_AddStringToObject(c, "status", "True");
        cJSON_AddStringToObject(c, "message", a->reason);
        cJSON_AddItemToArray(conds, c);
        cJSON_DeleteItemFromObjectCaseSensitive(st, "conditions");
        cJSON_AddItemToObject(st, "conditions", conds);
        return 1;
}

int reconcile_vmim(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *m = kube_store_get(&c->vmims.store, key);
        if (!m || kube_obj(m, "metadata.deletionTimestamp"))
                return 0;
        const char *phase = kube_str(m, "status.phase");
        if (phase && (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")))
                return 0;
        char vkey[600];
        snprintf(vkey, sizeof(vkey), "%s/%s", kube_str(m, "metadata.namespace"),
                 kube_str(m, "spec.vmiName") ?: "");
        _cleanup_json_ cJSON *vmi = kube_store_get(&c->vmis.store, vkey);
        vmim_args a = {"Pending",
                       "accepted; live migration is not implemented yet, the migration stays Pending"};
        if (!vmi || strcmp(vmi_phase(vmi), "Running"))
                a = (vmim_args){"Failed", "spec.vmiName: no Running VirtualMachineInstance of that name"};
        int r = kube_update_retry(api, &kube_vmim, kube_str(m, "metadata.namespace"),
                                  kube_str(m, "metadata.name"), m, true, mutate_vmim_status, &a, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}
