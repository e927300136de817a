/* admission: the AdmissionReview v1 answers of virt-api's webhooks (admission.h): per-kind validators
 * (VMIs and VM templates through libkvapi's validator) and KubeVirt's defaults as a JSONPatch. */
#include "admission.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "jfield.h"
#include "labelselector.h"
#include "json.h"
#include "macro.h"
#include "infer.h"
#include "instancetype.h"
#include "quantity.h"
#include "rename-annotations.h"
#include "vmi.h"

#define OBSERVED_API_VERSION "v1"

typedef struct review {
        cJSON *root;
        const char *uid, *group, *kind, *operation;
        const cJSON *object, *old_object;
        const admission_lookup *lookup; /* the objects a VM names (NULL: none can be read) */
} review;

static void review_done(review *r)
{
        cJSON_Delete(r->root);
}

static const char *str_at(const cJSON *obj, const char *key)
{
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(s) ? s->valuestring : "";
}

static const cJSON *obj_at(const cJSON *obj, const char *key)
{
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsObject(o) ? o : NULL;
}

static int review_parse(const char *json, size_t len, review *r, kv_error *err)
{
        *r = (review){0};
        if (!(r->root = cJSON_ParseWithLength(json, len)))
                return kv_error_set(err, EINVAL, "the body is not JSON");
        const cJSON *req = obj_at(r->root, "request");
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(req, "uid");
        if (!req || !cJSON_IsString(uid))
                return kv_error_set(err, EINVAL,
                                    "request.uid: is required (the body is not an AdmissionReview)");
        r->uid = uid->valuestring;
        r->group = str_at(obj_at(req, "kind"), "group");
        r->kind = str_at(obj_at(req, "kind"), "kind");
        r->operation = str_at(req, "operation");
        r->object = obj_at(req, "object");
        r->old_object = obj_at(req, "oldObject");
        return 0;
}

/* An UPDATE that leaves `key` of the object as it was (status and metadata edits by the controller). */
static bool update_keeps(const review *r, const char *key)
{
        return !strcmp(r->operation, "UPDATE") && r->old_object &&
               cJSON_Compare(cJSON_GetObjectItemCaseSensitive(r->object, key),
                             cJSON_GetObjectItemCaseSensitive(r->old_object, key), true);
}

/* ---- validators: 0, or -EINVAL with err->msg = "<field>: <why>" ---- */

static int validate_vmi(const review *r, kv_error *err)
{
        if (update_keeps(r, "spec"))
                return 0;
        vmi *v = NULL;
        int ret = vmi_from_json(r->object, &v, err);
        vmi_free(v);
        return ret;
}

/* The VMI a VM's template would create (what virt-controller builds), without owner references. */
static cJSON *vmi_of_template(const cJSON *vm, const cJSON *tmpl)
{
        cJSON *out = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(out, "metadata");
        const cJSON *vm_md = obj_at(vm, "metadata"), *t_md = obj_at(tmpl, "metadata");
        const char *name = str_at(vm_md, "name");
        cJSON_AddStringToObject(out, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(out, "kind", "VirtualMachineInstance");
        cJSON_AddStringToObject(md, "name", name[0] ? name : "vm");
        if (str_at(vm_md, "namespace")[0])
                cJSON_AddStringToObject(md, "namespace", str_at(vm_md, "namespace"));
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(t_md, "labels");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, true));
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
        if (spec)
                cJSON_AddItemToObject(out, "spec", cJSON_Duplicate(spec, true));
        return out;
}

/* The template's errors name the VM's fields: spec.domain… → spec.template.spec.domain…. */
static int template_error(kv_error *err)
{
        if (strncmp(err->msg, "spec", 4) && strncmp(err->msg, "metadata.labels", 15))
                return -err->code;
        char msg[KV_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        return kv_error_set(err, err->code, "spec.template.%s", msg);
}

/* The spec of the instancetype or preference the VM names (*spec NULL when it names none): 1; 0 when it
 * cannot be read here (not there yet, no lookup: the controller reports it when the VM starts); -EINVAL for a
 * malformed matcher. A kept revision is read instead of the object, as the controller does. */
static int matcher_spec(const review *r, it_which which, cJSON **spec, kv_error *err)
{
        it_ref ref;
        *spec = NULL;
        int ret = it_ref_get(r->object, which, &ref, err);
        if (ret <= 0)
                return ret == 0 ? 1 : ret;
        if (!r->lookup || !r->lookup->get)
                return 0;
        const char *ns = str_at(obj_at(r->object, "metadata"), "namespace");
        _cleanup_json_ cJSON *obj = NULL;
        kv_error ignored = {0};
        if (r->lookup->get(r->lookup->ctx, ref.revision_name ? "controllerrevisions" : ref.plural,
                           ref.cluster && !ref.revision_name ? NULL : ns,
                           ref.revision_name ? ref.revision_name : ref.name, &obj, &ignored) < 0)
                return 0;
        const cJSON *s = obj_at(ref.revision_name ? obj_at(obj, "data") : obj, "spec");
        *spec = s ? cJSON_Duplicate(s, true) : NULL;
        return 1;
}

/* The VMI a VM's template stands for: with its instancetype and preference applied, as KubeVirt's admitter
 * checks it (conflicts refused with their paths). 1 with *vmi_out; 0 when an object it names cannot be read
 * here (the template is then left to the controller). */
static int template_vmi(const review *r, const cJSON *tmpl, cJSON **vmi_out, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec");
        *vmi_out = NULL;
        if (!obj_at(spec, "instancetype") && !obj_at(spec, "preference")) {
                *vmi_out = vmi_of_template(r->object, tmpl);
                return 1;
        }
        _cleanup_json_ cJSON *it = NULL, *pref = NULL;
        int ret = matcher_spec(r, IT_INSTANCETYPE, &it, err);
        if (ret == 1)
                ret = matcher_spec(r, IT_PREFERENCE, &pref, err);
        if (ret <= 0)
                return ret;
        JF_TRY(it_expand_vm(r->object, it, pref, vmi_out, err));
        return 1;
}

static int validate_vm(const review *r, kv_error *err)
{
        static const char *const strategies[] = {"Always", "Halted",         "Manual", "RerunOnFailure",
                                                 "Once",   "WaitAsReceiver", NULL};
        const cJSON *spec = obj_at(r->object, "spec");
        if (!spec)
                return jf_error(err, "spec", "is required");
        const cJSON *running = cJSON_GetObjectItemCaseSensitive(spec, "running");
        int strategy = -1;
        JF_TRY(jf_enum(spec, "spec", "runStrategy", strategies, &strategy, err));
        if (running && !cJSON_IsNull(running) && cJSON_GetObjectItemCaseSensitive(spec, "runStrategy"))
                return jf_error(err, "spec.running",
                                "Running and RunStrategy are mutually exclusive. Note that Running is "
                                "deprecated, please use RunStrategy instead");
        const cJSON *tmpl = obj_at(spec, "template");
        if (!tmpl)
                return jf_error(err, "spec.template", "missing virtual machine template.");
        if (update_keeps(r, "spec") ||
            (r->old_object && cJSON_Compare(tmpl, obj_at(obj_at(r->old_object, "spec"), "template"), true)))
                return 0;
        _cleanup_json_ cJSON *as_vmi = NULL;
        int ret = template_vmi(r, tmpl, &as_vmi, err);
        if (ret <= 0)
                return ret;
        vmi *v = NULL;
        ret = vmi_from_json(as_vmi, &v, err);
        vmi_free(v);
        return ret < 0 ? template_error(err) : 0;
}

/* KubeVirt's "selector does not match labels." for a replica set's or pool's template. */
static int selector_matches_template(const cJSON *spec, const cJSON *tmpl, kv_error *err)
{
        int r = label_selector_matches(obj_at(spec, "selector"), "spec.selector",
                                       obj_at(obj_at(tmpl, "metadata"), "labels"), err);
        return r == 0 ? jf_error(err, "spec.selector", "selector does not match labels.") : r < 0 ? r : 0;
}

/* A VirtualMachineInstanceReplicaSet: its template is checked as the VMIs it makes (errors at
 * spec.template.spec…), and its selector must select them. */
static int validate_vmirs(const review *r, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec"), *tmpl = obj_at(spec, "template");
        if (!tmpl)
                return jf_error(err, "spec.template", "missing virtual machine template.");
        if (update_keeps(r, "spec"))
                return 0;
        _cleanup_json_ cJSON *as_vmi = vmi_of_template(r->object, tmpl);
        vmi *v = NULL;
        int ret = vmi_from_json(as_vmi, &v, err);
        vmi_free(v);
        return ret < 0 ? template_error(err) : selector_matches_template(spec, tmpl, err);
}

/* The VirtualMachine a pool's spec.virtualMachineTemplate stands for (its name the pool's). */
static cJSON *vm_of_pool(const cJSON *pool)
{
        const cJSON *vmt = obj_at(obj_at(pool, "spec"), "virtualMachineTemplate");
        cJSON *vm = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(vm, "metadata");
        cJSON_AddStringToObject(vm, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vm, "kind", "VirtualMachine");
        cJSON_AddStringToObject(md, "name", str_at(obj_at(pool, "metadata"), "name"));
        cJSON_AddStringToObject(md, "namespace", str_at(obj_at(pool, "metadata"), "namespace"));
        const cJSON *spec = obj_at(vmt, "spec");
        if (spec)
                cJSON_AddItemToObject(vm, "spec", cJSON_Duplicate(spec, true));
        return vm;
}

/* A VirtualMachinePool: spec.virtualMachineTemplate.spec checked as a VM's spec (errors at
 * spec.virtualMachineTemplate.spec…), a selector that selects its VMs and does not change. */
static int validate_pool(const review *r, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec"), *vmt = obj_at(spec, "virtualMachineTemplate");
        if (!vmt)
                return jf_error(err, "spec.virtualMachineTemplate", "missing virtual machine template.");
        if (!strcmp(r->operation, "UPDATE") && r->old_object &&
            !cJSON_Compare(obj_at(spec, "selector"), obj_at(obj_at(r->old_object, "spec"), "selector"), true))
                return jf_error(err, "spec.selector", "selector is immutable after creation.");
        _cleanup_json_ cJSON *vm = vm_of_pool(r->object);
        _cleanup_json_ cJSON *old_vm = r->old_object ? vm_of_pool(r->old_object) : NULL;
        review as_vm = *r;
        as_vm.object = vm;
        as_vm.old_object = old_vm;
        if (validate_vm(&as_vm, err) < 0) {
                char msg[KV_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s", err->msg);
                return kv_error_set(err, err->code, "spec.virtualMachineTemplate.%s", msg);
        }
        return selector_matches_template(spec, vmt, err);
}

static int spec_immutable(const review *r, const char *message, kv_error *err)
{
        if (!strcmp(r->operation, "UPDATE") && r->old_object && !update_keeps(r, "spec"))
                return jf_error(err, "spec", "%s", message);
        return 0;
}

static int validate_vmim(const review *r, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec");
        if (!spec)
                return jf_error(err, "spec", "is required");
        _cleanup_free_ char *name = NULL;
        JF_TRY(jf_string(spec, "spec", "vmiName", true, &name, err));
        return spec_immutable(r, "update of Migration object's spec is restricted", err);
}

/* A typed local reference to a VirtualMachine (snapshot source, restore target). */
static int check_vm_ref(const cJSON *spec, const char *key, kv_error *err)
{
        char p[JPATH_MAX];
        jpath_key(p, "spec", key);
        const cJSON *ref = obj_at(spec, key);
        if (!ref)
                return jf_error(err, p, "is required");
        _cleanup_free_ char *group = NULL, *kind = NULL, *name = NULL;
        JF_TRY(jf_string(ref, p, "apiGroup", true, &group, err));
        JF_TRY(jf_string(ref, p, "kind", true, &kind, err));
        JF_TRY(jf_string(ref, p, "name", true, &name, err));
        char f[JPATH_MAX];
        if (strcmp(group, "kubevirt.io"))
                return jf_error(err, jpath_key(f, p, "apiGroup"), "invalid apiGroup \"%.64s\"", group);
        if (strcmp(kind, "VirtualMachine"))
                return jf_error(err, jpath_key(f, p, "kind"), "invalid kind \"%.64s\"", kind);
        return 0;
}

/* The one spec edit of a snapshot allowed after creation: the rename controller's (controller/vm-rename.c),
 * which points spec.source.name at the VM's new name while that VM still records the old one. */
static bool rename_follows(const review *r)
{
        const char *from = str_at(obj_at(obj_at(r->old_object, "spec"), "source"), "name"),
                   *to = str_at(obj_at(obj_at(r->object, "spec"), "source"), "name");
        if (!*from || !*to || !strcmp(from, to) || !r->lookup || !r->lookup->get)
                return false;
        _cleanup_json_ cJSON *a = cJSON_Duplicate(obj_at(r->object, "spec"), true),
                             *b = cJSON_Duplicate(obj_at(r->old_object, "spec"), true), *vm = NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "source"), "name");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, "source"), "name");
        kv_error ignored = {0};
        if (!cJSON_Compare(a, b, true) ||
            r->lookup->get(r->lookup->ctx, "virtualmachines",
                           str_at(obj_at(r->object, "metadata"), "namespace"), to, &vm, &ignored) < 0)
                return false;
        return !strcmp(str_at(obj_at(obj_at(vm, "metadata"), "annotations"), RENAMED_FROM_ANNOTATION), from);
}

static int validate_snapshot(const review *r, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec");
        if (!spec)
                return jf_error(err, "spec", "is required");
        JF_TRY(check_vm_ref(spec, "source", err));
        return rename_follows(r) ? 0 : spec_immutable(r, "spec in immutable after creation", err);
}

static int validate_restore(const review *r, kv_error *err)
{
        const cJSON *spec = obj_at(r->object, "spec");
        if (!spec)
                return jf_error(err, "spec", "is required");
        JF_TRY(check_vm_ref(spec, "target", err));
        _cleanup_free_ char *snap = NULL;
        JF_TRY(jf_string(spec, "spec", "virtualMachineSnapshotName", true, &snap, err));
        return spec_immutable(r, "spec in immutable after creation", err);
}

static int validate_policy(const review *r, kv_error *err)
{
        static const char *const allowed[] = {"selectors",
                                              "allowAutoConverge",
                                              "allowPostCopy",
                                              "bandwidthPerMigration",
                                              "completionTimeoutPerGiB",
                                              NULL};
        const cJSON *spec = obj_at(r->object, "spec"), *q;
        if (!spec)
                return jf_error(err, "spec", "is required");
        JF_TRY(jf_check_keys(spec, "spec", allowed, NULL, err));
        bool b;
        int64_t n;
        uint64_t bytes;
        const cJSON *sel = NULL;
        JF_TRY(jf_object(spec, "spec", "selectors", &sel, err));
        JF_TRY(jf_bool(spec, "spec", "allowAutoConverge", &b, err));
        JF_TRY(jf_bool(spec, "spec", "allowPostCopy", &b, err));
        JF_TRY(jf_int(spec, "spec", "completionTimeoutPerGiB", 0, INT64_MAX, &n, NULL, err));
        if ((q = cJSON_GetObjectItemCaseSensitive(spec, "bandwidthPerMigration")))
                JF_TRY(quantity_bytes(q, "spec.bandwidthPerMigration", &bytes, err));
        return 0;
}

typedef int (*admit_fn)(const review *r, kv_error *err);

static const struct {
        const char *group, *kind;
        admit_fn validate;
} validators[] = {
    {"kubevirt.io", "VirtualMachineInstance", validate_vmi},
    {"kubevirt.io", "VirtualMachine", validate_vm},
    {"kubevirt.io", "VirtualMachineInstanceMigration", validate_vmim},
    {"kubevirt.io", "VirtualMachineInstanceReplicaSet", validate_vmirs},
    {"pool.kubevirt.io", "VirtualMachinePool", validate_pool},
    {"snapshot.kubevirt.io", "VirtualMachineSnapshot", validate_snapshot},
    {"snapshot.kubevirt.io", "VirtualMachineRestore", validate_restore},
    {"migrations.kubevirt.io", "MigrationPolicy", validate_policy},
};

/* ---- the answer ---- */

static cJSON *response_new(const review *r, bool allowed, cJSON **out_review)
{
        cJSON *root = cJSON_CreateObject(), *resp = cJSON_AddObjectToObject(root, "response");
        cJSON_AddStringToObject(root, "apiVersion", "admission.k8s.io/v1");
        cJSON_AddStringToObject(root, "kind", "AdmissionReview");
        cJSON_AddStringToObject(resp, "uid", r->uid);
        cJSON_AddBoolToObject(resp, "allowed", allowed);
        *out_review = root;
        return resp;
}

/* KubeVirt's ToAdmissionResponse: one cause per error, its message also the status message. */
static void add_denial(cJSON *resp, const char *msg)
{
        cJSON *status = cJSON_AddObjectToObject(resp, "status");
        cJSON_AddStringToObject(status, "message", msg);
        cJSON_AddStringToObject(status, "reason", "Invalid");
        cJSON_AddNumberToObject(status, "code", 422);
        cJSON *cause = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(cJSON_AddObjectToObject(status, "details"), "causes"),
                             cause);
        cJSON_AddStringToObject(cause, "type", "FieldValueInvalid");
        cJSON_AddStringToObject(cause, "message", msg);
        size_t n = strcspn(msg, " ");
        if (n > 1 && msg[n - 1] == ':') {
                char field[KV_ERR_MSG_MAX];
                snprintf(field, sizeof(field), "%.*s", (int)(n - 1), msg);
                cJSON_AddStringToObject(cause, "field", field);
        }
}

static int answer(cJSON *root, char **response_json, kv_error *err)
{
        *response_json = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return *response_json ? 0 : kv_error_set(err, ENOMEM, "out of memory");
}

int admission_answer(const char *uid, bool allowed, int code, const char *message, char **response_json,
                     kv_error *err)
{
        review r = {.uid = uid};
        cJSON *root, *resp = response_new(&r, allowed, &root);
        if (!allowed) {
                cJSON *status = cJSON_AddObjectToObject(resp, "status");
                cJSON_AddStringToObject(status, "message", message ?: "");
                cJSON_AddNumberToObject(status, "code", code);
        }
        return answer(root, response_json, err);
}

int admission_validate(const char *review_json, size_t len, const admission_lookup *lookup,
                       char **response_json, kv_error *err)
{
        _cleanup_(review_done) review r;
        JF_TRY(review_parse(review_json, len, &r, err));
        r.lookup = lookup;
        kv_error why = {0};
        int ret = 0;
        if (strcmp(r.operation, "DELETE") && strcmp(r.operation, "CONNECT"))
                for (size_t i = 0; i < ARRAY_SIZE(validators); i++)
                        if (!strcmp(r.group, validators[i].group) && !strcmp(r.kind, validators[i].kind)) {
                                ret = r.object ? validators[i].validate(&r, &why)
                                               : jf_error(&why, "request.object", "is required");
                                break;
                        }
        if (ret == -ENOMEM)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *root, *resp = response_new(&r, ret == 0, &root);
        if (ret < 0)
                add_denial(resp, why.msg);
        return answer(root, response_json, err);
}

/* ---- mutation: KubeVirt's defaults as JSONPatch operations ---- */

static void patch_add(cJSON *ops, const char *path, cJSON *value)
{
        cJSON_AddItemToArray(ops, json_patch_op("add", path, value));
}

static void default_annotations(const cJSON *obj, cJSON *ops)
{
        static const char *const keys[] = {"kubevirt.io/latest-observed-api-version",
                                           "kubevirt.io/storage-observed-api-version"};
        const cJSON *ann = obj_at(obj_at(obj, "metadata"), "annotations");
        if (!ann) {
                cJSON *all = cJSON_CreateObject();
                for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                        cJSON_AddStringToObject(all, keys[i], OBSERVED_API_VERSION);
                patch_add(ops, "/metadata/annotations", all);
                return;
        }
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                if (cJSON_GetObjectItemCaseSensitive(ann, keys[i]))
                        continue;
                char path[128] = "/metadata/annotations/kubevirt.io~1";
                strcat(path, strchr(keys[i], '/') + 1);
                patch_add(ops, path, cJSON_CreateString(OBSERVED_API_VERSION));
        }
}

static bool has_disk_named(const cJSON *disks, const char *name)
{
        const cJSON *d;
        cJSON_ArrayForEach(d, disks) if (!strcmp(str_at(d, "name"), name)) return true;
        return false;
}

/* The disks with KubeVirt's defaults filled in (the buses only when `buses`); NULL when nothing changes. */
static cJSON *defaulted_disks(const cJSON *spec, const cJSON *disks, bool buses)
{
        _cleanup_json_ cJSON *out = cJSON_IsArray(disks) ? cJSON_Duplicate(disks, true) : cJSON_CreateArray();
        bool changed = false;
        const cJSON *vol;
        cJSON_ArrayForEach(vol, cJSON_GetObjectItemCaseSensitive(spec, "volumes"))
        {
                const char *name = str_at(vol, "name");
                if (!name[0] || has_disk_named(out, name))
                        continue;
                cJSON *d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "name", name);
                cJSON_AddItemToArray(out, d);
        }
        cJSON *d;
        cJSON_ArrayForEach(d, out)
        {
                if (!cJSON_IsObject(d))
                        continue;
                cJSON *target = cJSON_GetObjectItemCaseSensitive(d, "disk");
                cJSON *cdrom = cJSON_GetObjectItemCaseSensitive(d, "cdrom");
                if (!target && !cdrom && !cJSON_GetObjectItemCaseSensitive(d, "lun")) {
                        target = cJSON_AddObjectToObject(d, "disk");
                        changed = true;
                }
                cJSON *t = cJSON_IsObject(target) ? target : cJSON_IsObject(cdrom) ? cdrom : NULL;
                if (t && buses && !cJSON_GetObjectItemCaseSensitive(t, "bus")) {
                        cJSON_AddStringToObject(t, "bus", t == target ? "virtio" : "sata");
                        changed = true;
                }
        }
        changed |= cJSON_GetArraySize(out) != cJSON_GetArraySize(disks);
        return changed ? TAKE_PTR(out) : NULL;
}

static void default_machine(const cJSON *domain, const char *base, cJSON *ops)
{
        const cJSON *machine = cJSON_GetObjectItemCaseSensitive(domain, "machine");
        char path[128];
        if (!machine) {
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "type", "q35");
                snprintf(path, sizeof(path), "%s/domain/machine", base);
                patch_add(ops, path, m);
        } else if (cJSON_IsObject(machine) && !cJSON_GetObjectItemCaseSensitive(machine, "type")) {
                snprintf(path, sizeof(path), "%s/domain/machine/type", base);
                patch_add(ops, path, cJSON_CreateString("q35"));
        }
}

/* Defaults of a VMI spec at `base` ("/spec" or "/spec/template/spec"). A VM naming a preference (`preferred`)
 * keeps its template's machine type and buses unset: KubeVirt applies the preference's preferredMachineType
 * and preferred buses first, and the defaults only to what it leaves unset (here the VMI's own mutation, when
 * the controller creates it). */
static void default_vmi_spec(const cJSON *spec, const char *base, bool preferred, cJSON *ops)
{
        const cJSON *domain = obj_at(spec, "domain");
        char path[128];
        if (!domain)
                return; /* the validator names what is missing */
        if (!preferred)
                default_machine(domain, base, ops);
        const cJSON *devices = cJSON_GetObjectItemCaseSensitive(domain, "devices");
        if (devices && !cJSON_IsObject(devices))
                return;
        cJSON *disks = defaulted_disks(spec, cJSON_GetObjectItemCaseSensitive(devices, "disks"), !preferred);
        if (!disks)
                return;
        if (devices) {
                snprintf(path, sizeof(path), "%s/domain/devices/disks", base);
                patch_add(ops, path, disks); /* add replaces an existing member */
        } else {
                cJSON *dev = cJSON_CreateObject();
                cJSON_AddItemToObject(dev, "disks", disks);
                snprintf(path, sizeof(path), "%s/domain/devices", base);
                patch_add(ops, path, dev);
        }
}

/* The patch for the review; -EINVAL (err: the field and why) when a VM's inferFromVolume fails. */
static int mutate_ops(const review *r, cJSON *ops, kv_error *err)
{
        bool create = !strcmp(r->operation, "CREATE"), update = !strcmp(r->operation, "UPDATE");
        if (!r->object || strcmp(r->group, "kubevirt.io"))
                return 0;
        if (!strcmp(r->kind, "VirtualMachineInstance") && create) {
                default_annotations(r->object, ops);
                default_vmi_spec(obj_at(r->object, "spec"), "/spec", false, ops);
        } else if (!strcmp(r->kind, "VirtualMachine") && (create || update)) {
                default_annotations(r->object, ops);
                const cJSON *spec = obj_at(r->object, "spec");
                default_vmi_spec(obj_at(obj_at(spec, "template"), "spec"), "/spec/template/spec",
                                 obj_at(spec, "preference") != NULL, ops);
                return infer_vm_matchers(r->object, r->lookup, ops, err);
        }
        return 0;
}

int admission_mutate(const char *review_json, size_t len, const admission_lookup *lookup,
                     char **response_json, kv_error *err)
{
        _cleanup_(review_done) review r;
        JF_TRY(review_parse(review_json, len, &r, err));
        r.lookup = lookup;
        _cleanup_json_ cJSON *ops = cJSON_CreateArray();
        if (!ops)
                return kv_error_set(err, ENOMEM, "out of memory");
        kv_error why = {0};
        int ret = mutate_ops(&r, ops, &why);
        if (ret == -ENOMEM)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *root, *resp = response_new(&r, ret == 0, &root);
        if (ret < 0)
                add_denial(resp, why.msg);
        else if (cJSON_GetArraySize(ops) > 0) {
                _cleanup_free_ char *patch = cJSON_PrintUnformatted(ops);
                _cleanup_free_ char *b64 = patch ? base64_encode(patch, strlen(patch)) : NULL;
                if (!b64) {
                        cJSON_Delete(root);
                        return kv_error_set(err, ENOMEM, "out of memory");
                }
                cJSON_AddStringToObject(resp, "patchType", "JSONPatch");
                cJSON_AddStringToObject(resp, "patch", b64);
        }
        return answer(root, response_json, err);
}
