/* VM reconciler: keeps a VMI (same name, owned by the VM) per runStrategy, backs off restarting one that
 * fails to start (vmbackoff.h), refuses a template that can never run, and writes VM status. */
#include "api.h"
#include "controller.h"
#include "datavolume.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "podrender.h"
#include "vmbackoff.h"
#include "vminstancetype.h"
#include "vmcoldmigrate.h"
#include "vmrename.h"
#include "vmistatus.h"
#include "vmprintable.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* spec.runStrategy, or the legacy spec.running mapped as KubeVirt does. */
static const char *run_strategy(const cJSON *vm)
{
        const char *s = kube_str(vm, "spec.runStrategy");
        if (s)
                return s;
        return cJSON_IsTrue(kube_obj(vm, "spec.running")) ? "Always" : "Halted";
}

static bool owned_by(const cJSON *obj, const char *uid)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences"))
        {
                const char *ouid = kube_str(o, "uid");
                if (ouid && uid && !strcmp(ouid, uid))
                        return true;
        }
        return false;
}

/* The VMI the VM's template gives; hash (vm_template_hash_str of the VM as written, before instancetype
 * expansion) is recorded on it for RestartRequired, or NULL. */
static cJSON *vmi_from_template(const cJSON *vm, const char *hash)
{
        const cJSON *tmpl = kube_obj(vm, "spec.template");
        cJSON *vmi = cJSON_CreateObject(), *md = cJSON_CreateObject();
        cJSON_AddStringToObject(vmi, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vmi, "kind", "VirtualMachineInstance");
        cJSON_AddItemToObject(vmi, "metadata", md);
        cJSON_AddStringToObject(md, "name", kube_str(vm, "metadata.name"));
        cJSON_AddStringToObject(md, "namespace", kube_str(vm, "metadata.namespace"));
        const cJSON *labels = kube_obj(tmpl, "metadata.labels"),
                    *ann = kube_obj(tmpl, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, 1));
        if (ann || hash) {
                cJSON *a = ann ? cJSON_Duplicate(ann, 1) : cJSON_CreateObject();
                if (hash) {
                        cJSON_DeleteItemFromObjectCaseSensitive(a, VM_ANN_TEMPLATE_HASH);
                        cJSON_AddStringToObject(a, VM_ANN_TEMPLATE_HASH, hash);
                }
                cJSON_AddItemToObject(md, "annotations", a);
        }
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(vm, kube_vm.api_version, kube_vm.kind));
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
        cJSON_AddItemToObject(vmi, "spec", spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateObject());
        return vmi;
}

/* Whether a VMI should exist now by runStrategy alone; *stop says an existing one must be deleted.
 * recorded: status.runStrategy, the strategy the controller last acted on (KubeVirt's field). */
static bool want_running(const char *strategy, const char *recorded, const cJSON *vmi, bool *stop)
{
        const char *phase = vmi ? vmi_phase(vmi) : "";
        *stop = false;
        if (!strcmp(strategy, "Halted")) {
                *stop = vmi != NULL;
                return false;
        }
        if (!strcmp(strategy, "Always")) {
                *stop = vmi_phase_is_final(phase); /* delete the finished VMI; a fresh one follows */
                return true;
        }
        if (!strcmp(strategy, "RerunOnFailure")) {
                /* A failed VMI is deleted and rerun (a Start request, see rerun_request); with no VMI at all
                 * it starts only when the VM comes to this strategy, so a stopped VM stays stopped. */
                *stop = !strcmp(phase, "Failed");
                return vmi ? !vmi_phase_is_final(phase) || *stop : !recorded || strcmp(recorded, strategy);
        }
        if (!strcmp(strategy, "Once"))
                return true; /* created once; a finished VMI stays and is not rerun */
        return false;        /* Manual: only a user (virtctl start/stop) changes it */
}

/* status.stateChangeRequests (virt-api's start/stop/restart): [{action: Start|Stop, uid?}], oldest first.
 * The first request overrides the runStrategy until it is fulfilled: a Stop by the VMI it names being
 * gone (or another VMI in its place), a Start by a live VMI. */
enum vm_request { REQ_NONE, REQ_START, REQ_STOP };

static enum vm_request request_action(const cJSON *req)
{
        const char *a = kube_str(req, "action") ?: "";
        return !strcmp(a, "Start") ? REQ_START : !strcmp(a, "Stop") ? REQ_STOP : REQ_NONE;
}

static bool request_fulfilled(const cJSON *req, const cJSON *vmi)
{
        const char *uid = kube_str(req, "uid");
        switch (request_action(req)) {
        case REQ_STOP:
                return !vmi || (uid && strcmp(uid, kube_str(vmi, "metadata.uid") ?: ""));
        case REQ_START:
                return vmi && !kube_obj(vmi, "metadata.deletionTimestamp") &&
                       !vmi_phase_is_final(vmi_phase(vmi));
        case REQ_NONE:
                break;
        }
        return true; /* an action this controller does not know: dropped, as KubeVirt ignores it */
}

/* The requests still to act on (a copy), NULL when none. */
static cJSON *pending_requests(const cJSON *reqs, const cJSON *vmi)
{
        cJSON *out = NULL;
        const cJSON *r;
        cJSON_ArrayForEach(r, reqs)
        {
                if (!out && request_fulfilled(r, vmi))
                        continue;
                if (!out)
                        out = cJSON_CreateArray();
                cJSON_AddItemToArray(out, cJSON_Duplicate(r, 1));
        }
        return out;
}

/* Whether a VMI should exist now (the first pending request, else the runStrategy). */
static bool want_vmi(const char *strategy, const char *recorded, const cJSON *reqs, const cJSON *vmi,
                     bool *stop)
{
        switch (request_action(cJSON_GetArrayItem(reqs, 0))) {
        case REQ_STOP:
                *stop = vmi != NULL;
                return false;
        case REQ_START:
                *stop = vmi && vmi_phase_is_final(vmi_phase(vmi));
                return true;
        case REQ_NONE:
                break;
        }
        return want_running(strategy, recorded, vmi, stop);
}

enum vm_action { VM_NOTHING, VM_DELETE_VMI, VM_CREATE_VMI, VM_BACK_OFF };

/* One reconcile's view: inputs from the caches, outputs decided against the freshest VM status (the status
 * holds the failure record the decision depends on, and is written before the action). */
typedef struct vm_sync {
        const cJSON *vmi;         /* the VM's own VMI, or NULL */
        const char *strategy;     /* effective runStrategy */
        const char *template_err; /* why the template can never run, or NULL */
        const char *recorded;     /* status.runStrategy as read */
        cJSON *requests;          /* pending status.stateChangeRequests, or NULL (owned) */
        enum dv_wait dv_wait;     /* the template's DataVolumes are not ready yet */
        char *snapshot_busy;      /* KubeVirt's status.snapshotInProgress: the VM does not start (owned) */
        char *restore_busy;       /* status.restoreInProgress, the same */
        char dv_msg[600];
        bool create_pending; /* a VMI we created has not reached the cache yet */
        time_t now;
        uint64_t now_ms; /* realtime */
        char now_s[40];
        enum vm_action action;
        bool counted;     /* this reconcile recorded a failed start */
        uint64_t wait_ms; /* VM_BACK_OFF: until the next start; otherwise when to look again, 0 = never */
        char template_hash[VM_TEMPLATE_HASH_LEN]; /* of the VM as written (vmprintable.h) */
} vm_sync;

static uint64_t realtime_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Jitter for the backoff from the failed VMI's uid: VMs failing together spread out, and recomputing the
 * record after a conflict gives the same time. */
static unsigned uid_jitter(const cJSON *vmi)
{
        unsigned h = 2166136261u;
        for (const char *p = kube_str(vmi, "metadata.uid") ?: ""; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        return h;
}

/* The same check the VMI reconciler makes before rendering the Pod (the launcher's VMI model), run on the
 * VMI the template would give: a template that fails it can never run, whatever the retry. */
static char *template_error(const cJSON *vm, const pod_render_opts *opts)
{
        _cleanup_json_ cJSON *vmi = vmi_from_template(vm, NULL), *pod = NULL;
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(vmi, "metadata"), "uid", "template");
        kv_error err = {0};
        if (pod_render(vmi, opts, &pod, &err) == 0)
                return NULL;
        return strdup(err.msg[0] ? err.msg : "invalid template");
}

static void decide(const cJSON *vm, const cJSON *start_failure, vm_sync *s)
{
        bool stop;
        bool run = want_vmi(s->strategy, s->recorded, s->requests, s->vmi, &stop);
        s->action = VM_NOTHING;
        s->wait_ms = 0;
        if (kube_obj(vm, "metadata.deletionTimestamp") || vm_rename_holds(vm) || vm_cold_migrate_holds(vm))
                return;
        if (s->vmi) {
                if (stop && !kube_obj(s->vmi, "metadata.deletionTimestamp"))
                        s->action = VM_DELETE_VMI;
                else if (start_failure) /* come back to clear the record once it has run long enough */
                        s->wait_ms = vm_stable_run_left_ms(s->vmi, s->now_ms);
                return;
        }
        if (!run || s->create_pending || s->template_err || s->dv_wait || s->snapshot_busy || s->restore_busy)
                return;
        s->wait_ms = vm_start_backoff_left_ms(start_failure, s->now_ms);
        s->action = s->wait_ms ? VM_BACK_OFF : VM_CREATE_VMI;
}

static const char *printable_status(const cJSON *vm, const vm_sync *s, bool crash_loop)
{
        vm_print_in in = {
            .start_expected = s->action == VM_CREATE_VMI || s->create_pending,
            .stop_expected = s->action == VM_DELETE_VMI && !vmi_phase_is_final(vmi_phase(s->vmi)),
            .crash_loop = crash_loop,
            .dv_wait = s->dv_wait ? dv_wait_printable(s->dv_wait) : NULL,
        };
        return vm_printable_status(vm, s->vmi, &in);
}

static const cJSON *find_condition(const cJSON *conds, const char *type)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, conds) if (!strcmp(kube_str(c, "type") ?: "", type)) return c;
        return NULL;
}

/* A condition keeping the lastTransitionTime of old when its status is the same. */
static cJSON *condition(const char *type, bool value, const char *reason, const char *message,
                        const cJSON *old, const char *now)
{
        cJSON *c = cJSON_CreateObject();
        const char *sv = value ? "True" : "False", *ltt = kube_str(old, "lastTransitionTime");
        cJSON_AddStringToObject(c, "type", type);
        cJSON_AddStringToObject(c, "status", sv);
        cJSON_AddNullToObject(c, "lastProbeTime");
        cJSON_AddStringToObject(c, "lastTransitionTime",
                                ltt && !strcmp(kube_str(old, "status") ?: "", sv) ? ltt : now);
        if (reason)
                cJSON_AddStringToObject(c, "reason", reason);
        if (message)
                cJSON_AddStringToObject(c, "message", message);
        return c;
}

/* Failure: why the VM cannot run, kept on the VM while the failed VMI itself is gone. */
static cJSON *failure_condition(const vm_sync *s, const cJSON *start_failure, bool counted,
                                const cJSON *old_conds)
{
        const cJSON *old = find_condition(old_conds, "Failure");
        char msg[1200];
        if (s->template_err) {
                snprintf(msg, sizeof(msg), "Failure while starting VMI: %s", s->template_err);
                return condition("Failure", true, "FailedCreate", msg, old, s->now_s);
        }
        if (!start_failure)
                return NULL;
        if (!counted) /* the record of an earlier reconcile: keep its words */
                return old ? cJSON_Duplicate(old, 1) : NULL;
        snprintf(msg, sizeof(msg),
                 "VMI %s failed before running successfully (failure %d): %s; next start after %s",
                 kube_str(s->vmi, "metadata.uid"),
                 cJSON_GetObjectItemCaseSensitive(start_failure, "consecutiveFailCount")->valueint,
                 kube_str(s->vmi, "status.reason") ?: "no reason given",
                 kube_str(start_failure, "retryAfterTimestamp"));
        return condition("Failure", true, "StartFailure", msg, NULL, s->now_s);
}

/* RerunOnFailure deletes a Failed VMI and asks for a Start, so the rerun survives the VMI being gone (a
 * VM stopped by request stays stopped). */
static void rerun_request(vm_sync *s)
{
        if (s->action != VM_DELETE_VMI || strcmp(s->strategy, "RerunOnFailure") || s->requests ||
            strcmp(vmi_phase(s->vmi), "Failed"))
                return;
        s->requests = cJSON_CreateArray();
        cJSON *start = cJSON_CreateObject();
        cJSON_AddStringToObject(start, "action", "Start");
        cJSON_AddItemToArray(s->requests, start);
}

static int mutate_vm_status(cJSON *vm, void *ud)
{
        vm_sync *s = ud;
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(vm, "status");
        const cJSON *old_conds = cJSON_GetObjectItemCaseSensitive(cur, "conditions");
        bool counted;
        cJSON_Delete(s->requests);
        s->requests = pending_requests(cJSON_GetObjectItemCaseSensitive(cur, "stateChangeRequests"), s->vmi);
        s->recorded = kube_str(vm, "status.runStrategy");
        _cleanup_json_ cJSON *sf =
            vm_start_failure_next(cJSON_GetObjectItemCaseSensitive(cur, "startFailure"), s->vmi, s->strategy,
                                  s->now, uid_jitter(s->vmi), &counted);
        decide(vm, sf, s);
        const cJSON *ready_c = find_condition(kube_obj(s->vmi, "status.conditions"), "Ready");
        bool ready = ready_c && !strcmp(kube_str(ready_c, "status") ?: "", "True");
        bool crash_loop = s->template_err || (sf && vm_strategy_restarts(s->strategy));
        cJSON *st = cJSON_CreateObject();
        cJSON_AddBoolToObject(st, "created", s->vmi != NULL);
        cJSON_AddBoolToObject(st, "ready", ready);
        cJSON_AddStringToObject(st, "printableStatus", printable_status(vm, s, crash_loop));
        cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
        cJSON *rc = condition("Ready", ready, NULL, NULL, find_condition(old_conds, "Ready"), s->now_s);
        const char *ltt = kube_str(ready_c, "lastTransitionTime");
        if (ltt)
                cJSON_ReplaceItemInObjectCaseSensitive(rc, "lastTransitionTime", cJSON_CreateString(ltt));
        cJSON_AddItemToArray(conds, rc);
        cJSON *fc = failure_condition(s, sf, counted, old_conds);
        if (fc)
                cJSON_AddItemToArray(conds, fc);
        vm_copy_vmi_conditions(conds, s->vmi);
        if (vm_restart_required(vm, s->vmi))
                cJSON_AddItemToArray(conds,
                                     condition("RestartRequired", true, NULL, RESTART_REQUIRED_MSG,
                                               find_condition(old_conds, "RestartRequired"), s->now_s));
        if (s->dv_wait) /* KubeVirt's DataVolumesReady condition */
                cJSON_AddItemToArray(
                    conds, condition("DataVolumesReady", false, dv_wait_printable(s->dv_wait), s->dv_msg,
                                     find_condition(old_conds, "DataVolumesReady"), s->now_s));
        if (sf)
                cJSON_AddItemToObject(st, "startFailure", cJSON_Duplicate(sf, 1));
        if (s->snapshot_busy)
                cJSON_AddStringToObject(st, "snapshotInProgress", s->snapshot_busy);
        if (s->restore_busy)
                cJSON_AddStringToObject(st, "restoreInProgress", s->restore_busy);
        rerun_request(s);
        if (s->requests)
                cJSON_AddItemToObject(st, "stateChangeRequests", cJSON_Duplicate(s->requests, 1));
        /* Recorded once a VMI exists or none is wanted, so a failed create is retried; a VMI that is wanted
         * but held back (a template that cannot run, DataVolumes not ready) is still wanted: recording the
         * strategy then would make a RerunOnFailure VM look stopped by the user. */
        bool held = s->template_err || s->dv_wait || s->snapshot_busy || s->restore_busy;
        const char *rec = s->vmi || (s->action != VM_CREATE_VMI && !held) ? s->strategy : s->recorded;
        if (rec)
                cJSON_AddStringToObject(st, "runStrategy", rec);
        s->counted = counted;
        if (cur && cJSON_Compare(cur, st, true)) {
                cJSON_Delete(st);
                return 0;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(vm, "status");
        cJSON_AddItemToObject(vm, "status", st);
        return 1;
}

static int create_vmi(controller *c, kube_client *api, const char *key, const cJSON *vm, const char *hash,
                      kv_error *err)
{
        _cleanup_json_ cJSON *nvmi = vmi_from_template(vm, hash);
        expectations_expect_create(c->vmi_exp, key);
        int r = kube_create(api, &kube_vmi, kube_str(vm, "metadata.namespace"), nvmi, NULL, err);
        if (r < 0) {
                expectations_observed(c->vmi_exp, key);
                return r == -KUBE_EEXISTS ? 0
                                          : r; /* the old VMI is still finalizing; its DELETED requeues us */
        }
        log_info("VM %s: created VMI", key);
        return 0;
}

static int act(controller *c, kube_client *api, const char *key, const cJSON *vm, const vm_sync *s,
               kv_error *err)
{
        switch (s->action) {
        case VM_DELETE_VMI:
                log_info("VM %s: deleting VMI (runStrategy %s, phase %s)", key, s->strategy,
                         vmi_phase(s->vmi));
                return kube_delete(api, &kube_vmi, kube_str(vm, "metadata.namespace"),
                                   kube_str(vm, "metadata.name"), kube_str(s->vmi, "metadata.uid"), NULL,
                                   "Background", err);
        case VM_CREATE_VMI:
                return create_vmi(c, api, key, vm, s->template_hash, err);
        case VM_BACK_OFF:
                log_info("VM %s: backing off after a failed start; next start in %llu ms", key,
                         (unsigned long long)s->wait_ms);
                return 0;
        case VM_NOTHING:
                return 0;
        }
        return 0;
}

static void vm_sync_done(vm_sync *s)
{
        cJSON_Delete(s->requests);
        free(s->snapshot_busy);
        free(s->restore_busy);
}

static bool snapshot_busy(const cJSON *snap)
{
        const char *phase = kube_str(snap, "status.phase") ?: "";
        return strcmp(phase, "Succeeded") && strcmp(phase, "Failed");
}

static bool restore_busy(const cJSON *r)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(r, "status.conditions"))
        {
                if (!strcmp(kube_str(c, "type") ?: "", "Failure") &&
                    !strcmp(kube_str(c, "status") ?: "", "True"))
                        return false;
        }
        return !cJSON_IsTrue(kube_obj(r, "status.complete"));
}

/* The first snapshot (or restore) of the VM, by name, that is neither finished nor being deleted: while
 * one runs the VM does not start (KubeVirt's snapshotInProgress / restoreInProgress), so no guest writes a
 * claim a clone Pod copies. NULL when none. */
static char *vm_busy_with(kube_informer *inf, const char *key, bool (*busy)(const cJSON *))
{
        _cleanup_json_ cJSON *objs = kube_store_by_index(&inf->store, key);
        const char *best = NULL;
        const cJSON *o;
        cJSON_ArrayForEach(o, objs)
        {
                const char *name = kube_str(o, "metadata.name");
                if (name && !kube_obj(o, "metadata.deletionTimestamp") && busy(o) &&
                    (!best || strcmp(name, best) < 0))
                        best = name;
        }
        return best ? strdup(best) : NULL;
}

/* Status first (it records a failed start before the failed VMI goes), then the action; a backoff comes back
 * through the work queue when it expires. */
/* The VM's DataVolumes: made or adopted while it lives; released (kept, not deleted with it) when it goes,
 * behind a finalizer. Returns 1 when it patched the VM (its update event brings the reconcile back). */
static int vm_sync_datavolumes(controller *c, kube_client *api, const cJSON *vm, kv_error *err)
{
        bool has = cJSON_GetArraySize(kube_obj(vm, "spec.dataVolumeTemplates")) > 0;
        if (kube_obj(vm, "metadata.deletionTimestamp")) {
                if (!finalizer_has(vm, VM_DV_FINALIZER))
                        return 0;
                int r = vm_datavolumes_release(api, vm, err);
                return r < 0 ? r : finalizer_set(api, &kube_vm, vm, VM_DV_FINALIZER, false, err);
        }
        if (!has)
                return 0;
        if (!finalizer_has(vm, VM_DV_FINALIZER))
                return finalizer_set(api, &kube_vm, vm, VM_DV_FINALIZER, true, err);
        return vm_datavolumes_sync(c, api, vm, err);
}

int reconcile_vm(controller *c, kube_client *api, const char *key, kv_error *err)
{
        int r;
        _cleanup_json_ cJSON *vm = kube_store_get(&c->vms.store, key),
                             *vmi = kube_store_get(&c->vmis.store, key);
        if (!vm) {
                expectations_forget(c->vmi_exp, key);
                return 0;
        }
        if (vmi && !owned_by(vmi, kube_str(vm, "metadata.uid"))) {
                cJSON_Delete(vmi); /* a VMI of the same name that is not ours: leave it alone */
                vmi = NULL;
        }
        if ((r = vm_rename_finish(api, vm, err)) != 0)
                return r;
        int moving = vm_cold_migrate_step(c, api, vm, vmi, err);
        if (moving < 0)
                return moving;
        if ((r = vm_sync_datavolumes(c, api, vm, err)) != 0)
                return r < 0 ? r : 0;
        _cleanup_(vm_sync_done)
            vm_sync s = {.vmi = vmi, .strategy = run_strategy(vm), .now_ms = realtime_ms()};
        s.now = (time_t)(s.now_ms / 1000);
        vm_template_hash_str(vm, s.template_hash);
        rfc3339_now(s.now_s, sizeof(s.now_s));
        s.create_pending = !expectations_satisfied(c->vmi_exp, key);
        s.snapshot_busy = vm_busy_with(&c->snapshots, key, snapshot_busy);
        s.restore_busy = vm_busy_with(&c->restores, key, restore_busy);
        bool stop;
        _cleanup_free_ char *terr = NULL;
        _cleanup_json_ cJSON *reqs = pending_requests(kube_obj(vm, "status.stateChangeRequests"), vmi);
        /* a VM about to start: its template with the kept instancetype/preference revisions applied */
        _cleanup_json_ cJSON *run_vm = NULL;
        bool starting = !vmi && want_vmi(s.strategy, kube_str(vm, "status.runStrategy"), reqs, NULL, &stop);
        if ((starting || vm_needs_revision(vm)) && !kube_obj(vm, "metadata.deletionTimestamp")) {
                int er = vm_expand_template(api, vm, &run_vm, err);
                if (er < 0 && er != -EINVAL)
                        return er;
                if (starting) {
                        s.template_err = terr =
                            er < 0 ? strdup(err->msg) : template_error(run_vm, &c->opts.pod);
                        s.dv_wait = vm_datavolumes_wait(c, vm, s.dv_msg, sizeof(s.dv_msg));
                }
                *err = (kv_error){0};
        }
        r = kube_update_retry(api, &kube_vm, kube_str(vm, "metadata.namespace"),
                              kube_str(vm, "metadata.name"), vm, true, mutate_vm_status, &s, NULL, err);
        if (r == -KUBE_ENOTFOUND)
                return 0;
        if (r < 0)
                return r;
        if (s.counted)
                log_warning("VM %s: VMI %s failed to start: %s", key, kube_str(vmi, "metadata.uid"),
                            kube_str(vmi, "status.reason") ?: "no reason given");
        if ((r = act(c, api, key, run_vm ? run_vm : vm, &s, err)) < 0)
                return r;
        return s.wait_ms ? (int)(s.wait_ms < INT32_MAX ? s.wait_ms : INT32_MAX) : moving;
}
