/* Which registry served each pulled containerDisk of a VMI: the launcher Pod's container-disk-<volume> init
 * containers end with kvlite-importer's result line as termination message (docs/registries.md); the VMI
 * gets them in its annotation kvlite.io/container-disk-pulls and an Event per new result, as the DataVolume
 * controller does for imports. KubeVirt's VMI status has no place for it (its containerDiskVolume holds a
 * checksum only). */
#include "controller.h"
#include "datavolume.h"
#include "log.h"
#include "macro.h"

#include <string.h>

/* The pull results of one Pod's init containers into out[volume] (the newest Pod wins: a migration target
 * pulls again). */
static void pod_pulls(const cJSON *pod, cJSON *out, cJSON *created)
{
        const size_t plen = strlen(POD_CONTAINER_DISK_PREFIX);
        const char *ts = kube_str(pod, "metadata.creationTimestamp") ?: "";
        const cJSON *cs;
        cJSON_ArrayForEach(cs, kube_obj(pod, "status.initContainerStatuses"))
        {
                const char *name = kube_str(cs, "name") ?: "";
                const char *msg = kube_str(cs, "state.terminated.message");
                if (strncmp(name, POD_CONTAINER_DISK_PREFIX, plen) || !msg)
                        continue;
                const char *vol = name + plen, *seen = kube_str(created, vol);
                _cleanup_json_ cJSON *res = last_json_line(msg, "result");
                if (!res || (seen && strcmp(seen, ts) > 0))
                        continue;
                cJSON *entry = cJSON_CreateObject();
                cJSON_AddStringToObject(entry, "pod", kube_str(pod, "metadata.name") ?: "");
                cJSON_AddStringToObject(entry, "result", kube_str(res, "result") ?: "");
                if (kube_str(res, "reason"))
                        cJSON_AddStringToObject(entry, "reason", kube_str(res, "reason"));
                cJSON *rep = cJSON_DetachItemFromObjectCaseSensitive(res, "registry");
                cJSON_AddItemToObject(entry, "registry", rep ? rep : cJSON_CreateObject());
                cJSON_DeleteItemFromObjectCaseSensitive(out, vol);
                cJSON_AddItemToObject(out, vol, entry);
                cJSON_DeleteItemFromObjectCaseSensitive(created, vol);
                cJSON_AddStringToObject(created, vol, ts);
        }
}

static void post_pull_event(kube_client *api, const cJSON *vmi, const char *vol, const cJSON *entry)
{
        char where[1000], msg[1200];
        bool ok = !strcmp(kube_str(entry, "result") ?: "", "Succeeded");
        describe_registry(kube_obj(entry, "registry"), where, sizeof(where));
        snprintf(msg, sizeof(msg), "containerDisk %s (Pod %s): %s%s%s", vol, kube_str(entry, "pod"),
                 ok ? "pulled" : kube_str(entry, "reason") ?: "pull failed", *where ? "; " : "", where);
        post_object_event(api, vmi, "kubevirt.io/v1", "VirtualMachineInstance", ok ? "Normal" : "Warning",
                          ok ? "ContainerDiskPulled" : "ContainerDiskPullFailed", msg);
}

int vmi_container_disk_pulls(kube_client *api, const cJSON *vmi, const cJSON *pods, kv_error *err)
{
        _cleanup_json_ cJSON *pulls = cJSON_CreateObject(), *created = cJSON_CreateObject(), *old = NULL;
        const cJSON *pod;
        cJSON_ArrayForEach(pod, pods) pod_pulls(pod, pulls, created);
        if (!pulls->child)
                return 0; /* nothing pulled (yet): an earlier Pod's record stays */
        const char *cur = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            kube_obj(vmi, "metadata.annotations"), VMI_ANN_CONTAINER_DISK_PULLS));
        old = cur ? cJSON_Parse(cur) : NULL;
        if (old && cJSON_Compare(old, pulls, true))
                return 0;
        _cleanup_free_ char *text = cJSON_PrintUnformatted(pulls);
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(patch, "metadata"),
              *ann = cJSON_AddObjectToObject(md, "annotations");
        cJSON_AddStringToObject(ann, VMI_ANN_CONTAINER_DISK_PULLS, text ?: "{}");
        /* a precondition: of two reconciles that saw the same VMI, one records (and posts the Events), the
         * other gets 409 and finds the record when the VMI's update comes back */
        const char *rv = kube_str(vmi, "metadata.resourceVersion");
        if (rv)
                cJSON_AddStringToObject(md, "resourceVersion", rv);
        int r = kube_merge_patch(api, &kube_vmi, kube_str(vmi, "metadata.namespace"),
                                 kube_str(vmi, "metadata.name"), patch, false, NULL, err);
        if (r == -KUBE_ECONFLICT) {
                *err = (kv_error){0};
                return 0;
        }
        if (r < 0)
                return r;
        const cJSON *entry;
        cJSON_ArrayForEach(entry, pulls)
        {
                if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(old, entry->string), entry, true))
                        post_pull_event(api, vmi, entry->string, entry);
        }
        return 0;
}
