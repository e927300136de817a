/* The controller's half of a VM rename: the new VM takes over the old one's disks and snapshots, and only
 * then is the old VM deleted, so that a failure at any step loses nothing (vmrename.h). */
#include "vmrename.h"

#include <string.h>

#include "datavolume.h"
#include "json.h"
#include "log.h"
#include "macro.h"

#define RENAME_RECHECK_MS 500 /* while the old VM finishes its deletion */

static const char *annotation(const cJSON *vm, const char *key)
{
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(kube_obj(vm, "metadata.annotations"), key);
        return cJSON_IsString(a) ? a->valuestring : NULL;
}

bool vm_rename_holds(const cJSON *vm)
{
        return annotation(vm, VM_ANN_RENAME_TO) || annotation(vm, VM_ANN_RENAMED_FROM);
}

static bool controlled_by(const cJSON *obj, const char *uid)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences"))
        {
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "controller")))
                        return !strcmp(kube_str(o, "uid") ?: "", uid ?: "-");
        }
        return false;
}

/* The instancetype and preference ControllerRevisions the spec names, when the old VM controls them. */
static int move_revisions(kube_client *api, const cJSON *old, const cJSON *vm, kv_error *err)
{
        static const char *const paths[] = {"spec.instancetype.revisionName", "spec.preference.revisionName"};
        const char *ns = kube_str(vm, "metadata.namespace");
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
                const char *name = kube_str(old, paths[i]);
                _cleanup_json_ cJSON *rev = NULL, *patch = cJSON_CreateObject();
                int r = name ? kube_get(api, &kube_controllerrevision, ns, name, &rev, err) : -KUBE_ENOTFOUND;
                if (r == -KUBE_ENOTFOUND)
                        continue;
                if (r < 0)
                        return r;
                if (!controlled_by(rev, kube_str(old, "metadata.uid")))
                        continue;
                cJSON_AddItemToArray(
                    cJSON_AddArrayToObject(cJSON_AddObjectToObject(patch, "metadata"), "ownerReferences"),
                    kube_controller_ref_of(vm, kube_vm.api_version, kube_vm.kind));
                if ((r = kube_merge_patch(api, &kube_controllerrevision, ns, name, patch, false, NULL, err)) <
                    0)
                        return r;
        }
        return 0;
}

/* The snapshots of the old name name the new VM (snapshot.kubevirt.io may not be served: nothing to do). */
static int move_snapshots(kube_client *api, const char *ns, const char *from, const char *to, kv_error *err)
{
        _cleanup_json_ cJSON *list = NULL;
        int r = kube_list(api, &kube_vmsnapshot, ns, NULL, &list, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                return 0;
        }
        if (r < 0)
                return r;
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(list, "items"))
        {
                const char *name = kube_str(s, "metadata.name");
                if (!name || strcmp(kube_str(s, "spec.source.name") ?: "", from))
                        continue;
                _cleanup_json_ cJSON *patch = cJSON_CreateObject();
                cJSON *src = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "spec"), "source");
                cJSON_AddStringToObject(src, "name", to);
                if ((r = kube_merge_patch(api, &kube_vmsnapshot, ns, name, patch, false, NULL, err)) < 0)
                        return r;
                log_info("VM %s/%s renamed: VirtualMachineSnapshot %s now names VM %s", ns, from, name, to);
        }
        return 0;
}

/* The runStrategy the controller last acted on (status.runStrategy): without it a stopped RerunOnFailure VM
 * would count as coming to that strategy, and start. */
static int carry_recorded_strategy(kube_client *api, const cJSON *old, const cJSON *vm, kv_error *err)
{
        const char *recorded = kube_str(old, "status.runStrategy");
        if (!recorded || !strcmp(recorded, kube_str(vm, "status.runStrategy") ?: ""))
                return 0;
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(patch, "status"), "runStrategy", recorded);
        return kube_merge_patch(api, &kube_vm, kube_str(vm, "metadata.namespace"),
                                kube_str(vm, "metadata.name"), patch, true, NULL, err);
}

static int drop_record(kube_client *api, const cJSON *vm, kv_error *err)
{
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        cJSON_AddNullToObject(ann, VM_ANN_RENAMED_FROM);
        cJSON_AddNullToObject(ann, VM_ANN_RENAMED_FROM_UID);
        return kube_merge_patch(api, &kube_vm, kube_str(vm, "metadata.namespace"),
                                kube_str(vm, "metadata.name"), patch, false, NULL, err);
}

int vm_rename_finish(kube_client *api, const cJSON *vm, kv_error *err)
{
        const char *from = annotation(vm, VM_ANN_RENAMED_FROM),
                   *from_uid = annotation(vm, VM_ANN_RENAMED_FROM_UID);
        const char *ns = kube_str(vm, "metadata.namespace"), *name = kube_str(vm, "metadata.name");
        if (!from || kube_obj(vm, "metadata.deletionTimestamp"))
                return 0;
        _cleanup_json_ cJSON *old = NULL;
        int r = kube_get(api, &kube_vm, ns, from, &old, err);
        if (r < 0 && r != -KUBE_ENOTFOUND)
                return r;
        if (!old || strcmp(kube_str(old, "metadata.uid") ?: "", from_uid ?: "-")) {
                if ((r = drop_record(api, vm, err)) < 0)
                        return r;
                log_info("VM %s/%s: renamed from %s, done", ns, name, from);
                return RENAME_RECHECK_MS; /* the patch's event brings the VM back too */
        }
        if (kube_obj(old, "metadata.deletionTimestamp"))
                return RENAME_RECHECK_MS; /* its finalizer goes in its own reconcile */
        if (strcmp(annotation(old, VM_ANN_RENAME_TO) ?: "", name)) {
                /* the fence was taken off (or names another VM): this copy waits; deleting it is the user's
                 * call */
                log_warning("VM %s/%s: renamed from %s, but %s is no longer being renamed to it; holding", ns,
                            name, from, from);
                return 0;
        }
        if ((r = vm_datavolumes_move(api, old, vm, err)) < 0 || (r = move_revisions(api, old, vm, err)) < 0 ||
            (r = move_snapshots(api, ns, from, name, err)) < 0 ||
            (r = carry_recorded_strategy(api, old, vm, err)) < 0)
                return r;
        /* Its disks are the new VM's now: the old VM's deletion keeps nothing and deletes nothing of them. */
        if ((r = kube_delete(api, &kube_vm, ns, from, from_uid, NULL, "Background", err)) < 0)
                return r;
        log_info("VM %s/%s: renamed from %s; DataVolumes and snapshots moved, %s deleted", ns, name, from,
                 from);
        return RENAME_RECHECK_MS;
}
