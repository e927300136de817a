/* VirtualMachineRestore reconciler (docs/cluster-snapshots.md). A snapshot taken running (qcow2 snapshots in
 * the images): checks that it is of the same VM and that the VM runs, asks its launcher for a load through
 * the VMI's snapshot requests. A snapshot taken stopped (claims its content owns): copies them back into the
 * stopped VM's claims, or into new claims of a new VM (spec.target another name) created once they are
 * filled. Either way the result becomes KubeVirt's restore status (complete, restoreTime,
 * Progressing/Ready/Failure conditions). Restart-safe: decided from the API's objects and the launcher's
 * status. */
#include "api.h"
#include "claimclone.h"
#include "controller.h"
#include "datavolume.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "snapshotchannel.h"
#include "statusfields.h"

#include <stdio.h>
#include <string.h>

/* KubeVirt's: held until the restore's request is off the VMI, so a deleted restore never runs later */
#define RESTORE_FINALIZER "snapshot.kubevirt.io/vmrestore-protection"
#define ANN_RESTORED_BY "kvlite.io/restored-by" /* on a VM a restore created: the restore's uid */

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

/* restores (taken, NULL = none): KubeVirt's status.restores[], the claims a restore from claims fills. */
static int write_status_restores(vmrestore *v, bool complete, const char *reason, const char *message,
                                 bool failure, cJSON *restores, kv_error *err)
{
        cJSON *f = cJSON_CreateObject(), *conds = cJSON_CreateArray();
        if (restores)
                cJSON_AddItemToObject(f, "restores", restores);
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

static int write_status(vmrestore *v, bool complete, const char *reason, const char *message, bool failure,
                        kv_error *err)
{
        return write_status_restores(v, complete, reason, message, failure, NULL, err);
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
static const char *refusal(vmrestore *v, const cJSON *snap, bool claims, bool *wait, char *buf, size_t size)
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
        else if (!claims && (!src || strcmp(src, v->vm_name)))
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
        } else if (claims || !snapshot_vm_refuses(&v->vm, v->vm_name, v->uid, "restore",
                                                  "kvlite restores a running VM's RAM and disks", buf, size))
                return NULL;
        return buf;
}

/* ---- from a stopped VM's snapshot: claims ---- */

/* The snapshot's content (status.virtualMachineSnapshotContentName), NULL in *out when there is none. */
static int get_content(vmrestore *v, const cJSON *snap, cJSON **out, kv_error *err)
{
        const char *cname = kube_str(snap, "status.virtualMachineSnapshotContentName");
        *out = NULL;
        if (!cname)
                return 0;
        int r = kube_get(v->api, &kube_vmsnapshotcontent, v->ns, cname, out, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                return 0;
        }
        return r;
}

static const cJSON *volume_named(const cJSON *volumes, const char *name)
{
        const cJSON *vol;
        cJSON_ArrayForEach(vol, volumes)
        {
                const char *n = kube_str(vol, "name");
                if (n && name && !strcmp(n, name))
                        return vol;
        }
        return NULL;
}

/* The claim backup b is copied into: the VM's own claim for that volume (same VM; a running VM's snapshot
 * may also hold a claim hot-plugged into its VMI only: that claim), or restore-<restore uid>-<volume>
 * (KubeVirt's name for a restored claim) for a new VM. */
static const char *restore_claim(vmrestore *v, const cJSON *vmobj, const cJSON *content, const cJSON *b,
                                 char *buf, size_t size)
{
        if (vmobj) {
                const cJSON *vol =
                    volume_named(kube_obj(vmobj, "spec.template.spec.volumes"), kube_str(b, "volumeName"));
                return vol || !content_from_launcher(content)
                           ? volume_claim(vol)
                           : kube_str(b, "persistentVolumeClaim.metadata.name");
        }
        snprintf(buf, size, "restore-%s-%s", v->uid, kube_str(b, "volumeName") ?: "?");
        return buf;
}

/* The new VM: the snapshot's VM spec, its claim and hostDisk volumes on the restored claims, no
 * dataVolumeTemplates (the claims exist), marked with the restore. */
static cJSON *new_vm(vmrestore *v, const cJSON *content)
{
        const cJSON *src = kube_obj(content, "spec.source.virtualMachine");
        cJSON *vm = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(vm, "metadata");
        cJSON_AddStringToObject(vm, "apiVersion", kube_vm.api_version);
        cJSON_AddStringToObject(vm, "kind", kube_vm.kind);
        cJSON_AddStringToObject(md, "name", v->vm_name);
        cJSON_AddStringToObject(md, "namespace", v->ns);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), ANN_RESTORED_BY, v->uid);
        cJSON *spec = cJSON_Duplicate(kube_obj(src, "spec"), true) ?: cJSON_CreateObject();
        cJSON_AddItemToObject(vm, "spec", spec);
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "dataVolumeTemplates");
        cJSON *vol;
        cJSON_ArrayForEach(vol, kube_obj(spec, "template.spec.volumes"))
        {
                const char *name = kube_str(vol, "name");
                if ((!volume_claim(vol) && !cJSON_GetObjectItemCaseSensitive(vol, "hostDisk")) || !name)
                        continue;
                char claim[300];
                snprintf(claim, sizeof(claim), "restore-%s-%s", v->uid, name);
                cJSON_DeleteItemFromObjectCaseSensitive(vol, "dataVolume");
                cJSON_DeleteItemFromObjectCaseSensitive(vol, "hostDisk"); /* a new VM's disks are claims */
                cJSON_DeleteItemFromObjectCaseSensitive(vol, "persistentVolumeClaim");
                cJSON_AddStringToObject(cJSON_AddObjectToObject(vol, "persistentVolumeClaim"), "claimName",
                                        claim);
        }
        return vm;
}

/* The node a hostDisk of the VM is restored on: the one its template pins, else the snapshot's. */
static const char *restore_node(const cJSON *vmobj, const cJSON *content)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                   kube_obj(vmobj, "spec.template.spec.nodeSelector"), NODE_HOSTNAME_LABEL))
                   ?: content_annotation(content, CONTENT_ANN_NODE);
}

/* Why the restore of a claims snapshot cannot run, or NULL. */
static const char *offline_refusal(vmrestore *v, const cJSON *vmobj, bool same, char *buf, size_t size)
{
        if (same && !vmobj)
                snprintf(buf, size, "spec.target.name: no VirtualMachine %s in namespace %s", v->vm_name,
                         v->ns);
        else if (same && v->vm.vmi)
                snprintf(buf, size,
                         "VirtualMachine %s is not stopped: a snapshot whose backups are claims is restored "
                         "into its claims once it is stopped",
                         v->vm_name);
        else if (!same && vmobj)
                snprintf(buf, size,
                         "spec.target.name: VirtualMachine %s exists: a restore to another VM creates it",
                         v->vm_name);
        else
                return NULL;
        return buf;
}

/* One clone per volume backup; when all are done, the new VM (another target) and the restore's status. */
static int offline_restore(vmrestore *v, const cJSON *snap, const cJSON *content, kv_error *err)
{
        char key[600], msg[600];
        snprintf(key, sizeof(key), "%s/%s", v->ns, v->vm_name);
        _cleanup_json_ cJSON *vmobj = kube_store_get(&v->c->vms.store, key);
        const char *restored_by = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(vmobj, "metadata.annotations"), ANN_RESTORED_BY));
        if (restored_by && !strcmp(restored_by, v->uid)) /* made by this restore before a restart */
                return write_status(v, true, "Succeeded", "Operation complete", false, err);
        bool same = !strcmp(kube_str(snap, "spec.source.name") ?: "", v->vm_name);
        const char *why = offline_refusal(v, vmobj, same, msg, sizeof(msg));
        if (why)
                return fail(v, why, err);
        int r =
            write_status(v, false, "InProgress", "Restoring the VM's claims from the snapshot", false, err);
        if (r < 0)
                return r;
        _cleanup_json_ cJSON *owner =
            kube_controller_ref_of(v->r, kube_vmrestore.api_version, kube_vmrestore.kind);
        bool done = true;
        const cJSON *b;
        _cleanup_json_ cJSON *restores = cJSON_CreateArray();
        cJSON_ArrayForEach(b, kube_obj(content, "spec.volumeBackups"))
        {
                char dst_buf[300], pod[300], dir[512], file[512];
                if (!same &&
                    !volume_named(kube_obj(content, "spec.source.virtualMachine.spec.template.spec.volumes"),
                                  kube_str(b, "volumeName")))
                        continue; /* hot-plugged into the VMI only: not a disk of the new VM */
                const char *dst = restore_claim(v, same ? vmobj : NULL, content, b, dst_buf, sizeof(dst_buf));
                /* the same VM's hostDisk: its image written back on its node */
                const cJSON *vol =
                    volume_named(kube_obj(vmobj, "spec.template.spec.volumes"), kube_str(b, "volumeName"));
                bool host = same && host_disk_parts(vol, dir, file, sizeof(dir));
                snprintf(pod, sizeof(pod), "restore-%s-%s", v->uid, kube_str(b, "volumeName") ?: "?");
                if (!dst && !host) {
                        snprintf(msg, sizeof(msg),
                                 "volume %s of the snapshot is not a claim of VirtualMachine %s",
                                 kube_str(b, "volumeName") ?: "?", v->vm_name);
                        return fail(v, msg, err);
                }
                claim_clone cc = {.ns = v->ns,
                                  .src = kube_str(b, "volumeSnapshotName"),
                                  .dst = dst,
                                  .pod = pod,
                                  .owner = owner,
                                  .create_dst = !same,
                                  .dst_host = host ? dir : NULL,
                                  .dst_file = file,
                                  .node = host ? restore_node(vmobj, content) : NULL};
                char node[256];
                if ((r = claim_clone_pin(v->api, &cc, node, sizeof(node), msg, sizeof(msg), err)) == 0)
                        r = claim_clone_step(v->c, v->api, &cc, msg, sizeof(msg), err);
                if (r < 0)
                        return r;
                if (r == CLONE_FAILED) {
                        char m[KV_ERR_MSG_MAX];
                        snprintf(m, sizeof(m), "volume %s: %s", kube_str(b, "volumeName") ?: "?", msg);
                        return fail(v, m, err);
                }
                done &= r == CLONE_DONE;
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "volumeName", kube_str(b, "volumeName") ?: "");
                if (host) /* kvlite's: the hostDisk written back */
                        cJSON_AddStringToObject(cJSON_AddObjectToObject(e, "hostDisk"), "path",
                                                kube_str(vol, "hostDisk.path"));
                else
                        cJSON_AddStringToObject(e, "persistentVolumeClaim", dst);
                cJSON_AddStringToObject(e, "volumeSnapshotName", cc.src ?: "");
                cJSON_AddItemToArray(restores, e);
        }
        if (!done) {
                r = write_status_restores(v, false, "InProgress",
                                          "Restoring the VM's claims from the snapshot", false,
                                          cJSON_Duplicate(restores, true), err);
                return r < 0 ? r : 1000;
        }
        if (!same) {
                _cleanup_json_ cJSON *vm = new_vm(v, content);
                r = kube_create(v->api, &kube_vm, v->ns, vm, NULL, err);
                if (r < 0)
                        return r;
                log_info("VirtualMachineRestore %s/%s: VirtualMachine %s created from snapshot %s", v->ns,
                         v->name, v->vm_name, v->snap_name);
        }
        r = write_status_restores(v, true, "Succeeded", "Operation complete", false, restores, err);
        restores = NULL;
        if (r < 0)
                return r;
        log_info("VirtualMachineRestore %s/%s: VM %s restored from snapshot %s's claims", v->ns, v->name,
                 v->vm_name, v->snap_name);
        return 0;
}

/* A restore from claims deleted while it copies: its clone Pods stop (they are owned by it, for a garbage
 * collector; this does not need one). The claims they were filling stay as they are. */
static int delete_clone_pods(vmrestore *v, kv_error *err)
{
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", v->ns, v->snap_name);
        _cleanup_json_ cJSON *snap = kube_store_get(&v->c->snapshots.store, key), *content = NULL;
        int r = snap ? get_content(v, snap, &content, err) : 0;
        if (r < 0 || !content_has_claims(content))
                return r;
        const cJSON *b;
        cJSON_ArrayForEach(b, kube_obj(content, "spec.volumeBackups"))
        {
                char pod[300];
                snprintf(pod, sizeof(pod), "restore-%s-%s", v->uid, kube_str(b, "volumeName") ?: "?");
                if ((r = kube_delete(v->api, &kube_pod, v->ns, pod, NULL, NULL, NULL, err)) < 0)
                        return r;
        }
        return 0;
}

static int reconcile_deletion(vmrestore *v, kv_error *err)
{
        if (!finalizer_has(v->r, RESTORE_FINALIZER))
                return 0;
        int r = snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
        if (r >= 0)
                r = delete_clone_pods(v, err);
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
        _cleanup_json_ cJSON *content = NULL;
        if ((r = get_content(v, snap, &content, err)) < 0)
                return r;
        bool wait, claims = content_has_claims(content);
        const char *why = refusal(v, snap, claims, &wait, buf, sizeof(buf));
        if (why)
                return fail(v, why, err);
        if (wait) /* the snapshot's events bring us back */
                return write_status(v, false, "Waiting", "waiting for the snapshot to be ready to use", false,
                                    err);
        if (claims)
                return offline_restore(v, snap, content, err);
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
