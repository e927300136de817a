/* VirtualMachineRestore reconciler (docs/cluster-snapshots.md): checks that the snapshot is ready and of the
 * same VM and that the VM runs, asks its launcher for a load through the VMI's snapshot requests and turns
 * the result into KubeVirt's restore status (complete, restoreTime, Progressing/Ready/Failure conditions).
 * Unlike KubeVirt, which restores stopped VMs, kvlite restores a running VM's RAM and disks. Restart-safe:
 * decided from the caches and the launcher's status. */
#include "api.h"
#include "controller.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "snapshotchannel.h"
#include "statusfields.h"

#include <stdio.h>
#include <string.h>

/* KubeVirt's: held until the restore's request is off the VMI, so a deleted restore never runs later */
#define RESTORE_FINALIZER "snapshot.kubevirt.io/vmrestore-protection"

typedef struct vmrestore {
        controller *c;
        kube_client *api;
        const cJSON *r;
        const char *ns, *name, *uid, *vm_name, *snap_name;
        snapshot_vm vm;
} vmrestore;

static bool condition_true(const cJSON *obj, const char *type)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(obj, "status.conditions"))
        {
                const char *t = kube_str(c, "type"), *s = kube_str(c, "status");
                if (t && s && !strcmp(t, type) && !strcmp(s, "True"))
                        return true;
        }
        return false;
}

/* Final once complete or failed. */
static bool restore_open(const cJSON *r)
{
        return !cJSON_IsTrue(kube_obj(r, "status.complete")) && !condition_true(r, "Failure");
}

static int write_status(vmrestore *v, bool complete, const char *reason, const char *message, bool failure,
                        kv_error *err)
{
        cJSON *f = cJSON_CreateObject(), *conds = cJSON_CreateArray();
        cJSON_AddBoolToObject(f, "complete", complete);
        cJSON_AddItemToArray(conds, status_condition("Progressing", !complete && !failure, reason, message));
        cJSON_AddItemToArray(conds, status_condition("Ready", complete, reason, message));
        if (failure) {
                cJSON_AddItemToArray(conds, status_condition("Failure", true, reason, message));
                cJSON_AddItemToObject(f, "error", status_error(message));
        }
        cJSON_AddItemToObject(f, "conditions", conds);
        if (complete) {
                char now[40];
                rfc3339_now(now, sizeof(now));
                cJSON_AddStringToObject(f, "restoreTime", now);
        }
        return status_fields_write(v->api, &kube_vmrestore, v->r, f, restore_open, err);
}

static int fail(vmrestore *v, const char *message, kv_error *err)
{
        log_warning("VirtualMachineRestore %s/%s failed: %s", v->ns, v->name, message);
        int r = write_status(v, false, "Failed", message, true, err);
        return r < 0 ? r : snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
}

static int finish(vmrestore *v, const cJSON *res, kv_error *err)
{
        const char *phase = kube_str(res, "phase");
        if (!phase || strcmp(phase, "Succeeded")) {
                char msg[KV_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "the launcher failed to load the snapshot: %s",
                         kube_str(res, "message") ?: "no message");
                return fail(v, msg, err);
        }
        int r = write_status(v, true, "Succeeded", "Operation complete", false, err);
        if (r < 0)
                return r;
        log_info("VirtualMachineRestore %s/%s: VM %s restored to snapshot %s", v->ns, v->name, v->vm_name,
                 v->snap_name);
        return snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
}

/* Why this restore cannot run, or NULL; *wait: not yet (the snapshot is still being taken). */
static const char *refusal(vmrestore *v, const cJSON *snap, bool *wait, char *buf, size_t size)
{
        const char *kind = kube_str(v->r, "spec.target.kind"), *src = kube_str(snap, "spec.source.name"),
                   *phase = kube_str(snap, "status.phase");
        *wait = false;
        if (!kind || strcmp(kind, "VirtualMachine"))
                snprintf(buf, size, "spec.target.kind: %s is not supported, only VirtualMachine",
                         kind ? kind : "(none)");
        else if (!snap)
                snprintf(buf, size,
                         "spec.virtualMachineSnapshotName: no VirtualMachineSnapshot %s in namespace %s",
                         v->snap_name, v->ns);
        else if (!src || strcmp(src, v->vm_name))
                snprintf(
                    buf, size,
                    "spec.virtualMachineSnapshotName: VirtualMachineSnapshot %s is of VirtualMachine %s, "
                    "not %s",
                    v->snap_name, src ? src : "(none)", v->vm_name);
        else if (kube_obj(snap, "metadata.deletionTimestamp") || (phase && !strcmp(phase, "Failed")))
                snprintf(buf, size, "VirtualMachineSnapshot %s is %s, not ready to use", v->snap_name,
                         kube_obj(snap, "metadata.deletionTimestamp") ? "being deleted" : "Failed");
        else if (!cJSON_IsTrue(kube_obj(snap, "status.readyToUse"))) {
                *wait = true;
                return NULL;
        } else if (!snapshot_vm_refuses(&v->vm, v->vm_name, v->uid, "restore",
                                        "kvlite restores a running VM's RAM and disks", buf, size))
                return NULL;
        return buf;
}

static int reconcile_deletion(vmrestore *v, kv_error *err)
{
        if (!finalizer_has(v->r, RESTORE_FINALIZER))
                return 0;
        int r = snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
        if (r >= 0)
                r = finalizer_set(v->api, &kube_vmrestore, v->r, RESTORE_FINALIZER, false, err);
        return r < 0 ? r : 0;
}

static int step(vmrestore *v, kv_error *err)
{
        if (kube_obj(v->r, "metadata.deletionTimestamp"))
                return reconcile_deletion(v, err);
        if (!restore_open(v->r))
                return snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
        int r = finalizer_set(v->api, &kube_vmrestore, v->r, RESTORE_FINALIZER, true, err);
        if (r != 0)
                return r < 0 ? r : 0; /* the update event brings us back */
        const cJSON *res = snapshot_vm_result(&v->vm, v->uid, "load");
        if (res)
                return finish(v, res, err);
        char key[600], buf[600];
        snprintf(key, sizeof(key), "%s/%s", v->ns, v->snap_name);
        /* a snapshot missing from a cache still listing may exist: ask again rather than fail the restore */
        if (optional_state(v->c, OPT_SNAPSHOT) == OPT_STARTING)
                return 1000;
        _cleanup_json_ cJSON *snap = kube_store_get(&v->c->snapshots.store, key);
        bool wait;
        const char *why = refusal(v, snap, &wait, buf, sizeof(buf));
        if (why)
                return fail(v, why, err);
        if (wait) /* the snapshot's events bring us back */
                return write_status(v, false, "Waiting", "waiting for the snapshot to be ready to use", false,
                                    err);
        r = snapshot_request_set(v->api, v->vm.vmi, v->uid, "load", kube_str(snap, "metadata.uid"), err);
        return r < 0 ? r
                     : write_status(v, false, "InProgress", "Restoring the VM from the snapshot", false, err);
}

int reconcile_vmrestore(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *r = kube_store_get(&c->restores.store, key);
        if (!r)
                return 0;
        vmrestore v = {.c = c, .api = api, .r = r};
        if (kube_obj_ident(r, "VirtualMachineRestore", key, &v.ns, &v.name, &v.uid, err) < 0)
                return -EINVAL;
        v.vm_name = kube_str(r, "spec.target.name") ?: "";
        v.snap_name = kube_str(r, "spec.virtualMachineSnapshotName") ?: "";
        int ret = snapshot_vm_observe(c, v.ns, v.vm_name, &v.vm, err);
        if (ret >= 0)
                ret = step(&v, err);
        snapshot_vm_free(&v.vm);
        return ret;
}
