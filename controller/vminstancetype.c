/* vminstancetype: ControllerRevisions of a VM's instancetype and preference, and the expanded template. */
#include "vminstancetype.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "instancetype.h"
#include "json.h"
#include "log.h"
#include "macro.h"

static const kube_resource *resource_of(const it_ref *ref)
{
        if (!strcmp(ref->kind, "VirtualMachineInstancetype"))
                return &kube_vminstancetype;
        if (!strcmp(ref->kind, "VirtualMachineClusterInstancetype"))
                return &kube_vmclusterinstancetype;
        if (!strcmp(ref->kind, "VirtualMachinePreference"))
                return &kube_vmpreference;
        return &kube_vmclusterpreference;
}

/* A new ControllerRevision holding obj (the whole object, as KubeVirt stores it), owned by the VM. */
static cJSON *revision_for(const cJSON *vm, const cJSON *obj, const char *name)
{
        cJSON *rev = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(rev, "metadata");
        cJSON_AddStringToObject(rev, "apiVersion", "apps/v1");
        cJSON_AddStringToObject(rev, "kind", "ControllerRevision");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", kube_str(vm, "metadata.namespace"));
        cJSON *labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_AddStringToObject(labels, "instancetype.kubevirt.io/object-kind", kube_str(obj, "kind") ?: "");
        cJSON_AddStringToObject(labels, "instancetype.kubevirt.io/object-name",
                                kube_str(obj, "metadata.name") ?: "");
        cJSON_AddStringToObject(labels, "instancetype.kubevirt.io/object-uid",
                                kube_str(obj, "metadata.uid") ?: "");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(vm, kube_vm.api_version, kube_vm.kind));
        cJSON_AddItemToObject(rev, "data", cJSON_Duplicate(obj, true));
        cJSON_AddNumberToObject(rev, "revision", 0);
        return rev;
}

/* The revision named by the matcher, or a fresh one of the current object (then recorded on the VM). */
static int matcher_spec(kube_client *api, const cJSON *vm, it_which w, cJSON **spec, kv_error *err)
{
        it_ref ref;
        const char *key = w == IT_INSTANCETYPE ? "instancetype" : "preference";
        const char *ns = kube_str(vm, "metadata.namespace");
        *spec = NULL;
        int r = it_ref_get(vm, w, &ref, err);
        if (r <= 0)
                return r;
        _cleanup_json_ cJSON *rev = NULL, *obj = NULL;
        if (ref.revision_name) {
                r = kube_get(api, &kube_controllerrevision, ns, ref.revision_name, &rev, err);
                if (r == -KUBE_ENOTFOUND)
                        return kv_error_set(err, EINVAL,
                                            "spec.%s.revisionName: controllerrevisions.apps \"%s\" not found",
                                            key, ref.revision_name);
                if (r < 0)
                        return r;
        } else {
                r = kube_get(api, resource_of(&ref), ref.cluster ? NULL : ns, ref.name, &obj, err);
                if (r == -KUBE_ENOTFOUND)
                        return kv_error_set(err, EINVAL,
                                            "spec.%s.name: %s.instancetype.kubevirt.io \"%s\" not found", key,
                                            ref.plural, ref.name);
                if (r < 0)
                        return r;
                char name[512];
                const cJSON *gen = kube_obj(obj, "metadata.generation");
                snprintf(name, sizeof(name), "%s-%s-%s-%d", kube_str(vm, "metadata.name"), ref.name,
                         kube_str(obj, "metadata.uid") ?: "", cJSON_IsNumber(gen) ? gen->valueint : 1);
                rev = revision_for(vm, obj, name);
                r = kube_create(api, &kube_controllerrevision, ns, rev, NULL, err);
                if (r < 0 && r != -KUBE_EEXISTS) /* an earlier attempt's, holding the same generation */
                        return r;
                _cleanup_json_ cJSON *patch = cJSON_CreateObject();
                cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "spec"), key);
                cJSON_AddStringToObject(m, "revisionName", name);
                if ((r = kube_merge_patch(api, &kube_vm, ns, kube_str(vm, "metadata.name"), patch, false,
                                          NULL, err)) < 0)
                        return r;
                log_info("VM %s/%s: %s %s kept as ControllerRevision %s", ns, kube_str(vm, "metadata.name"),
                         key, ref.name, name);
        }
        const cJSON *s = kube_obj(rev, "data.spec");
        if (!s && w == IT_INSTANCETYPE)
                return kv_error_set(err, EINVAL, "spec.%s: the revision holds no spec", key);
        *spec = s ? cJSON_Duplicate(s, true) : NULL;
        return 0;
}

int vm_expand_template(kube_client *api, const cJSON *vm, cJSON **expanded, kv_error *err)
{
        _cleanup_json_ cJSON *copy = cJSON_Duplicate(vm, true), *it = NULL, *pref = NULL, *vmi = NULL;
        if (!copy)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (!kube_obj(vm, "spec.instancetype") && !kube_obj(vm, "spec.preference")) {
                *expanded = TAKE_PTR(copy);
                return 0;
        }
        int r = matcher_spec(api, vm, IT_INSTANCETYPE, &it, err);
        if (r < 0 || (r = matcher_spec(api, vm, IT_PREFERENCE, &pref, err)) < 0)
                return r;
        if ((r = it_expand_vm(vm, it, pref, &vmi, err)) < 0)
                return r;
        /* the template becomes the expanded VMI's metadata and spec: vmi_from_template copies it */
        cJSON *tmpl = cJSON_CreateObject(), *tmd = cJSON_AddObjectToObject(tmpl, "metadata");
        const cJSON *labels = kube_obj(vmi, "metadata.labels"), *ann = kube_obj(vmi, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(tmd, "labels", cJSON_Duplicate(labels, true));
        if (ann)
                cJSON_AddItemToObject(tmd, "annotations", cJSON_Duplicate(ann, true));
        cJSON_AddItemToObject(tmpl, "spec", cJSON_DetachItemFromObjectCaseSensitive(vmi, "spec"));
        cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "spec"), "template",
                                               tmpl);
        *expanded = TAKE_PTR(copy);
        return 0;
}

bool vm_needs_revision(const cJSON *vm)
{
        for (it_which w = IT_INSTANCETYPE; w <= IT_PREFERENCE; w++) {
                it_ref ref;
                kv_error ignored = {0};
                if (it_ref_get(vm, w, &ref, &ignored) > 0 && !ref.revision_name)
                        return true;
        }
        return false;
}
