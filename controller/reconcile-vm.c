/* VM reconciler: keeps a VMI (same name, owned by the VM) per runStrategy and writes VM status. */
#include "api.h"
#include "controller.h"
#include "log.h"
#include "macro.h"
#include "vmistatus.h"

#include <string.h>

/* spec.runStrategy, or the legacy spec.running mapped as KubeVirt does. */
static const char *run_strategy(const cJSON *vm)
{
        const char *s = kube_str(vm, "spec.runStrategy");
        if (s)
                return s;
        return cJSON_IsTrue(kube_obj(vm, "spec.running")) ? "Always" : "Halted";
}

static bool owned_by(const cJSON *obj, const char *uid)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences"))
        {
                const char *ouid = kube_str(o, "uid");
                if (ouid && uid && !strcmp(ouid, uid))
                        return true;
        }
        return false;
}

static cJSON *vmi_from_template(const cJSON *vm)
{
        const cJSON *tmpl = kube_obj(vm, "spec.template");
        cJSON *vmi = cJSON_CreateObject(), *md = cJSON_CreateObject(), *owner = cJSON_CreateObject();
        cJSON_AddStringToObject(vmi, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vmi, "kind", "VirtualMachineInstance");
        cJSON_AddItemToObject(vmi, "metadata", md);
        cJSON_AddStringToObject(md, "name", kube_str(vm, "metadata.name"));
        cJSON_AddStringToObject(md, "namespace", kube_str(vm, "metadata.namespace"));
        const cJSON *labels = kube_obj(tmpl, "metadata.labels"),
                    *ann = kube_obj(tmpl, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, 1));
        if (ann)
                cJSON_AddItemToObject(md, "annotations", cJSON_Duplicate(ann, 1));
        cJSON *owners = cJSON_AddArrayToObject(md, "ownerReferences");
        cJSON_AddStringToObject(owner, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(owner, "kind", "VirtualMachine");
        cJSON_AddStringToObject(owner, "name", kube_str(vm, "metadata.name"));
        cJSON_AddStringToObject(owner, "uid", kube_str(vm, "metadata.uid"));
        cJSON_AddBoolToObject(owner, "controller", true);
        cJSON_AddBoolToObject(owner, "blockOwnerDeletion", true);
        cJSON_AddItemToArray(owners, owner);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
        cJSON_AddItemToObject(vmi, "spec", spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateObject());
        return vmi;
}

/* Whether a VMI should exist now; *stop says an existing one must be deleted. */
static bool want_running(const char *strategy, const cJSON *vmi, bool *stop)
{
        const char *phase = vmi ? vmi_phase(vmi) : "";
        *stop = false;
        if (!strcmp(strategy, "Halted")) {
                *stop = vmi != NULL;
                return false;
        }
        if (!strcmp(strategy, "Always")) {
                *stop = vmi_phase_is_final(phase); /* delete the finished VMI; a fresh one follows */
                return true;
        }
        if (!strcmp(strategy, "RerunOnFailure")) {
                *stop = !strcmp(phase, "Failed");
                return !vmi || !vmi_phase_is_final(phase) || *stop;
        }
        if (!strcmp(strategy, "Once"))
                return true; /* created once; a finished VMI stays and is not rerun */
        return false;        /* Manual: only a user (virtctl start/stop) changes it */
}

static const char *printable_status(const cJSON *vm, const cJSON *vmi)
{
        if (kube_obj(vm, "metadata.deletionTimestamp"))
                return "Terminating";
        if (!vmi)
                return "Stopped";
        if (kube_obj(vmi, "metadata.deletionTimestamp"))
                return "Stopping";
        const char *p = vmi_phase(vmi);
        if (!strcmp(p, "Running"))
                return "Running";
        if (!strcmp(p, "Succeeded") || !strcmp(p, "Failed"))
                return !strcmp(p, "Failed") ? "Failed" : "Stopped";
        return "Starting";
}

typedef struct vm_status_args {
        const cJSON *vmi;
        const char *now;
} vm_status_args;

static int mutate_vm_status(cJSON *vm, void *ud)
{
        vm_status_args *a = ud;
        const cJSON *ready_c = NULL, *c;
        cJSON_ArrayForEach(c, kube_obj(a->vmi, "status.conditions")) if (!strcmp(kube_str(c, "type") ?: "",
                                                                                 "Ready")) ready_c = c;
        bool ready = ready_c && !strcmp(kube_str(ready_c, "status") ?: "", "True");
        cJSON *st = cJSON_CreateObject();
        cJSON_AddBoolToObject(st, "created", a->vmi != NULL);
        cJSON_AddBoolToObject(st, "ready", ready);
        cJSON_AddStringToObject(st, "printableStatus", printable_status(vm, a->vmi));
        cJSON *conds = cJSON_AddArrayToObject(st, "conditions"), *rc = cJSON_CreateObject();
        cJSON_AddStringToObject(rc, "type", "Ready");
        cJSON_AddStringToObject(rc, "status", ready ? "True" : "False");
        cJSON_AddNullToObject(rc, "lastProbeTime");
        const char *ltt = kube_str(ready_c, "lastTransitionTime");
        cJSON_AddStringToObject(rc, "lastTransitionTime", ltt ? ltt : a->now);
        cJSON_AddItemToArray(conds, rc);
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(vm, "status");
        if (cur && cJSON_Compare(cur, st, true)) {
                cJSON_Delete(st);
                return 0;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(vm, "status");
        cJSON_AddItemToObject(vm, "status", st);
        return 1;
}

static int ensure_vmi(controller *c, kube_client *api, const char *key, const cJSON *vm, const cJSON *vmi,
                      kv_error *err)
{
        bool stop;
        bool run = want_running(run_strategy(vm), vmi, &stop);
        const char *ns = kube_str(vm, "metadata.namespace"), *name = kube_str(vm, "metadata.name");
        if (vmi && stop && !kube_obj(vmi, "metadata.deletionTimestamp")) {
                log_info("VM %s: deleting VMI (runStrategy %s, phase %s)", key, run_strategy(vm),
                         vmi_phase(vmi));
                return kube_delete(api, &kube_vmi, ns, name, kube_str(vmi, "metadata.uid"), NULL,
                                   "Background", err);
        }
        if (vmi || !run || !expectations_satisfied(c->vmi_exp, key))
                return 0;
        _cleanup_json_ cJSON *nvmi = vmi_from_template(vm);
        expectations_expect_create(c->vmi_exp, key);
        int r = kube_create(api, &kube_vmi, ns, nvmi, NULL, err);
        if (r < 0) {
                expectations_observed(c->vmi_exp, key);
                return r == -KUBE_EEXISTS ? 0
                                          : r; /* the old VMI is still finalizing; its DELETED requeues us */
        }
        log_info("VM %s: created VMI", key);
        return 0;
}

int reconcile_vm(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *vm = kube_store_get(&c->vms.store, key),
                             *vmi = kube_store_get(&c->vmis.store, key);
        if (!vm) {
                expectations_forget(c->vmi_exp, key);
                return 0;
        }
        if (vmi && !owned_by(vmi, kube_str(vm, "metadata.uid"))) {
                cJSON_Delete(vmi); /* a VMI of the same name that is not ours: leave it alone */
                vmi = NULL;
        }
        int r = 0;
        if (!kube_obj(vm, "metadata.deletionTimestamp"))
                r = ensure_vmi(c, api, key, vm, vmi, err);
        if (r < 0)
                return r;
        char now[40];
        rfc3339_utc(now, sizeof(now));
        vm_status_args a = {vmi, now};
        r = kube_update_retry(api, &kube_vm, kube_str(vm, "metadata.namespace"),
                              kube_str(vm, "metadata.name"), vm, true, mutate_vm_status, &a, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}
