/* VirtualMachineSnapshot reconciler (docs/cluster-snapshots.md): asks the VM's launcher for a save through
 * the VMI's snapshot requests, turns the launcher's result into the VirtualMachineSnapshotContent and the
 * snapshot's status, and on deletion asks for the qcow2 snapshot's removal before dropping its finalizer.
 * Everything is decided from the caches and the launcher's status, so a restart anywhere resumes. */
#include "api.h"
#include "controller.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "snapshotchannel.h"
#include "statusfields.h"

#include <stdio.h>
#include <string.h>

#define SNAPSHOT_FINALIZER "snapshot.kubevirt.io/vmsnapshot-protection"

typedef struct vmsnap {
        controller *c;
        kube_client *api;
        const cJSON *s;
        const char *ns, *name, *uid, *vm_name, *phase;
        cJSON *vmobj; /* the VirtualMachine in the cache, NULL = none */
        snapshot_vm vm;
} vmsnap;

static bool phase_is(const char *phase, const char *want)
{
        return phase && !strcmp(phase, want);
}

static bool snapshot_open(const cJSON *s)
{
        const char *p = kube_str(s, "status.phase");
        return !phase_is(p, "Succeeded") && !phase_is(p, "Failed");
}

static cJSON *conditions(bool progressing, bool ready, const char *reason, const char *message)
{
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, status_condition("Progressing", progressing, reason, message));
        cJSON_AddItemToArray(a, status_condition("Ready", ready, reason, message));
        return a;
}

static int write_status(vmsnap *v, cJSON *fields, kv_error *err)
{
        return status_fields_write(v->api, &kube_vmsnapshot, v->s, fields, snapshot_open, err);
}

static int fail(vmsnap *v, const char *message, kv_error *err)
{
        log_warning("VirtualMachineSnapshot %s/%s failed: %s", v->ns, v->name, message);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "phase", "Failed");
        cJSON_AddBoolToObject(f, "readyToUse", false);
        cJSON_AddItemToObject(f, "error", status_error(message));
        cJSON_AddItemToObject(f, "conditions", conditions(false, false, "Failed", message));
        int r = write_status(v, f, err);
        return r < 0 ? r : snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
}

/* ---- the content ---- */

static bool is_cloud_init(const cJSON *vol)
{
        return cJSON_GetObjectItemCaseSensitive(vol, "cloudInitNoCloud") ||
               cJSON_GetObjectItemCaseSensitive(vol, "cloudInitConfigDrive");
}

/* One per disk volume of the VMI; volumeSnapshotName is the qcow2 snapshot's tag (kvlite has no CSI
 * VolumeSnapshots: the snapshot lives inside the images). */
static cJSON *volume_backups(const vmsnap *v)
{
        cJSON *out = cJSON_CreateArray();
        const cJSON *vol;
        cJSON_ArrayForEach(vol, kube_obj(v->vm.vmi, "spec.volumes"))
        {
                const char *name = kube_str(vol, "name");
                if (!name || is_cloud_init(vol))
                        continue;
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "volumeName", name);
                const char *claim = kube_str(vol, "persistentVolumeClaim.claimName");
                if (claim) {
                        cJSON *pvc = cJSON_AddObjectToObject(b, "persistentVolumeClaim");
                        cJSON_AddStringToObject(cJSON_AddObjectToObject(pvc, "metadata"), "name", claim);
                }
                cJSON_AddStringToObject(b, "volumeSnapshotName", v->uid);
                cJSON_AddItemToArray(out, b);
        }
        return out;
}

static cJSON *content_manifest(const vmsnap *v, const char *cname)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "apiVersion", kube_vmsnapshotcontent.api_version);
        cJSON_AddStringToObject(o, "kind", kube_vmsnapshotcontent.kind);
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddStringToObject(md, "name", cname);
        cJSON_AddStringToObject(md, "namespace", v->ns);
        cJSON *owner = cJSON_CreateObject();
        cJSON_AddStringToObject(owner, "apiVersion", kube_vmsnapshot.api_version);
        cJSON_AddStringToObject(owner, "kind", kube_vmsnapshot.kind);
        cJSON_AddStringToObject(owner, "name", v->name);
        cJSON_AddStringToObject(owner, "uid", v->uid);
        cJSON_AddBoolToObject(owner, "controller", true);
        cJSON_AddBoolToObject(owner, "blockOwnerDeletion", true);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"), owner);
        cJSON *spec = cJSON_AddObjectToObject(o, "spec");
        cJSON_AddStringToObject(spec, "virtualMachineSnapshotName", v->name);
        cJSON *vm = cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "source"), "virtualMachine");
        cJSON_AddStringToObject(vm, "apiVersion", kube_vm.api_version);
        cJSON_AddStringToObject(vm, "kind", kube_vm.kind);
        cJSON *vmd = cJSON_AddObjectToObject(vm, "metadata");
        cJSON_AddStringToObject(vmd, "name", v->vm_name);
        cJSON_AddStringToObject(vmd, "namespace", v->ns);
        const cJSON *vspec = kube_obj(v->vmobj, "spec");
        cJSON_AddItemToObject(vm, "spec", vspec ? cJSON_Duplicate(vspec, true) : cJSON_CreateObject());
        cJSON_AddItemToObject(spec, "volumeBackups", volume_backups(v));
        return o;
}

/* Created once (an existing one, from a run before a restart, is taken), then marked ready. */
static int ensure_content(vmsnap *v, const char *cname, const char *created, kv_error *err)
{
        _cleanup_json_ cJSON *want = content_manifest(v, cname), *have = NULL;
        int r = kube_create(v->api, &kube_vmsnapshotcontent, v->ns, want, &have, err);
        if (r == -KUBE_EEXISTS) {
                *err = (kv_error){0};
                r = kube_get(v->api, &kube_vmsnapshotcontent, v->ns, cname, &have, err);
        } else if (r >= 0)
                log_info("VirtualMachineSnapshot %s/%s: created %s", v->ns, v->name, cname);
        if (r < 0)
                return r;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddBoolToObject(f, "readyToUse", true);
        cJSON_AddStringToObject(f, "creationTime", created);
        return status_fields_write(v->api, &kube_vmsnapshotcontent, have, f, NULL, err);
}

static int succeed(vmsnap *v, const cJSON *result, kv_error *err)
{
        char cname[300], now[40];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        rfc3339_now(now, sizeof(now));
        const char *created = kube_str(snapshot_vm_snapshot(&v->vm, v->uid), "creationTime")
                                  ?: kube_str(result, "completionTime") ?: now;
        int r = ensure_content(v, cname, created, err);
        if (r < 0)
                return r;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "phase", "Succeeded");
        cJSON_AddBoolToObject(f, "readyToUse", true);
        cJSON_AddStringToObject(f, "creationTime", created);
        cJSON_AddStringToObject(f, "virtualMachineSnapshotContentName", cname);
        cJSON_AddStringToObject(f, "sourceUID", kube_str(v->vmobj, "metadata.uid") ?: "");
        cJSON *ind = cJSON_AddArrayToObject(f, "indications");
        cJSON_AddItemToArray(ind, cJSON_CreateString("Online"));
        cJSON_AddItemToArray(ind, cJSON_CreateString("NoGuestAgent"));
        cJSON_AddNullToObject(f, "error");
        cJSON_AddItemToObject(f, "conditions", conditions(false, true, "Succeeded", "Operation complete"));
        if ((r = write_status(v, f, err)) < 0)
                return r;
        log_info("VirtualMachineSnapshot %s/%s of VM %s: Succeeded", v->ns, v->name, v->vm_name);
        return snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
}

/* ---- steps ---- */

/* Why this snapshot cannot be taken, or NULL. */
static const char *refusal(vmsnap *v, char *buf, size_t size)
{
        const char *kind = kube_str(v->s, "spec.source.kind");
        if (!kind || strcmp(kind, "VirtualMachine"))
                snprintf(buf, size, "spec.source.kind: %s is not supported, only VirtualMachine",
                         kind ? kind : "(none)");
        else if (!*v->vm_name)
                snprintf(buf, size, "spec.source.name: missing");
        else if (!v->vmobj)
                snprintf(buf, size, "spec.source.name: no VirtualMachine %s in namespace %s", v->vm_name,
                         v->ns);
        else if (!snapshot_vm_refuses(&v->vm, v->vm_name, v->uid, "snapshot",
                                      "offline snapshots need the VM running in kvlite", buf, size))
                return NULL;
        return buf;
}

static int start(vmsnap *v, kv_error *err)
{
        int r = snapshot_request_set(v->api, v->vm.vmi, v->uid, "save", v->uid, err);
        if (r < 0)
                return r;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "phase", "InProgress");
        cJSON_AddBoolToObject(f, "readyToUse", false);
        cJSON_AddStringToObject(f, "sourceUID", kube_str(v->vmobj, "metadata.uid") ?: "");
        cJSON_AddItemToObject(
            f, "conditions",
            conditions(true, false, "InProgress", "Source locked and operation in progress"));
        return write_status(v, f, err);
}

/* The qcow2 snapshot is removed by the launcher while the VM runs (after a save still queued or running,
 * which the launcher runs first); a stopped or gone VM's images keep it (docs/cluster-snapshots.md). */
static int reconcile_deletion(vmsnap *v, kv_error *err)
{
        if (!finalizer_has(v->s, SNAPSHOT_FINALIZER))
                return 0;
        char del_id[200];
        snprintf(del_id, sizeof(del_id), "%s-delete", v->uid);
        bool saved = phase_is(v->phase, "Succeeded") || phase_is(v->phase, "InProgress");
        int r;
        if (saved && v->vm.running) {
                const cJSON *res = snapshot_vm_result(&v->vm, del_id, "delete");
                if (!res)
                        return snapshot_request_set(v->api, v->vm.vmi, del_id, "delete", v->uid, err);
                if (!phase_is(kube_str(res, "phase"), "Succeeded"))
                        log_warning("VirtualMachineSnapshot %s/%s: the launcher could not delete it: %s",
                                    v->ns, v->name, kube_str(res, "message") ?: "failed");
        } else if (saved)
                log_info("VirtualMachineSnapshot %s/%s deleted while VM %s is not running: its images keep "
                         "snapshot %s",
                         v->ns, v->name, v->vm_name, v->uid);
        if ((r = snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err)) < 0 ||
            (r = snapshot_request_set(v->api, v->vm.vmi, del_id, NULL, NULL, err)) < 0)
                return r;
        char cname[300];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        if ((r = kube_delete(v->api, &kube_vmsnapshotcontent, v->ns, cname, NULL, NULL, "Background", err)) <
            0)
                return r;
        r = finalizer_set(v->api, &kube_vmsnapshot, v->s, SNAPSHOT_FINALIZER, false, err);
        return r < 0 ? r : 0;
}

static int step(vmsnap *v, kv_error *err)
{
        if (kube_obj(v->s, "metadata.deletionTimestamp"))
                return reconcile_deletion(v, err);
        if (!snapshot_open(v->s)) /* a restart between the status and the request's removal */
                return snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
        int r = finalizer_set(v->api, &kube_vmsnapshot, v->s, SNAPSHOT_FINALIZER, true, err);
        if (r != 0)
                return r < 0 ? r : 0; /* the update event brings us back */
        const cJSON *res = snapshot_vm_result(&v->vm, v->uid, "save");
        if (res && phase_is(kube_str(res, "phase"), "Succeeded"))
                return succeed(v, res, err);
        if (res) {
                char msg[KV_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "the launcher failed to save the snapshot: %s",
                         kube_str(res, "message") ?: "no message");
                return fail(v, msg, err);
        }
        char buf[600];
        const char *why = refusal(v, buf, sizeof(buf));
        return why ? fail(v, why, err) : start(v, err);
}

int reconcile_vmsnapshot(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *s = kube_store_get(&c->snapshots.store, key);
        if (!s)
                return 0;
        vmsnap v = {.c = c, .api = api, .s = s};
        if (kube_obj_ident(s, "VirtualMachineSnapshot", key, &v.ns, &v.name, &v.uid, err) < 0)
                return -EINVAL;
        v.vm_name = kube_str(s, "spec.source.name") ?: "";
        v.phase = kube_str(s, "status.phase");
        char vkey[600];
        snprintf(vkey, sizeof(vkey), "%s/%s", v.ns, v.vm_name);
        _cleanup_json_ cJSON *vmobj = kube_store_get(&c->vms.store, vkey);
        v.vmobj = vmobj;
        int r = snapshot_vm_observe(c, v.ns, v.vm_name, &v.vm, err);
        if (r >= 0)
                r = step(&v, err);
        snapshot_vm_free(&v.vm);
        return r;
}
