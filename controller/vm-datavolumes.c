/* A VM's DataVolumes: spec.dataVolumeTemplates made into DataVolumes owned by the VM (KubeVirt's ownership,
 * label and annotation), adopted when they already exist without an owner (a VM deleted before kept them),
 * released on the VM's deletion; and the wait of a VMI for the DataVolumes its volumes name. */
#include "controller.h"
#include "datavolume.h"
#include "log.h"

#include <string.h>

static cJSON *store_dv(controller *c, const char *ns, const char *name)
{
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        return kube_store_get(&c->dvs.store, key);
}

static cJSON *dv_from_template(const cJSON *vm, const cJSON *tmpl)
{
        cJSON *dv = cJSON_CreateObject(), *md = cJSON_CreateObject();
        const cJSON *labels = kube_obj(tmpl, "metadata.labels"),
                    *ann = kube_obj(tmpl, "metadata.annotations"), *spec = kube_obj(tmpl, "spec");
        cJSON_AddStringToObject(dv, "apiVersion", "cdi.kubevirt.io/v1beta1");
        cJSON_AddStringToObject(dv, "kind", "DataVolume");
        cJSON_AddItemToObject(dv, "metadata", md);
        cJSON_AddStringToObject(md, "name", kube_str(tmpl, "metadata.name"));
        cJSON_AddStringToObject(md, "namespace", kube_str(vm, "metadata.namespace"));
        cJSON *l = labels ? cJSON_Duplicate(labels, true) : cJSON_CreateObject();
        cJSON_AddItemToObject(md, "labels", l);
        cJSON_AddStringToObject(l, "kubevirt.io/created-by", kube_str(vm, "metadata.uid"));
        cJSON_AddItemToObject(md, "annotations", ann ? cJSON_Duplicate(ann, true) : cJSON_CreateObject());
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(md, "annotations"), DV_ANN_ALLOW_ADOPTION,
                                "true");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(vm, "kubevirt.io/v1", "VirtualMachine"));
        cJSON_AddItemToObject(dv, "spec", spec ? cJSON_Duplicate(spec, true) : cJSON_CreateObject());
        return dv;
}

/* metadata patch: ownerReferences = [vm] (or null), the created-by label and the retained annotation. */
static cJSON *ownership_patch(const cJSON *vm, bool own)
{
        cJSON *patch = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(patch, "metadata");
        if (own) {
                cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                                     kube_controller_ref_of(vm, "kubevirt.io/v1", "VirtualMachine"));
                cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), "kubevirt.io/created-by",
                                        kube_str(vm, "metadata.uid"));
                cJSON_AddNullToObject(cJSON_AddObjectToObject(md, "annotations"), DV_ANN_RETAINED);
        } else {
                cJSON_AddNullToObject(md, "ownerReferences");
                cJSON_AddNullToObject(cJSON_AddObjectToObject(md, "labels"), "kubevirt.io/created-by");
                cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), DV_ANN_RETAINED,
                                        kube_str(vm, "metadata.name"));
        }
        return patch;
}

int vm_datavolumes_sync(controller *c, kube_client *api, const cJSON *vm, kv_error *err)
{
        const char *ns = kube_str(vm, "metadata.namespace"), *uid = kube_str(vm, "metadata.uid");
        const cJSON *tmpl;
        if (optional_state(c, OPT_CDI) != OPT_RUNNING)
                return 0; /* vm_datavolumes_wait says why nothing happens */
        cJSON_ArrayForEach(tmpl, kube_obj(vm, "spec.dataVolumeTemplates"))
        {
                const char *name = kube_str(tmpl, "metadata.name");
                if (!name)
                        continue;
                _cleanup_json_ cJSON *dv = store_dv(c, ns, name);
                int r = 0;
                if (!dv) {
                        _cleanup_json_ cJSON *ndv = dv_from_template(vm, tmpl);
                        r = kube_create(api, &kube_datavolume, ns, ndv, NULL, err);
                        if (r == 0)
                                log_info("VM %s/%s: created DataVolume %s", ns, kube_str(vm, "metadata.name"),
                                         name);
                        r = r == -KUBE_EEXISTS ? 0 : r;
                } else if (!dv_controller_ref(dv)) {
                        _cleanup_json_ cJSON *patch = ownership_patch(vm, true);
                        r = kube_merge_patch(api, &kube_datavolume, ns, name, patch, false, NULL, err);
                        if (r == 0)
                                log_info("VM %s/%s: adopted DataVolume %s", ns, kube_str(vm, "metadata.name"),
                                         name);
                } else if (strcmp(kube_str(dv_controller_ref(dv), "uid") ?: "", uid ?: "")) {
                        log_debug("VM %s/%s: DataVolume %s belongs to another owner", ns,
                                  kube_str(vm, "metadata.name"), name);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static enum dv_wait dv_state(const cJSON *dv, const char **why)
{
        const char *phase = kube_str(dv, "status.phase") ?: "";
        const cJSON *cond;
        *why = phase;
        if (!strcmp(phase, "Succeeded"))
                return DV_WAIT_NONE;
        cJSON_ArrayForEach(cond, kube_obj(dv, "status.conditions"))
        {
                const char *type = kube_str(cond, "type") ?: "", *reason = kube_str(cond, "reason") ?: "";
                if (!strcmp(type, "Running") && !strcmp(kube_str(cond, "status") ?: "", "False") &&
                    (!strcmp(reason, "Error") || !strcmp(reason, "ImagePullFailed"))) {
                        *why = kube_str(cond, "message") ?: reason;
                        return DV_WAIT_ERROR;
                }
        }
        if (!strcmp(phase, "Failed"))
                return DV_WAIT_ERROR;
        if (!strcmp(phase, "Pending") || !strcmp(phase, "WaitForFirstConsumer"))
                return DV_WAIT_BINDING;
        return DV_WAIT_PROVISIONING;
}

enum dv_wait vm_datavolumes_wait(controller *c, const cJSON *vm, char *msg, size_t size)
{
        enum dv_wait worst = DV_WAIT_NONE;
        const cJSON *vol;
        msg[0] = '\0';
        cJSON_ArrayForEach(vol, kube_obj(vm, "spec.template.spec.volumes"))
        {
                const char *name = kube_str(vol, "dataVolume.name");
                if (!name)
                        continue;
                enum dv_wait w = DV_WAIT_PROVISIONING;
                const char *why = "does not exist yet";
                _cleanup_json_ cJSON *dv = NULL;
                if (optional_state(c, OPT_CDI) != OPT_RUNNING)
                        why = "cdi.kubevirt.io/v1beta1 datavolumes are not served";
                else if ((dv = store_dv(c, kube_str(vm, "metadata.namespace"), name)))
                        w = dv_state(dv, &why);
                if (w > worst) {
                        worst = w;
                        snprintf(msg, size, "DataVolume %s: %s", name, *why ? why : "no status yet");
                }
        }
        return worst;
}

const char *dv_wait_printable(enum dv_wait w)
{
        switch (w) {
        case DV_WAIT_ERROR:
                return "DataVolumeError";
        case DV_WAIT_PROVISIONING:
                return "Provisioning";
        case DV_WAIT_BINDING:
                return "WaitingForVolumeBinding";
        default:
                return NULL;
        }
}

/* The template DataVolumes vm controls get the ownership patch for `to` (NULL: released, kept with
 * DV_ANN_RETAINED). The API is read fresh: the VM is going, its DataVolumes may not be in a cache. */
static int owned_datavolumes_hand(kube_client *api, const cJSON *vm, const cJSON *to, kv_error *err)
{
        const char *ns = kube_str(vm, "metadata.namespace"), *uid = kube_str(vm, "metadata.uid");
        const cJSON *tmpl;
        cJSON_ArrayForEach(tmpl, kube_obj(vm, "spec.dataVolumeTemplates"))
        {
                const char *name = kube_str(tmpl, "metadata.name");
                _cleanup_json_ cJSON *dv = NULL;
                int r = name ? kube_get(api, &kube_datavolume, ns, name, &dv, err) : -KUBE_ENOTFOUND;
                if (r == -KUBE_ENOTFOUND)
                        continue;
                if (r < 0)
                        return r;
                if (strcmp(kube_str(dv_controller_ref(dv), "uid") ?: "", uid ?: ""))
                        continue;
                _cleanup_json_ cJSON *patch = ownership_patch(to ? to : vm, to != NULL);
                if ((r = kube_merge_patch(api, &kube_datavolume, ns, name, patch, false, NULL, err)) < 0)
                        return r;
                if (to)
                        log_info("VM %s/%s renamed: DataVolume %s now owned by VM %s", ns,
                                 kube_str(vm, "metadata.name"), name, kube_str(to, "metadata.name"));
                else
                        log_info(
                            "VM %s/%s deleted: DataVolume %s and its claim kept (annotation " DV_ANN_RETAINED
                            ")",
                            ns, kube_str(vm, "metadata.name"), name);
        }
        return 0;
}

int vm_datavolumes_release(kube_client *api, const cJSON *vm, kv_error *err)
{
        return owned_datavolumes_hand(api, vm, NULL, err);
}

int vm_datavolumes_move(kube_client *api, const cJSON *from, const cJSON *to, kv_error *err)
{
        return owned_datavolumes_hand(api, from, to, err);
}
