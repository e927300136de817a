/* subresources.kubevirt.io/v1 handlers: KubeVirt's paths, bodies, status codes and messages
 * (pkg/virt-api/rest/lifecycle.go, volumes.go), acted out as patches and creates on the API. */
#include "subresources.h"
#include "subres-internal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "jfield.h"
#include "json.h"
#include "log.h"
#include "rename-annotations.h"
#include "macro.h"

static const char *reason_of(unsigned code)
{
        switch (code) {
        case 400:
                return "BadRequest";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "NotFound";
        case 405:
                return "MethodNotAllowed";
        case 409:
                return "Conflict";
        case 503:
                return "ServiceUnavailable";
        default:
                return code >= 500 ? "InternalError" : "";
        }
}

char *subres_status_json(unsigned code, const char *message)
{
        _cleanup_json_ cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "kind", "Status");
        cJSON_AddStringToObject(s, "apiVersion", "v1");
        cJSON_AddObjectToObject(s, "metadata");
        cJSON_AddStringToObject(s, "status", "Failure");
        cJSON_AddStringToObject(s, "message", message);
        cJSON_AddStringToObject(s, "reason", reason_of(code));
        cJSON_AddNumberToObject(s, "code", code);
        return cJSON_PrintUnformatted(s);
}

int subres_fail(subres_reply *r, unsigned code, const char *fmt, ...)
{
        char msg[KV_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        free(r->body);
        r->code = code;
        r->body = subres_status_json(code, msg);
        return -1;
}

/* An API error: its status code where the caller can act on it, 500 otherwise. */
static int fail_api(subres_reply *r, int rc, const kv_error *err)
{
        unsigned code = rc == -KUBE_ENOTFOUND                          ? 404
                        : rc == -KUBE_ECONFLICT || rc == -KUBE_EEXISTS ? 409
                        : rc == -KUBE_EINVALID                         ? 400
                                                                       : 500;
        return subres_fail(r, code, "%s", err->msg);
}

/* KubeVirt's errors.NewConflict wording: Operation cannot be fulfilled on <resource> "<name>": <why>. */
int subres_conflict(subres_reply *r, const target *t, bool vm, const char *why)
{
        return subres_fail(r, 409, "Operation cannot be fulfilled on %s.kubevirt.io \"%s\": %s",
                           vm ? "virtualmachine" : "virtualmachineinstance", t->name, why);
}

static int accepted(subres_reply *r)
{
        r->code = 202;
        return 0;
}

/* The object, or a 404 naming it as the API server would. */
static int get_obj(kube_client *api, const kube_resource *res, const char *group, const target *t,
                   cJSON **out, subres_reply *r)
{
        kv_error err = {0};
        int rc = kube_get(api, res, t->ns, t->name, out, &err);
        if (rc == -KUBE_ENOTFOUND)
                return subres_fail(r, 404, "%s.%s \"%s\" not found", res->plural, group, t->name);
        return rc < 0 ? fail_api(r, rc, &err) : 0;
}

/* The VMI of a VM, NULL (and 0) when there is none. */
static int get_vmi_opt(kube_client *api, const target *t, cJSON **out, subres_reply *r)
{
        kv_error err = {0};
        int rc = kube_get(api, &kube_vmi, t->ns, t->name, out, &err);
        if (rc == -KUBE_ENOTFOUND) {
                *out = NULL;
                return 0;
        }
        return rc < 0 ? fail_api(r, rc, &err) : 0;
}

static int json_patch(kube_client *api, const kube_resource *res, const target *t, bool status,
                      const cJSON *ops, subres_reply *r)
{
        _cleanup_free_ char *path = kube_path(res, t->ns, t->name, status ? "status" : NULL),
                            *body = cJSON_PrintUnformatted(ops);
        kv_error err = {0};
        if (!path || !body)
                return subres_fail(r, 500, "out of memory");
        int rc = kube_request(api, "PATCH", path, "application/json-patch+json", body, NULL, &err);
        if (rc == -KUBE_EINVALID) /* a failed `test`: the object changed under us */
                return subres_fail(r, 409, "%s", err.msg);
        return rc < 0 ? fail_api(r, rc, &err) : 0;
}

static const char *run_strategy(const cJSON *vm)
{
        const char *s = kube_str(vm, "spec.runStrategy");
        if (s)
                return s;
        return cJSON_IsTrue(kube_obj(vm, "spec.running")) ? "Always" : "Halted";
}

static bool vmi_final(const cJSON *vmi)
{
        const char *p = kube_str(vmi, "status.phase") ?: "";
        return !strcmp(p, "Succeeded") || !strcmp(p, "Failed");
}

static bool vmi_running(const cJSON *vmi)
{
        return vmi && !strcmp(kube_str(vmi, "status.phase") ?: "", "Running");
}

static cJSON *request(const char *action, const char *uid)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "action", action);
        if (uid)
                cJSON_AddStringToObject(o, "uid", uid);
        return o;
}

/* KubeVirt's getChangeRequestJson: add the requests to status.stateChangeRequests unless some are pending
 * (a lone Stop replaces them), drop status.startFailure; guarded by a `test` of the resourceVersion. */
static int change_requests(kube_client *api, const cJSON *vm, const target *t, cJSON *reqs, subres_reply *r)
{
        _cleanup_json_ cJSON *owned = reqs, *ops = cJSON_CreateArray();
        const cJSON *pending = kube_obj(vm, "status.stateChangeRequests");
        bool lone_stop = cJSON_GetArraySize(reqs) == 1 &&
                         !strcmp(kube_str(cJSON_GetArrayItem(reqs, 0), "action") ?: "", "Stop");
        if (cJSON_GetArraySize(pending) > 0 && !lone_stop)
                return subres_fail(r, 409, "unable to complete request: stop/start already underway");
        cJSON_AddItemToArray(
            ops, json_patch_op("test", "/metadata/resourceVersion",
                               cJSON_CreateString(kube_str(vm, "metadata.resourceVersion") ?: "")));
        if (!kube_obj(vm, "status"))
                cJSON_AddItemToArray(ops, json_patch_op("add", "/status", cJSON_CreateObject()));
        cJSON_AddItemToArray(ops, json_patch_op("add", "/status/stateChangeRequests", TAKE_PTR(owned)));
        if (kube_obj(vm, "status.startFailure"))
                cJSON_AddItemToArray(ops, json_patch_op("remove", "/status/startFailure", NULL));
        return json_patch(api, &kube_vm, t, true, ops, r);
}

static int set_run_strategy(kube_client *api, const cJSON *vm, const target *t, const char *from,
                            const char *to, subres_reply *r)
{
        _cleanup_json_ cJSON *ops = cJSON_CreateArray();
        if (kube_str(vm, "spec.runStrategy")) {
                cJSON_AddItemToArray(ops,
                                     json_patch_op("test", "/spec/runStrategy", cJSON_CreateString(from)));
                cJSON_AddItemToArray(ops,
                                     json_patch_op("replace", "/spec/runStrategy", cJSON_CreateString(to)));
        } else { /* legacy spec.running */
                cJSON_AddItemToArray(
                    ops, json_patch_op("test", "/metadata/resourceVersion",
                                       cJSON_CreateString(kube_str(vm, "metadata.resourceVersion") ?: "")));
                cJSON_AddItemToArray(
                    ops, json_patch_op("add", "/spec/running", cJSON_CreateBool(!strcmp(to, "Always"))));
        }
        return json_patch(api, &kube_vm, t, false, ops, r);
}

/* gracePeriod / gracePeriodSeconds of an options body: 1 and *v when given, 0 when absent, -1 (400 filled)
 * when not a whole number >= 0. */
static int grace_option(const cJSON *body, const char *field, long *v, subres_reply *r)
{
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(body, field);
        if (!g || cJSON_IsNull(g))
                return 0;
        if (!json_is_whole(g, 0, 1e15))
                return subres_fail(r, 400, "%s: must be a whole number of seconds, at least 0", field);
        *v = (long)g->valuedouble;
        return 1;
}

static int set_vmi_grace(kube_client *api, const target *t, long seconds, subres_reply *r)
{
        _cleanup_json_ cJSON *ops = cJSON_CreateArray();
        cJSON_AddItemToArray(
            ops, json_patch_op("add", "/spec/terminationGracePeriodSeconds", cJSON_CreateNumber(seconds)));
        return json_patch(api, &kube_vmi, t, false, ops, r);
}

static int vm_start(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t->body, "paused")))
                return subres_fail(r, 400,
                                   "paused: starting a VM paused is not supported by kvlite's virt-api");
        if (get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 || get_vmi_opt(api, t, &vmi, r) < 0)
                return -1;
        const char *strategy = run_strategy(vm);
        if (vmi && !vmi_final(vmi))
                return subres_conflict(r, t, true, "VM is already running");
        if (!strcmp(strategy, "Halted")) {
                if (set_run_strategy(api, vm, t, "Halted", "Always", r) < 0)
                        return -1;
        } else if (!strcmp(strategy, "Manual") || !strcmp(strategy, "RerunOnFailure")) {
                cJSON *reqs = cJSON_CreateArray();
                if (vmi) /* the finished VMI goes first */
                        cJSON_AddItemToArray(reqs, request("Stop", kube_str(vmi, "metadata.uid")));
                cJSON_AddItemToArray(reqs, request("Start", NULL));
                if (change_requests(api, vm, t, reqs, r) < 0)
                        return -1;
        } else {
                return subres_fail(
                    r, 409,
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"%s\": %s does "
                    "not support manual start requests",
                    t->name, strategy);
        }
        return accepted(r);
}

static int vm_stop(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL;
        long grace = 0;
        int has_grace = grace_option(t->body, "gracePeriod", &grace, r);
        if (has_grace < 0 || get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 ||
            get_vmi_opt(api, t, &vmi, r) < 0)
                return -1;
        const char *strategy = run_strategy(vm);
        bool live = vmi && !vmi_final(vmi);
        if (has_grace && live && set_vmi_grace(api, t, grace, r) < 0)
                return -1;
        if (!strcmp(strategy, "Halted")) {
                /* Already stopping: only a force stop (a new grace period) has something to do. */
                if (!live || !has_grace)
                        return subres_fail(
                            r, 409,
                            "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"%s\": VM "
                            "is not running: %s",
                            t->name, strategy);
                kv_error err = {0};
                int rc = kube_delete(api, &kube_vmi, t->ns, t->name, kube_str(vmi, "metadata.uid"), NULL,
                                     NULL, &err);
                return rc < 0 ? fail_api(r, rc, &err) : accepted(r);
        }
        if (!strcmp(strategy, "Manual") || !strcmp(strategy, "RerunOnFailure")) {
                if (!live)
                        return subres_conflict(r, t, true, "VM is not running");
                cJSON *reqs = cJSON_CreateArray();
                cJSON_AddItemToArray(reqs, request("Stop", kube_str(vmi, "metadata.uid")));
                return change_requests(api, vm, t, reqs, r) < 0 ? -1 : accepted(r);
        }
        /* Always, Once */
        return set_run_strategy(api, vm, t, strategy, "Halted", r) < 0 ? -1 : accepted(r);
}

static int vm_restart(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL;
        long grace = 0;
        int has_grace = grace_option(t->body, "gracePeriodSeconds", &grace, r);
        if (has_grace < 0)
                return -1;
        if (has_grace && grace != 0)
                return subres_fail(r, 400, "For force restart, only gracePeriod=0 is supported for now");
        if (get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 || get_vmi_opt(api, t, &vmi, r) < 0)
                return -1;
        const char *strategy = run_strategy(vm);
        if (!strcmp(strategy, "Halted") || !strcmp(strategy, "Once"))
                return subres_fail(
                    r, 409,
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"%s\": %s does "
                    "not support manual restart requests",
                    t->name, strategy);
        if (!vmi || vmi_final(vmi))
                return subres_conflict(r, t, true, "VM is not running");
        if (has_grace && set_vmi_grace(api, t, 1, r) < 0) /* force: KubeVirt's shortest grace */
                return -1;
        cJSON *reqs = cJSON_CreateArray();
        cJSON_AddItemToArray(reqs, request("Stop", kube_str(vmi, "metadata.uid")));
        cJSON_AddItemToArray(reqs, request("Start", NULL));
        return change_requests(api, vm, t, reqs, r) < 0 ? -1 : accepted(r);
}

static int vm_migrate(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL, *vmim = cJSON_CreateObject();
        if (get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 || get_vmi_opt(api, t, &vmi, r) < 0)
                return -1;
        if (!vmi_running(vmi))
                return subres_conflict(r, t, true, "VM is not running");
        cJSON_AddStringToObject(vmim, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vmim, "kind", "VirtualMachineInstanceMigration");
        cJSON *md = cJSON_AddObjectToObject(vmim, "metadata");
        cJSON_AddStringToObject(md, "generateName", "kubevirt-migrate-vm-");
        cJSON *spec = cJSON_AddObjectToObject(vmim, "spec");
        cJSON_AddStringToObject(spec, "vmiName", t->name);
        const cJSON *sel = cJSON_GetObjectItemCaseSensitive(t->body, "addedNodeSelector");
        if (cJSON_IsObject(sel))
                cJSON_AddItemToObject(spec, "addedNodeSelector", cJSON_Duplicate(sel, 1));
        kv_error err = {0};
        int rc = kube_create(api, &kube_vmim, t->ns, vmim, NULL, &err);
        return rc < 0 ? fail_api(r, rc, &err) : accepted(r);
}

/* ---- rename (KubeVirt's removed `virtctl rename`, done so that nothing is lost on any failure) ----
 * 1. the old VM is fenced: annotation SUBRES_RENAME_TO names the new VM (no VMI is started for it);
 * 2. the new VM is created with the old one's labels, annotations and spec, and the old name and uid;
 * 3. the controller (controller/vm-rename.c) moves the DataVolumes' and revisions' ownership to the new VM,
 *    points the snapshots at it, and only then deletes the old VM (whose disks it no longer owns).
 * Each step is idempotent: a rename interrupted anywhere is finished by the controller or by asking again. */

static bool snapshot_busy(const cJSON *s)
{
        const char *p = kube_str(s, "status.phase") ?: "";
        return strcmp(p, "Succeeded") && strcmp(p, "Failed");
}

static bool restore_busy(const cJSON *r)
{
        return !cJSON_IsTrue(kube_obj(r, "status.complete"));
}

/* 409 while a snapshot or restore of the VM is under way (their objects name the VM); nothing when the
 * snapshot group is not served. */
static int snapshot_work(kube_client *api, const target *t, subres_reply *r)
{
        static const struct {
                const kube_resource *res;
                const char *ref, *what;
                bool (*busy)(const cJSON *);
        } kinds[] = {{&kube_vmsnapshot, "spec.source.name", "VirtualMachineSnapshot", snapshot_busy},
                     {&kube_vmrestore, "spec.target.name", "VirtualMachineRestore", restore_busy}};
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
                _cleanup_json_ cJSON *list = NULL;
                kv_error err = {0};
                int rc = kube_list(api, kinds[k].res, t->ns, NULL, &list, &err);
                if (rc == -KUBE_ENOTFOUND)
                        continue;
                if (rc < 0)
                        return fail_api(r, rc, &err);
                const cJSON *o;
                cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(list, "items"))
                {
                        if (!strcmp(kube_str(o, kinds[k].ref) ?: "", t->name) && kinds[k].busy(o)) {
                                char why[320];
                                snprintf(why, sizeof(why), "%s %s is in progress", kinds[k].what,
                                         kube_str(o, "metadata.name") ?: "");
                                return subres_conflict(r, t, true, why);
                        }
                }
        }
        return 0;
}

static const char *annotation(const cJSON *obj, const char *key)
{
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.annotations"), key);
        return cJSON_IsString(a) ? a->valuestring : NULL;
}

/* Whether vm is the copy an earlier request for this rename made. */
static bool rename_copy_of(const cJSON *vm, const cJSON *old)
{
        return !strcmp(annotation(vm, RENAMED_FROM_UID_ANNOTATION) ?: "",
                       kube_str(old, "metadata.uid") ?: "-");
}

/* The new VM: the old one's labels, annotations (less the fence) and spec, the old name and uid recorded. */
static cJSON *renamed_vm(const cJSON *old, const char *new_name)
{
        cJSON *vm = cJSON_CreateObject(), *md = cJSON_CreateObject();
        cJSON_AddStringToObject(vm, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vm, "kind", "VirtualMachine");
        cJSON_AddItemToObject(vm, "metadata", md);
        cJSON_AddStringToObject(md, "name", new_name);
        cJSON_AddStringToObject(md, "namespace", kube_str(old, "metadata.namespace") ?: "");
        const cJSON *labels = kube_obj(old, "metadata.labels"), *ann = kube_obj(old, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, 1));
        cJSON *a = ann ? cJSON_Duplicate(ann, 1) : cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(a, RENAME_TO_ANNOTATION);
        cJSON_AddStringToObject(a, RENAMED_FROM_ANNOTATION, kube_str(old, "metadata.name") ?: "");
        cJSON_AddStringToObject(a, RENAMED_FROM_UID_ANNOTATION, kube_str(old, "metadata.uid") ?: "");
        cJSON_AddItemToObject(md, "annotations", a);
        cJSON_AddItemToObject(vm, "spec", cJSON_Duplicate(kube_obj(old, "spec"), 1));
        return vm;
}

/* The fence: SUBRES_RENAME_TO on the old VM, guarded by the resourceVersion the checks saw (a start in
 * between makes it a 409). */
static int fence(kube_client *api, const cJSON *vm, const target *t, const char *to, subres_reply *r)
{
        _cleanup_json_ cJSON *ops = cJSON_CreateArray();
        cJSON_AddItemToArray(
            ops, json_patch_op("test", "/metadata/resourceVersion",
                               cJSON_CreateString(kube_str(vm, "metadata.resourceVersion") ?: "")));
        if (!kube_obj(vm, "metadata.annotations"))
                cJSON_AddItemToArray(ops,
                                     json_patch_op("add", "/metadata/annotations", cJSON_CreateObject()));
        cJSON_AddItemToArray(
            ops, json_patch_op("add", "/metadata/annotations/kvlite.io~1rename-to", cJSON_CreateString(to)));
        return json_patch(api, &kube_vm, t, false, ops, r);
}

static void unfence(kube_client *api, const target *t)
{
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON_AddNullToObject(
            cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations"),
            RENAME_TO_ANNOTATION);
        kv_error err = {0};
        if (kube_merge_patch(api, &kube_vm, t->ns, t->name, patch, false, NULL, &err) < 0)
                log_warning("rename of %s/%s refused; its fence stays: %s", t->ns, t->name, err.msg);
}

/* dryRun: ["All"] in the options: the checks only. */
static bool dry_run(const cJSON *body)
{
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(body, "dryRun"))
        {
                if (cJSON_IsString(d) && !strcmp(d->valuestring, "All"))
                        return true;
        }
        return false;
}

static int vm_rename(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL, *taken = NULL;
        const cJSON *nn = cJSON_GetObjectItemCaseSensitive(t->body, "newName");
        const char *to = cJSON_IsString(nn) ? nn->valuestring : NULL;
        if (!to || !*to)
                return subres_fail(r, 400, "newName: please provide a new name for the VM");
        if (!jf_is_dns_label(to))
                return subres_fail(r, 400,
                                   "newName: \"%.64s\" is not a valid VM name (lowercase letters, digits and "
                                   "'-', at most 63, starting and ending with a letter or digit)",
                                   to);
        if (!strcmp(to, t->name))
                return subres_fail(r, 400,
                                   "newName: the VM's new name must be different from its current name");
        if (get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 || get_vmi_opt(api, t, &vmi, r) < 0)
                return -1;
        if (kube_obj(vm, "metadata.deletionTimestamp"))
                return subres_conflict(r, t, true, "VM is being deleted");
        const char *strategy = run_strategy(vm);
        if (vmi && !vmi_final(vmi))
                return subres_conflict(r, t, true, "VM is running; stop it before renaming it");
        if (!strcmp(strategy, "Always") || !strcmp(strategy, "Once")) {
                char why[96];
                snprintf(why, sizeof(why), "VM is not stopped (runStrategy %s starts it)", strategy);
                return subres_conflict(r, t, true, why);
        }
        const char *fenced = annotation(vm, RENAME_TO_ANNOTATION);
        target nt = {.ns = t->ns, .name = to, .body = t->body};
        kv_error err = {0};
        int rc = kube_get(api, &kube_vm, t->ns, to, &taken, &err);
        if (rc < 0 && rc != -KUBE_ENOTFOUND)
                return fail_api(r, rc, &err);
        if (taken && !rename_copy_of(taken, vm))
                return subres_conflict(r, &nt, true, "a VirtualMachine of that name already exists");
        if (fenced && strcmp(fenced, to)) { /* an earlier rename to another name: not while its copy exists */
                _cleanup_json_ cJSON *other = NULL;
                rc = kube_get(api, &kube_vm, t->ns, fenced, &other, &err);
                if (rc < 0 && rc != -KUBE_ENOTFOUND)
                        return fail_api(r, rc, &err);
                if (other && rename_copy_of(other, vm)) {
                        char why[160];
                        snprintf(why, sizeof(why), "VM is being renamed to %s", fenced);
                        return subres_conflict(r, t, true, why);
                }
        }
        if (snapshot_work(api, t, r) < 0)
                return -1;
        if (dry_run(t->body))
                return accepted(r);
        if ((!fenced || strcmp(fenced, to)) && fence(api, vm, t, to, r) < 0)
                return -1;
        if (!taken) {
                _cleanup_json_ cJSON *nvm = renamed_vm(vm, to);
                rc = kube_create(api, &kube_vm, t->ns, nvm, NULL, &err);
                if (rc == -KUBE_EEXISTS) { /* created meanwhile: ours from a concurrent request, or not */
                        rc = kube_get(api, &kube_vm, t->ns, to, &taken, &err);
                        if (rc == 0 && !rename_copy_of(taken, vm)) {
                                unfence(api, t);
                                return subres_conflict(r, &nt, true,
                                                       "a VirtualMachine of that name already exists");
                        }
                }
                if (rc < 0) {
                        unfence(api, t);
                        return fail_api(r, rc, &err);
                }
        }
        log_info("rename %s/%s -> %s: VM %s created; the controller moves its disks and deletes %s", t->ns,
                 t->name, to, to, t->name);
        return accepted(r);
}

/* The VMI must be Running, else 409 as KubeVirt answers. */
int subres_running_vmi(kube_client *api, const target *t, cJSON **vmi, subres_reply *r)
{
        if (get_obj(api, &kube_vmi, "kubevirt.io", t, vmi, r) < 0)
                return -1;
        if (!vmi_running(*vmi))
                return subres_conflict(r, t, false, "VMI is not running");
        return 0;
}

static bool vmi_paused(const cJSON *vmi)
{
        const cJSON *c;
        cJSON_ArrayForEach(
            c, kube_obj(vmi, "status.conditions")) if (!strcmp(kube_str(c, "type") ?: "",
                                                               "Paused")) return !strcmp(kube_str(c, "status")
                                                                                             ?: "",
                                                                                         "True");
        return false;
}

/* pause/unpause: the wanted state goes on the VMI (SUBRES_PAUSE_ANNOTATION); its launcher's reporter
 * forwards it to the launcher, whose Paused condition comes back on the VMI. */
static int vmi_set_paused(kube_client *api, const target *t, bool pause, subres_reply *r)
{
        _cleanup_json_ cJSON *vmi = NULL, *patch = cJSON_CreateObject();
        if (subres_running_vmi(api, t, &vmi, r) < 0)
                return -1;
        if (pause && vmi_paused(vmi))
                return subres_conflict(r, t, false, "VMI is already paused");
        if (!pause && !vmi_paused(vmi))
                return subres_conflict(r, t, false, "VMI is not paused");
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, SUBRES_PAUSE_ANNOTATION, pause ? "true" : "false");
        kv_error err = {0};
        int rc = kube_merge_patch(api, &kube_vmi, t->ns, t->name, patch, false, NULL, &err);
        return rc < 0 ? fail_api(r, rc, &err) : accepted(r);
}

static int vmi_pause(kube_client *api, const target *t, subres_reply *r)
{
        return vmi_set_paused(api, t, true, r);
}

static int vmi_unpause(kube_client *api, const target *t, subres_reply *r)
{
        return vmi_set_paused(api, t, false, r);
}

bool subres_vmi_condition(const cJSON *vmi, const char *type)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(vmi, "status.conditions"))
        {
                if (!strcmp(kube_str(c, "type") ?: "", type))
                        return !strcmp(kube_str(c, "status") ?: "", "True");
        }
        return false;
}

/* softreboot: KubeVirt's checks (running, not paused, an agent or ACPI to ask the guest with); a new request
 * id goes on the VMI (SUBRES_SOFTREBOOT_ANNOTATION) and its launcher's reporter forwards it once: the
 * launcher presses the ACPI power button and turns the guest's power-off into a reset. */
static int vmi_softreboot(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vmi = NULL, *patch = cJSON_CreateObject();
        if (subres_running_vmi(api, t, &vmi, r) < 0)
                return -1;
        if (vmi_paused(vmi))
                return subres_conflict(r, t, false, "VMI is paused");
        const cJSON *acpi = kube_obj(vmi, "spec.domain.features.acpi.enabled");
        if (cJSON_IsFalse(acpi) && !subres_vmi_condition(vmi, "AgentConnected"))
                return subres_conflict(r, t, false,
                                       "VMI neither have the agent connected nor the ACPI feature enabled");
        char id[64];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(id, sizeof(id), "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, SUBRES_SOFTREBOOT_ANNOTATION, id);
        kv_error err = {0};
        int rc = kube_merge_patch(api, &kube_vmi, t->ns, t->name, patch, false, NULL, &err);
        return rc < 0 ? fail_api(r, rc, &err) : accepted(r);
}

/* Index of the entry named name in an array of {name: ...}, or -1. */
static int index_named(const cJSON *arr, const char *name)
{
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
                if (!strcmp(kube_str(e, "name") ?: "", name))
                        return i;
                i++;
        }
        return -1;
}

/* The volume and disk an AddVolumeOptions body asks for, or -1 with a 400. */
static int hotplug_volume(const cJSON *body, cJSON **volume, cJSON **disk, subres_reply *r)
{
        const char *name = kube_str(body, "name");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(body, "volumeSource");
        if (!name || !*name)
                return subres_fail(r, 400, "AddVolumeOptions requires name to be set");
        if (!cJSON_IsObject(src))
                return subres_fail(r, 400, "AddVolumeOptions requires volumeSource to be set");
        const cJSON *pvc = cJSON_GetObjectItemCaseSensitive(src, "persistentVolumeClaim"),
                    *dv = cJSON_GetObjectItemCaseSensitive(src, "dataVolume");
        if (!!pvc == !!dv)
                return subres_fail(
                    r, 400,
                    "AddVolumeOptions requires exactly one volumeSource (persistentVolumeClaim "
                    "or dataVolume)");
        *volume = cJSON_CreateObject();
        cJSON_AddStringToObject(*volume, "name", name);
        cJSON *s = cJSON_Duplicate(pvc ? pvc : dv, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(s, "hotpluggable");
        cJSON_AddBoolToObject(s, "hotpluggable", true);
        cJSON_AddItemToObject(*volume, pvc ? "persistentVolumeClaim" : "dataVolume", s);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(body, "disk");
        *disk = cJSON_IsObject(d) ? cJSON_Duplicate(d, 1) : cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(*disk, "name");
        cJSON_AddStringToObject(*disk, "name", name);
        if (!cJSON_GetObjectItemCaseSensitive(*disk, "disk") &&
            !cJSON_GetObjectItemCaseSensitive(*disk, "lun"))
                cJSON_AddStringToObject(cJSON_AddObjectToObject(*disk, "disk"), "bus", "scsi");
        return 0;
}

/* Appends item to the array at spec/rel, creating the array when it is missing. */
static void add_to_list(cJSON *ops, const char *spec, const char *rel, const cJSON *list, const cJSON *item)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/%s%s", spec, rel, list ? "/-" : "");
        cJSON *value = cJSON_Duplicate(item, 1);
        if (!list) {
                cJSON *arr = cJSON_CreateArray();
                cJSON_AddItemToArray(arr, value);
                value = arr;
        }
        cJSON_AddItemToArray(ops, json_patch_op("add", path, value));
}

/* JSON patch ops adding (volume != NULL) or removing `name` under `spec` (a VMI spec "/spec" or a VM
 * template "/spec/template/spec") of obj, guarded by its resourceVersion. -1 with 404/409 filled. */
static int volume_ops(const cJSON *obj, const char *spec, const char *name, const cJSON *volume,
                      const cJSON *disk, cJSON *ops, subres_reply *r)
{
        char path[128];
        const char *rel = !strcmp(spec, "/spec") ? "spec" : "spec.template.spec";
        char vols_p[64], disks_p[64];
        snprintf(vols_p, sizeof(vols_p), "%s.volumes", rel);
        snprintf(disks_p, sizeof(disks_p), "%s.domain.devices.disks", rel);
        const cJSON *vols = kube_obj(obj, vols_p), *disks = kube_obj(obj, disks_p);
        int vi = index_named(vols, name), di = index_named(disks, name);
        cJSON_AddItemToArray(
            ops, json_patch_op("test", "/metadata/resourceVersion",
                               cJSON_CreateString(kube_str(obj, "metadata.resourceVersion") ?: "")));
        if (volume) {
                if (vi >= 0 || di >= 0)
                        return subres_fail(r, 409,
                                           "Unable to add volume [%s] because volume with that name already "
                                           "exists",
                                           name);
                add_to_list(ops, spec, "volumes", vols, volume);
                add_to_list(ops, spec, "domain/devices/disks", disks, disk);
                return 0;
        }
        if (vi < 0)
                return subres_fail(r, 404, "Unable to remove volume [%s] because it does not exist", name);
        const cJSON *vol = cJSON_GetArrayItem(vols, vi);
        if (!cJSON_IsTrue(kube_obj(vol, "persistentVolumeClaim.hotpluggable")) &&
            !cJSON_IsTrue(kube_obj(vol, "dataVolume.hotpluggable")))
                return subres_fail(r, 400, "Unable to remove volume [%s] because it is not hotpluggable",
                                   name);
        snprintf(path, sizeof(path), "%s/volumes/%d", spec, vi);
        cJSON_AddItemToArray(ops, json_patch_op("remove", path, NULL));
        if (di >= 0) {
                snprintf(path, sizeof(path), "%s/domain/devices/disks/%d", spec, di);
                cJSON_AddItemToArray(ops, json_patch_op("remove", path, NULL));
        }
        return 0;
}

#define VOLUME_PATCH_TRIES 5

/* Sends ops, computed by volume_ops from an object read earlier; while its resourceVersion moved under
 * the patch (the controller and the launcher's reports write these objects' status all the time), reads it
 * again and recomputes them, so a request is refused only for what it asks (a volume that exists, or not). */
static int volume_patch(kube_client *api, const kube_resource *res, const target *t, const char *spec,
                        const char *name, const cJSON *volume, const cJSON *disk, const cJSON *ops,
                        subres_reply *r)
{
        _cleanup_json_ cJSON *again = NULL;
        for (int i = 1;; i++) {
                int rc = json_patch(api, res, t, false, again ? again : ops, r);
                if (rc == 0 || r->code != 409 || i >= VOLUME_PATCH_TRIES)
                        return rc;
                free(r->body);
                *r = (subres_reply){0};
                _cleanup_json_ cJSON *obj = NULL;
                cJSON_Delete(again);
                again = cJSON_CreateArray();
                if (get_obj(api, res, "kubevirt.io", t, &obj, r) < 0 ||
                    (res == &kube_vmi && !vmi_running(obj) &&
                     subres_conflict(r, t, false, "VMI is not running")) ||
                    volume_ops(obj, spec, name, volume, disk, again, r) < 0)
                        return -1;
        }
}

/* addvolume/removevolume: the running VMI's spec (the reporter forwards the change to the launcher as a
 * hot-plug), and for the VM endpoint also the VM's template so the volume stays across restarts. */
static int change_volume(kube_client *api, const target *t, bool vm_endpoint, bool add, subres_reply *r)
{
        _cleanup_json_ cJSON *volume = NULL, *disk = NULL, *vm = NULL, *vmi = NULL,
                             *vm_ops = cJSON_CreateArray(), *vmi_ops = cJSON_CreateArray();
        const char *name = kube_str(t->body, "name");
        if (add && hotplug_volume(t->body, &volume, &disk, r) < 0)
                return -1;
        if (!add && (!name || !*name))
                return subres_fail(r, 400, "RemoveVolumeOptions requires name to be set");
        if (vm_endpoint) {
                if (get_obj(api, &kube_vm, "kubevirt.io", t, &vm, r) < 0 ||
                    get_vmi_opt(api, t, &vmi, r) < 0 ||
                    volume_ops(vm, "/spec/template/spec", name, volume, disk, vm_ops, r) < 0)
                        return -1;
        } else if (get_obj(api, &kube_vmi, "kubevirt.io", t, &vmi, r) < 0) {
                return -1;
        }
        if (!vm_endpoint && !vmi_running(vmi))
                return subres_conflict(r, t, false, "VMI is not running");
        if (vmi && vmi_running(vmi) && volume_ops(vmi, "/spec", name, volume, disk, vmi_ops, r) < 0)
                return -1;
        if (vm && volume_patch(api, &kube_vm, t, "/spec/template/spec", name, volume, disk, vm_ops, r) < 0)
                return -1;
        if (vmi && vmi_running(vmi) &&
            volume_patch(api, &kube_vmi, t, "/spec", name, volume, disk, vmi_ops, r) < 0)
                return -1;
        return accepted(r);
}

static int vm_addvolume(kube_client *api, const target *t, subres_reply *r)
{
        return change_volume(api, t, true, true, r);
}
static int vm_removevolume(kube_client *api, const target *t, subres_reply *r)
{
        return change_volume(api, t, true, false, r);
}
static int vmi_addvolume(kube_client *api, const target *t, subres_reply *r)
{
        return change_volume(api, t, false, true, r);
}
static int vmi_removevolume(kube_client *api, const target *t, subres_reply *r)
{
        return change_volume(api, t, false, false, r);
}

typedef struct route {
        bool vm; /* virtualmachines, else virtualmachineinstances */
        const char *verb, *method;
        int (*fn)(kube_client *api, const target *t, subres_reply *r);
} route;

static const route routes[] = {
    {true, "start", "PUT", vm_start},
    {true, "stop", "PUT", vm_stop},
    {true, "restart", "PUT", vm_restart},
    {true, "migrate", "PUT", vm_migrate},
    {true, "addvolume", "PUT", vm_addvolume},
    {true, "removevolume", "PUT", vm_removevolume},
    {true, "rename", "PUT", vm_rename},
    {false, "pause", "PUT", vmi_pause},
    {false, "unpause", "PUT", vmi_unpause},
    {false, "addvolume", "PUT", vmi_addvolume},
    {false, "removevolume", "PUT", vmi_removevolume},
    {false, "guestosinfo", "GET", subres_guestosinfo},
    {false, "userlist", "GET", subres_userlist},
    {false, "filesystemlist", "GET", subres_filesystemlist},
    {false, "softreboot", "PUT", vmi_softreboot},
};

/* The websocket subresources (server.c: console.c and portforward.c serve them), for discovery: verb get. */
static const route websockets[] = {
    {false, "console", "GET", NULL},
    {false, "vnc", "GET", NULL},
    {false, "portforward", "GET", NULL},
    {true, "portforward", "GET", NULL},
};

static void resource_add(cJSON *res, const route *rt)
{
        cJSON *e = cJSON_CreateObject();
        char name[96];
        snprintf(name, sizeof(name), "%s/%s", rt->vm ? "virtualmachines" : "virtualmachineinstances",
                 rt->verb);
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "singularName", "");
        cJSON_AddBoolToObject(e, "namespaced", true);
        cJSON_AddStringToObject(e, "kind", rt->vm ? "VirtualMachine" : "VirtualMachineInstance");
        cJSON *verbs = cJSON_AddArrayToObject(e, "verbs");
        cJSON_AddItemToArray(verbs, cJSON_CreateString(!strcmp(rt->method, "GET") ? "get" : "update"));
        cJSON_AddItemToArray(res, e);
}

static char *resource_list(void)
{
        _cleanup_json_ cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "kind", "APIResourceList");
        cJSON_AddStringToObject(l, "apiVersion", "v1");
        cJSON_AddStringToObject(l, "groupVersion", SUBRES_GROUP "/v1");
        cJSON *res = cJSON_AddArrayToObject(l, "resources");
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
                resource_add(res, &routes[i]);
        for (size_t i = 0; i < ARRAY_SIZE(websockets); i++)
                resource_add(res, &websockets[i]);
        return cJSON_PrintUnformatted(l);
}

static char *api_group(void)
{
        _cleanup_json_ cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "kind", "APIGroup");
        cJSON_AddStringToObject(g, "apiVersion", "v1");
        cJSON_AddStringToObject(g, "name", SUBRES_GROUP);
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "groupVersion", SUBRES_GROUP "/v1");
        cJSON_AddStringToObject(v, "version", "v1");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(g, "versions"), v);
        cJSON_AddItemToObject(g, "preferredVersion", cJSON_Duplicate(v, 1));
        return cJSON_PrintUnformatted(g);
}

static char *version_info(void)
{
        _cleanup_json_ cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "gitVersion", "v" KVLITE_VERSION);
        cJSON_AddStringToObject(v, "gitCommit", "");
        cJSON_AddStringToObject(v, "gitTreeState", "");
        cJSON_AddStringToObject(v, "buildDate", "");
        cJSON_AddStringToObject(v, "goVersion", "");
        cJSON_AddStringToObject(v, "compiler", "gcc");
        cJSON_AddStringToObject(v, "platform", "linux/amd64");
        return cJSON_PrintUnformatted(v);
}

/* Splits "namespaces/NS/PLURAL/NAME/VERB" (VERB may hold one more '/'); 0 or -1. */
static int split_path(char *p, char **ns, char **plural, char **name, char **verb)
{
        char *save = NULL, *seg = strtok_r(p, "/", &save);
        if (!seg || strcmp(seg, "namespaces"))
                return -1;
        *ns = strtok_r(NULL, "/", &save);
        *plural = strtok_r(NULL, "/", &save);
        *name = strtok_r(NULL, "/", &save);
        *verb = strtok_r(NULL, "", &save);
        return *ns && *plural && *name && *verb ? 0 : -1;
}

static void dispatch(kube_client *api, const char *method, const char *rest, const char *body, size_t len,
                     subres_reply *r)
{
        _cleanup_free_ char *p = strdup(rest);
        char *ns, *plural, *name, *verb;
        if (!p || split_path(p, &ns, &plural, &name, &verb) < 0) {
                subres_fail(r, 404, "the server could not find the requested resource");
                return;
        }
        bool vm = !strcmp(plural, "virtualmachines");
        if (!vm && strcmp(plural, "virtualmachineinstances")) {
                subres_fail(r, 404, "the server could not find the requested resource");
                return;
        }
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                const route *rt = &routes[i];
                if (rt->vm != vm || strcmp(rt->verb, verb))
                        continue;
                if (strcmp(rt->method, method)) {
                        subres_fail(r, 405, "%s %s/%s: method not allowed (use %s)", method, plural, verb,
                                    rt->method);
                        return;
                }
                _cleanup_json_ cJSON *opts = NULL;
                if (body && len) {
                        opts = cJSON_ParseWithLength(body, len);
                        if (!cJSON_IsObject(opts)) {
                                subres_fail(r, 400, "Can not unmarshal Request body to struct");
                                return;
                        }
                } else {
                        opts = cJSON_CreateObject();
                }
                target t = {.ns = ns, .name = name, .body = opts};
                if (rt->fn(api, &t, r) == 0)
                        log_info("%s %s/%s %s: %u", verb, ns, name, plural, r->code);
                else
                        log_info("%s %s/%s %s: %u %s", verb, ns, name, plural, r->code, r->body ?: "");
                return;
        }
        subres_fail(r, 404, "the server could not find the requested resource (%s/%s)", plural, verb);
}

void subres_handle(kube_client *api, const char *method, const char *path, const char *body, size_t len,
                   subres_reply *out)
{
        *out = (subres_reply){0};
        bool get = !strcmp(method, "GET");
        if (!strcmp(path, "/apis/" SUBRES_GROUP) || !strcmp(path, "/apis/" SUBRES_GROUP "/")) {
                out->code = get ? 200 : 405;
                out->body = get ? api_group() : subres_status_json(405, "method not allowed");
                return;
        }
        if (!strcmp(path, SUBRES_PREFIX) || !strcmp(path, SUBRES_PREFIX "/")) {
                out->code = get ? 200 : 405;
                out->body = get ? resource_list() : subres_status_json(405, "method not allowed");
                return;
        }
        if (!strcmp(path, SUBRES_PREFIX "/version")) {
                out->code = 200;
                out->body = version_info();
                return;
        }
        if (!strcmp(path, SUBRES_PREFIX "/healthz")) {
                out->code = 200;
                out->body = strdup("{\"apiserver\":\"ok\",\"restcontroller\":\"ok\"}");
                return;
        }
        if (!strncmp(path, SUBRES_PREFIX "/", strlen(SUBRES_PREFIX "/"))) {
                dispatch(api, method, path + strlen(SUBRES_PREFIX "/"), body, len, out);
                return;
        }
        subres_fail(out, 404, "the server could not find the requested resource");
}

void subres_reply_done(subres_reply *r)
{
        free(r->body);
        r->body = NULL;
}
