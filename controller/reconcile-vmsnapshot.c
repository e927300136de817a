/* VirtualMachineSnapshot reconciler (docs/cluster-snapshots.md): asks a running VM's launcher for a save
 * through the VMI's snapshot requests, turns the launcher's result into the VirtualMachineSnapshotContent and
 * the snapshot's status, and on deletion asks for the qcow2 snapshot's removal before dropping its finalizer.
 * A stopped VM's claims are copied into claims the content owns (its volumeBackups), by clone Pods.
 * Everything is decided from the caches and the launcher's status, so a restart anywhere resumes. */
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

static int drop_requests(vmsnap *v, kv_error *err);

static int fail(vmsnap *v, const char *message, kv_error *err)
{
        log_warning("VirtualMachineSnapshot %s/%s failed: %s", v->ns, v->name, message);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "phase", "Failed");
        cJSON_AddBoolToObject(f, "readyToUse", false);
        cJSON_AddItemToObject(f, "error", status_error(message));
        cJSON_AddItemToObject(f, "conditions", conditions(false, false, "Failed", message));
        int r = write_status(v, f, err);
        return r < 0 ? r : drop_requests(v, err);
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

/* A volume whose data does not outlive the VM's Pod: nothing to back up while the VM is stopped. */
static bool ephemeral_volume(const cJSON *vol)
{
        static const char *const kinds[] = {
            "containerDisk",        "emptyDisk",       "ephemeral", "cloudInitNoCloud",
            "cloudInitConfigDrive", "configMap",       "secret",    "serviceAccount",
            "downwardAPI",          "downwardMetrics", "sysprep"};
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
                if (cJSON_GetObjectItemCaseSensitive(vol, kinds[i]))
                        return true;
        return false;
}

/* One per claim (persistentVolumeClaim or dataVolume) and hostDisk of the volumes (a stopped VM's template, a
 * running VM's VMI), copied into the claim volumeSnapshotName (KubeVirt's VolumeSnapshot name,
 * vmsnapshot-<uid>-volume-<volume>). A hostDisk's entry has the volume's hostDisk (kvlite's field) instead of
 * persistentVolumeClaim. */
static cJSON *claim_backups(const vmsnap *v, const cJSON *volumes)
{
        cJSON *out = cJSON_CreateArray();
        const cJSON *vol;
        cJSON_ArrayForEach(vol, volumes)
        {
                const char *name = kube_str(vol, "name"), *claim = volume_claim(vol);
                const cJSON *hd = cJSON_GetObjectItemCaseSensitive(vol, "hostDisk");
                if (!name || (!claim && !hd))
                        continue;
                char backup[300];
                snprintf(backup, sizeof(backup), "vmsnapshot-%s-volume-%s", v->uid, name);
                cJSON *b = cJSON_CreateObject();
                cJSON_AddStringToObject(b, "volumeName", name);
                if (claim) {
                        cJSON *pvc = cJSON_AddObjectToObject(b, "persistentVolumeClaim");
                        cJSON_AddStringToObject(cJSON_AddObjectToObject(pvc, "metadata"), "name", claim);
                } else
                        cJSON_AddItemToObject(b, "hostDisk", cJSON_Duplicate(hd, true));
                cJSON_AddStringToObject(b, "volumeSnapshotName", backup);
                cJSON_AddItemToArray(out, b);
        }
        return out;
}

/* How a snapshot's data is kept: qcow2 snapshots in the images, or claims (a stopped VM's, or copies of
 * a running VM's backups made by its launcher). */
enum keep { KEEP_QCOW2, KEEP_CLAIMS, KEEP_LAUNCHER_CLAIMS };

/* The node a hostDisk's image is on: the running VM's, else the one its template pins (NULL: any). */
static const char *backup_node(const vmsnap *v)
{
        if (v->vm.vmi)
                return kube_str(v->vm.vmi, "status.nodeName");
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            kube_obj(v->vmobj, "spec.template.spec.nodeSelector"), NODE_HOSTNAME_LABEL));
}

static cJSON *content_manifest(const vmsnap *v, const char *cname, enum keep keep)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "apiVersion", kube_vmsnapshotcontent.api_version);
        cJSON_AddStringToObject(o, "kind", kube_vmsnapshotcontent.kind);
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddStringToObject(md, "name", cname);
        cJSON_AddStringToObject(md, "namespace", v->ns);
        cJSON_AddItemToArray(
            cJSON_AddArrayToObject(md, "ownerReferences"),
            kube_controller_ref(kube_vmsnapshot.api_version, kube_vmsnapshot.kind, v->name, v->uid));
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
        cJSON *backups = keep == KEEP_QCOW2 ? volume_backups(v)
                         : keep == KEEP_CLAIMS
                             ? claim_backups(v, kube_obj(v->vmobj, "spec.template.spec.volumes"))
                             : claim_backups(v, kube_obj(v->vm.vmi, "spec.volumes"));
        cJSON_AddItemToObject(spec, "volumeBackups", backups);
        if (keep != KEEP_QCOW2) {
                cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
                cJSON_AddStringToObject(ann, CONTENT_ANN_BACKUPS, "claims");
                if (keep == KEEP_LAUNCHER_CLAIMS)
                        cJSON_AddStringToObject(ann, CONTENT_ANN_SOURCE, "launcher");
                const cJSON *b;
                bool host = false;
                cJSON_ArrayForEach(b, backups) host |= cJSON_HasObjectItem(b, "hostDisk");
                if (host && backup_node(v))
                        cJSON_AddStringToObject(ann, CONTENT_ANN_NODE, backup_node(v));
        }
        return o;
}

/* Created once (an existing one, from a run before a restart, is taken). */
static int create_content(vmsnap *v, const char *cname, enum keep keep, cJSON **have, kv_error *err)
{
        _cleanup_json_ cJSON *want = content_manifest(v, cname, keep);
        int r = kube_create(v->api, &kube_vmsnapshotcontent, v->ns, want, have, err);
        if (r == -KUBE_EEXISTS) {
                *err = (kv_error){0};
                r = kube_get(v->api, &kube_vmsnapshotcontent, v->ns, cname, have, err);
        } else if (r >= 0)
                log_info("VirtualMachineSnapshot %s/%s: created %s", v->ns, v->name, cname);
        return r;
}

static int content_ready(vmsnap *v, const cJSON *have, const char *created, kv_error *err)
{
        cJSON *f = cJSON_CreateObject();
        cJSON_AddBoolToObject(f, "readyToUse", true);
        cJSON_AddStringToObject(f, "creationTime", created);
        return status_fields_write(v->api, &kube_vmsnapshotcontent, have, f, NULL, err);
}

/* The snapshot's final status; agent: the launcher took it (indications Online and this, GuestAgent when
 * the guest agent froze the file systems, else NoGuestAgent), NULL: offline (none). */
static int succeeded(vmsnap *v, const char *cname, const char *created, const char *agent, kv_error *err)
{
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "phase", "Succeeded");
        cJSON_AddBoolToObject(f, "readyToUse", true);
        cJSON_AddStringToObject(f, "creationTime", created);
        cJSON_AddStringToObject(f, "virtualMachineSnapshotContentName", cname);
        cJSON_AddStringToObject(f, "sourceUID", kube_str(v->vmobj, "metadata.uid") ?: "");
        cJSON *ind = cJSON_AddArrayToObject(f, "indications");
        if (agent) {
                cJSON_AddItemToArray(ind, cJSON_CreateString("Online"));
                cJSON_AddItemToArray(ind, cJSON_CreateString(agent));
        }
        cJSON_AddNullToObject(f, "error");
        cJSON_AddItemToObject(f, "conditions", conditions(false, true, "Succeeded", "Operation complete"));
        int r = write_status(v, f, err);
        if (r < 0)
                return r;
        log_info("VirtualMachineSnapshot %s/%s of VM %s: Succeeded", v->ns, v->name, v->vm_name);
        return drop_requests(v, err);
}

static int succeed(vmsnap *v, const cJSON *result, kv_error *err)
{
        char cname[300], now[40];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        rfc3339_now(now, sizeof(now));
        const char *created = kube_str(snapshot_vm_snapshot(&v->vm, v->uid), "creationTime")
                                  ?: kube_str(result, "completionTime") ?: now;
        _cleanup_json_ cJSON *have = NULL;
        int r = create_content(v, cname, KEEP_QCOW2, &have, err);
        if (r < 0 || (r = content_ready(v, have, created, err)) < 0)
                return r;
        return succeeded(v, cname, created, "NoGuestAgent", err);
}

/* ---- steps ---- */

/* InProgress; online: after the launcher's save request. */
static int start(vmsnap *v, bool online, kv_error *err)
{
        int r = online ? snapshot_request_set(v->api, v->vm.vmi, v->uid, "save", v->uid, err) : 0;
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
        else if (!v->vm.vmi)
                return NULL; /* stopped: offline */
        else if (!snapshot_vm_refuses(&v->vm, v->vm_name, v->uid, "snapshot",
                                      "a VM is snapshotted running or stopped, not while it starts or stops",
                                      buf, size))
                return NULL;
        return buf;
}

/* Why a volume of a VM cannot be backed up into claims, or NULL: neither a claim, a hostDisk (which needs its
 * capacity: the backup claim's size) nor data that ends with the Pod. running: the VMI's volumes. */
static const char *volume_refusal(const vmsnap *v, const cJSON *vol, bool running, char *buf, size_t size)
{
        const char *name = kube_str(vol, "name") ?: "?";
        if (cJSON_GetObjectItemCaseSensitive(vol, "hostDisk") && !kube_str(vol, "hostDisk.capacity")) {
                snprintf(buf, size,
                         "volume %s (hostDisk) has no capacity: kvlite sizes its backup claim from "
                         "hostDisk.capacity",
                         name);
                return buf;
        }
        if (volume_claim(vol) || cJSON_GetObjectItemCaseSensitive(vol, "hostDisk") || ephemeral_volume(vol) ||
            !vol->child)
                return NULL;
        const cJSON *k = vol->child;
        while (k && !strcmp(k->string ?: "", "name"))
                k = k->next;
        snprintf(buf, size,
                 running
                     ? "VirtualMachine %s runs with volume %s (%s), which cannot be backed up into claims: "
                       "only persistentVolumeClaim, dataVolume and hostDisk volumes are"
                     : "VirtualMachine %s is stopped and volume %s (%s) cannot be backed up offline: only "
                       "persistentVolumeClaim, dataVolume and hostDisk volumes are",
                 v->vm_name, name, k ? k->string : "?");
        return buf;
}

/* Whether a volume's data is backed up into a claim (a claim's or a hostDisk's). */
static bool backed_up(const cJSON *vol)
{
        return volume_claim(vol) || cJSON_GetObjectItemCaseSensitive(vol, "hostDisk");
}

/* Why a stopped VM cannot be snapshotted, or NULL: a volume whose data kvlite cannot copy while it is
 * stopped, or nothing to copy at all. */
static const char *offline_refusal(vmsnap *v, char *buf, size_t size)
{
        const cJSON *vol;
        bool some = false;
        cJSON_ArrayForEach(vol, kube_obj(v->vmobj, "spec.template.spec.volumes"))
        {
                some |= backed_up(vol);
                if (volume_refusal(v, vol, false, buf, size))
                        return buf;
        }
        if (some)
                return NULL;
        snprintf(buf, size,
                 "VirtualMachine %s is not running and has no persistentVolumeClaim, dataVolume or hostDisk "
                 "volume to back up",
                 v->vm_name);
        return buf;
}

/* One clone step per backup of the content; *done when every copy is. src_file: the file of each source
 * claim copied (a running VM's backup), NULL = its disk.img. Returns <0, or >0 after failing the snapshot. */
static int clone_backups(vmsnap *v, const cJSON *content, bool launcher, bool *done, kv_error *err)
{
        _cleanup_json_ cJSON *owner =
            kube_controller_ref_of(content, kube_vmsnapshotcontent.api_version, kube_vmsnapshotcontent.kind);
        char msg[600];
        *done = true;
        const cJSON *b;
        cJSON_ArrayForEach(b, kube_obj(content, "spec.volumeBackups"))
        {
                const char *backup = kube_str(b, "volumeSnapshotName");
                char dir[512], file[512], src_file[700];
                bool host = host_disk_parts(b, dir, file, sizeof(dir));
                /* the launcher's copy is <image>.vmsnapshot-<uid> next to the image */
                snprintf(src_file, sizeof(src_file), "%s" BACKUP_FILE_SUFFIX "%s", host ? file : "disk.img",
                         v->uid);
                claim_clone cc = {.ns = v->ns,
                                  .src = kube_str(b, "persistentVolumeClaim.metadata.name"),
                                  .src_file = launcher ? src_file : NULL,
                                  .dst = backup,
                                  .pod = backup,
                                  .owner = owner,
                                  .claim_owner = owner,
                                  .create_dst = true,
                                  .src_host = host ? dir : NULL,
                                  .src_size = kube_str(b, "hostDisk.capacity"),
                                  .node = host ? content_annotation(content, CONTENT_ANN_NODE) : NULL};
                if (host && !launcher)
                        cc.src_file = file; /* a stopped VM's: the image itself */
                if ((!cc.src && !host) || !cc.dst)
                        continue;
                char node[256];
                int r = claim_clone_pin(v->api, &cc, node, sizeof(node), msg, sizeof(msg), err);
                if (r == 0)
                        r = claim_clone_step(v->c, v->api, &cc, msg, sizeof(msg), err);
                if (r < 0)
                        return r;
                if (r == CLONE_FAILED) {
                        char why[KV_ERR_MSG_MAX];
                        snprintf(why, sizeof(why), "volume %s: %s", kube_str(b, "volumeName") ?: "?", msg);
                        r = fail(v, why, err);
                        return r < 0 ? r : 1;
                }
                *done &= r == CLONE_DONE;
        }
        return 0;
}

/* A stopped VM: the content first (its volumeBackups name the claims to fill), then one clone Pod per claim;
 * ready when every copy is done. Come back in a second while copies run. */
static int offline_step(vmsnap *v, cJSON *content, kv_error *err)
{
        char cname[300], msg[600], now[40];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        int r;
        _cleanup_json_ cJSON *made = NULL;
        if (!content) {
                const char *why = offline_refusal(v, msg, sizeof(msg));
                if (why)
                        return fail(v, why, err);
                if ((r = create_content(v, cname, KEEP_CLAIMS, &made, err)) < 0 ||
                    (r = start(v, false, err)) < 0)
                        return r;
                content = made;
        }
        bool done;
        if ((r = clone_backups(v, content, false, &done, err)) != 0)
                return r < 0 ? r : 0;
        if (!done)
                return 1000;
        rfc3339_now(now, sizeof(now));
        if ((r = content_ready(v, content, now, err)) < 0)
                return r;
        return succeeded(v, cname, now, NULL, err);
}

/* Why a running VM's volumes cannot be backed up into claims, or NULL. */
static const char *online_claims_refusal(vmsnap *v, char *buf, size_t size)
{
        const cJSON *vol;
        cJSON_ArrayForEach(vol, kube_obj(v->vm.vmi, "spec.volumes"))
        {
                if (volume_refusal(v, vol, true, buf, size))
                        return buf;
        }
        return NULL;
}

/* Whether the running VM has data to back up into claims (claims, hostDisks). */
static bool vmi_has_backups(const cJSON *vmi)
{
        const cJSON *vol;
        cJSON_ArrayForEach(vol, kube_obj(vmi, "spec.volumes")) if (backed_up(vol)) return true;
        return false;
}

/* A running VM with claims: the content (claims from the VMI's volumes), the launcher's save (a point-in-time
 * copy next to each claim's disk.img, the file systems frozen by the guest agent when there is one), the
 * clone Pods copying those files into the backup claims, the launcher's removal of the files (a delete of
 * the tag, id <uid>-release), then ready. */
static int launcher_claims_step(vmsnap *v, cJSON *content, kv_error *err)
{
        char cname[300], msg[600], now[40], rel[200];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        snprintf(rel, sizeof(rel), "%s-release", v->uid);
        int r;
        _cleanup_json_ cJSON *made = NULL;
        if (!content) {
                if ((r = create_content(v, cname, KEEP_LAUNCHER_CLAIMS, &made, err)) < 0)
                        return r;
                content = made;
        }
        const cJSON *res = snapshot_vm_result(&v->vm, v->uid, "save");
        if (!res) {
                if (!v->vm.running) {
                        snprintf(msg, sizeof(msg), "VirtualMachine %s stopped before the snapshot completed",
                                 v->vm_name);
                        return fail(v, msg, err);
                }
                return snapshot_request_present(v->vm.vmi, v->uid) ? 0 : start(v, true, err);
        }
        if (!phase_is(kube_str(res, "phase"), "Succeeded")) {
                snprintf(msg, sizeof(msg), "the launcher failed to back up the VM's disks: %s",
                         kube_str(res, "message") ?: "no message");
                return fail(v, msg, err);
        }
        bool done;
        if ((r = clone_backups(v, content, true, &done, err)) != 0)
                return r < 0 ? r : 0;
        if (!done)
                return 1000;
        if (v->vm.running && !snapshot_vm_result(&v->vm, rel, "delete")) /* its result or the VM's stop */
                return snapshot_request_set(v->api, v->vm.vmi, rel, "delete", v->uid, err);
        if (!v->vm.running)
                log_info("VirtualMachineSnapshot %s/%s: VM %s stopped: its images keep their copies "
                         "*" BACKUP_FILE_SUFFIX "%s until the snapshot is deleted while it runs",
                         v->ns, v->name, v->vm_name, v->uid);
        rfc3339_now(now, sizeof(now));
        const char *created = kube_str(res, "completionTime") ?: now;
        if ((r = content_ready(v, content, created, err)) < 0)
                return r;
        return succeeded(v, cname, created,
                         cJSON_IsTrue(cJSON_GetObjectItem(res, "guestAgent")) ? "GuestAgent" : "NoGuestAgent",
                         err);
}

/* The snapshot's content, NULL in *out when there is none. */
static int get_content(vmsnap *v, cJSON **out, kv_error *err)
{
        char cname[300];
        snprintf(cname, sizeof(cname), "%s-content", v->name);
        int r = kube_get(v->api, &kube_vmsnapshotcontent, v->ns, cname, out, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                *out = NULL;
                return 0;
        }
        return r;
}

/* The claims (and clone Pods) of a stopped VM's snapshot, deleted with it: the garbage collector would do it
 * through their owner reference, but a cluster may run without one. */
static int delete_backups(vmsnap *v, const cJSON *content, kv_error *err)
{
        const cJSON *b;
        cJSON_ArrayForEach(b, kube_obj(content, "spec.volumeBackups"))
        {
                const char *backup = kube_str(b, "volumeSnapshotName");
                int r = backup ? claim_clone_delete(v->api, v->ns, backup, backup, err) : 0;
                if (r < 0)
                        return r;
                if (backup)
                        log_info("VirtualMachineSnapshot %s/%s: backup claim %s deleted", v->ns, v->name,
                                 backup);
        }
        return 0;
}

/* The qcow2 snapshot is removed by the launcher while the VM runs (after a save still queued or running,
 * which the launcher runs first); a stopped or gone VM's images keep it (docs/cluster-snapshots.md). */
static int reconcile_deletion(vmsnap *v, kv_error *err)
{
        if (!finalizer_has(v->s, SNAPSHOT_FINALIZER))
                return 0;
        char del_id[200];
        snprintf(del_id, sizeof(del_id), "%s-delete", v->uid);
        _cleanup_json_ cJSON *content = NULL;
        int r = get_content(v, &content, err);
        if (r < 0)
                return r;
        bool claims = content_has_claims(content);
        if (claims && (r = delete_backups(v, content, err)) < 0)
                return r;
        /* the launcher holds a qcow2 snapshot, or backup files not yet released (also those a VM that stopped
         * during its backup left, whatever the phase) */
        bool saved = content_from_launcher(content) ||
                     (!claims && (phase_is(v->phase, "Succeeded") || phase_is(v->phase, "InProgress")));
        if (saved && v->vm.running) {
                const cJSON *res = snapshot_vm_result(&v->vm, del_id, "delete");
                if (!res)
                        return snapshot_request_set(v->api, v->vm.vmi, del_id, "delete", v->uid, err);
                if (!phase_is(kube_str(res, "phase"), "Succeeded"))
                        log_warning("VirtualMachineSnapshot %s/%s: the launcher could not delete it: %s",
                                    v->ns, v->name, kube_str(res, "message") ?: "failed");
        } else if (saved)
                log_info("VirtualMachineSnapshot %s/%s deleted while VM %s is not running: its %s keep "
                         "snapshot %s",
                         v->ns, v->name, v->vm_name,
                         claims ? "claims' " BACKUP_FILE_PREFIX "* files" : "images", v->uid);
        if ((r = drop_requests(v, err)) < 0 ||
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
        if (!snapshot_open(v->s)) /* a restart between the status and the requests' removal */
                return drop_requests(v, err);
        int r = finalizer_set(v->api, &kube_vmsnapshot, v->s, SNAPSHOT_FINALIZER, true, err);
        if (r != 0)
                return r < 0 ? r : 0; /* the update event brings us back */
        _cleanup_json_ cJSON *content = NULL;
        if ((r = get_content(v, &content, err)) < 0)
                return r;
        if (content_from_launcher(content))
                return launcher_claims_step(v, content, err);
        if (content_has_claims(content))
                return offline_step(v, content, err); /* started stopped: finished so, even if it starts */
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
        if (why)
                return fail(v, why, err);
        if (!v->vm.vmi)
                return offline_step(v, NULL, err);
        if ((why = online_claims_refusal(v, buf, sizeof(buf))))
                return fail(v, why, err);
        /* claims or hostDisks: backed up into claims; else (every writable disk qcow2) the qcow2 snapshot
         * with the RAM */
        return vmi_has_backups(v->vm.vmi) ? launcher_claims_step(v, NULL, err) : start(v, true, err);
}

/* The requests this snapshot may have on the VMI: the save, the release of the backup files. */
static int drop_requests(vmsnap *v, kv_error *err)
{
        char rel[200];
        snprintf(rel, sizeof(rel), "%s-release", v->uid);
        int r = snapshot_request_set(v->api, v->vm.vmi, v->uid, NULL, NULL, err);
        return r < 0 ? r : snapshot_request_set(v->api, v->vm.vmi, rel, NULL, NULL, err);
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
