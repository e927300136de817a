/* VMIM reconciler: KubeVirt's migration phases (docs/cluster-live-ops.md). It refuses what cannot run,
 * creates the target Pod, waits for the target launcher to be ready, then writes the VMI's
 * status.migrationState, which the source's reporter acts on. Completion and failure are observed by the
 * VMI's status (vmimigration.c) and copied here. Every step is recomputed from the caches, so a restart
 * anywhere resumes. */
#include "api.h"
#include "controller.h"
#include "datavolume.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "migrationpolicy.h"
#include "vmimigration.h"
#include "vmistatus.h"

#include <stdio.h>
#include <string.h>

#define VMIM_FINALIZER "kubevirt.io/migrationJobFinalize"

enum vmim_phase {
        P_UNSET,
        P_PENDING,
        P_SCHEDULING,
        P_SCHEDULED,
        P_PREPARING,
        P_TARGET_READY,
        P_RUNNING,
        P_SUCCEEDED,
        P_FAILED
};
static const char *const phase_names[] = {"",          "Pending",         "Scheduling",
                                          "Scheduled", "PreparingTarget", "TargetReady",
                                          "Running",   "Succeeded",       "Failed"};

static enum vmim_phase phase_of(const cJSON *m)
{
        const char *p = kube_str(m, "status.phase");
        for (int i = P_PENDING; p && i <= P_FAILED; i++)
                if (!strcmp(p, phase_names[i]))
                        return (enum vmim_phase)i;
        return P_UNSET;
}

typedef struct vmim {
        controller *c;
        kube_client *api;
        cJSON *m, *vmi, *pods;
        const char *ns, *name, *uid, *vmi_name;
        const cJSON *target; /* this migration's target Pod in the cache, or NULL */
        const cJSON *ms;     /* the VMI's migrationState when it is this migration's, or NULL */
        char exp_key[128];   /* expectations key of the target Pod */
} vmim;

/* ---- the VMIM's status ---- */

typedef struct status_args {
        enum vmim_phase phase;
        const char *message; /* for Failed */
        const cJSON *ms;
} status_args;

static void set_item(cJSON *obj, const char *key, cJSON *val)
{
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddItemToObject(obj, key, val);
}

static cJSON *failed_condition(const char *message, const char *now)
{
        cJSON *conds = cJSON_CreateArray(), *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", "Failed");
        cJSON_AddStringToObject(c, "status", "True");
        cJSON_AddStringToObject(c, "lastTransitionTime", now);
        cJSON_AddStringToObject(c, "reason", "MigrationFailed");
        cJSON_AddStringToObject(c, "message", message);
        cJSON_AddItemToArray(conds, c);
        return conds;
}

/* Phases only move forward and final ones stay; migrationState mirrors the VMI's. */
static int mutate_status(cJSON *m, void *ud)
{
        const status_args *a = ud;
        enum vmim_phase cur = phase_of(m);
        if (cur >= P_SUCCEEDED)
                return 0;
        enum vmim_phase next = a->phase > cur ? a->phase : cur;
        const cJSON *cur_ms = kube_obj(m, "status.migrationState");
        bool ms_changed = a->ms && !(cur_ms && cJSON_Compare(cur_ms, a->ms, true));
        if (next == cur && !ms_changed && kube_str(m, "status.phase"))
                return 0;
        cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "status");
        if (!cJSON_IsObject(st)) {
                cJSON_DeleteItemFromObjectCaseSensitive(m, "status");
                st = cJSON_AddObjectToObject(m, "status");
        }
        char now[40];
        rfc3339_now(now, sizeof(now));
        if (next != cur || !kube_str(m, "status.phase")) {
                set_item(st, "phase", cJSON_CreateString(phase_names[next]));
                cJSON *ts = cJSON_GetObjectItemCaseSensitive(st, "phaseTransitionTimestamps");
                if (!cJSON_IsArray(ts)) {
                        ts = cJSON_CreateArray();
                        set_item(st, "phaseTransitionTimestamps", ts);
                }
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "phase", phase_names[next]);
                cJSON_AddStringToObject(t, "phaseTransitionTimestamp", now);
                cJSON_AddItemToArray(ts, t);
        }
        if (next == P_FAILED && a->message)
                set_item(st, "conditions", failed_condition(a->message, now));
        if (a->ms)
                set_item(st, "migrationState", cJSON_Duplicate(a->ms, 1));
        return 1;
}

static int set_phase(vmim *v, enum vmim_phase phase, const char *message, kv_error *err)
{
        status_args a = {phase, message, v->ms};
        if (phase == P_FAILED)
                log_warning("migration %s/%s of VMI %s failed: %s", v->ns, v->name, v->vmi_name, message);
        else if (phase != phase_of(v->m))
                log_info("migration %s/%s of VMI %s: %s", v->ns, v->name, v->vmi_name, phase_names[phase]);
        int r =
            kube_update_retry(v->api, &kube_vmim, v->ns, v->name, v->m, true, mutate_status, &a, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}

/* ---- the migration configuration (MigrationPolicy) ---- */

typedef struct mig_config {
        cJSON *config;                /* status.migrationState.migrationConfiguration */
        char policy[256];             /* migrationPolicyName, "" for none */
        char problem[KV_ERR_MSG_MAX]; /* a bad policy: the VMIM fails with this */
} mig_config;

static void mig_config_free(mig_config *m)
{
        cJSON_Delete(m->config);
        m->config = NULL;
}

/* The namespace's labels when a policy selects by them (a GET: namespaces are not watched), else none. */
static int namespace_labels(vmim *v, const cJSON *policies, cJSON **ns, kv_error *err)
{
        *ns = NULL;
        if (!migration_policies_use_namespace(policies))
                return 0;
        v->c->api_lookups++;
        int r = kube_get(v->api, &kube_namespace, NULL, v->ns, ns, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}

/* cluster defaults ← the MigrationPolicy that applies to the VMI (KubeVirt's precedence). A bad policy is
 * not an API error: it is left in m->problem for the VMIM's Failed condition. >0: ask again in that many
 * ms. */
static int resolve_config(vmim *v, mig_config *m, kv_error *err)
{
        *m = (mig_config){0};
        /* served but not listed yet: a migration must not start with defaults its policy overrides; not
         * served: no policies, the defaults apply (the store is empty) */
        if (optional_state(v->c, OPT_POLICY) == OPT_STARTING)
                return 1000;
        _cleanup_json_ cJSON *policies = kube_store_by_index(&v->c->policies.store, POLICY_INDEX_ALL),
                             *ns = NULL;
        if (!policies)
                return kv_error_errno(err, ENOMEM, "MigrationPolicies");
        int r = namespace_labels(v, policies, &ns, err);
        if (r < 0)
                return r;
        const cJSON *policy = NULL;
        kv_error perr = {0};
        if (migration_policy_select(policies, kube_obj(v->vmi, "metadata.labels"),
                                    kube_obj(ns, "metadata.labels"), &policy, &perr) < 0 ||
            migration_config_resolve(policy, &m->config, &perr) < 0) {
                snprintf(m->problem, sizeof(m->problem), "%s", perr.msg);
                return 0;
        }
        snprintf(m->policy, sizeof(m->policy), "%s", policy ? kube_str(policy, "metadata.name") : "");
        return 0;
}

/* ---- the target Pod ---- */

static int delete_target(vmim *v, kv_error *err)
{
        if (!v->target || kube_obj(v->target, "metadata.deletionTimestamp"))
                return 0;
        log_info("migration %s/%s: deleting target Pod %s", v->ns, v->name,
                 kube_str(v->target, "metadata.name"));
        int r = kube_delete(v->api, &kube_pod, v->ns, kube_str(v->target, "metadata.name"),
                            kube_str(v->target, "metadata.uid"), NULL, "Background", err);
        return r == -KUBE_ECONFLICT ? 0 : r;
}

static int fail(vmim *v, const char *message, kv_error *err)
{
        int r = delete_target(v, err);
        return r < 0 ? r : set_phase(v, P_FAILED, message, err);
}

/* The target Pod the API holds for this migration (a previous run may have created one the cache has
 * not shown), else a new one, started with the migration's configuration (--incoming-config). */
static int create_target(vmim *v, const mig_config *config, kv_error *err)
{
        char sel[128];
        _cleanup_json_ cJSON *list = NULL, *pod = NULL, *created = NULL;
        snprintf(sel, sizeof(sel), POD_LABEL_MIGRATION_JOB "=%s", v->uid);
        v->c->api_lookups++;
        int r = kube_list(v->api, &kube_pod, v->ns, sel, &list, err);
        if (r < 0)
                return r;
        if (cJSON_GetArraySize(kube_obj(list, "items")) > 0)
                return 0;
        /* the same registry configuration as the source Pod: its containerDisks are pulled again */
        _cleanup_free_ char *secret = NULL;
        pod_render_opts opts;
        if ((r = launcher_pod_opts(v->c, v->api, v->vmi, &opts, &secret, err)) < 0)
                return r;
        /* the hot-plugged claims come as on the source: attachment Pods on the target's node, handed to the
         * target launcher, which plugs them before it takes the stream */
        const char *attached[33];
        vmi_migration_view view;
        vmi_migration_observe(v->vmi, v->pods, "", &view);
        hotplug_unmounted(v->vmi, view.active, attached, ARRAY_SIZE(attached));
        vmi_migration_view_free(&view);
        opts.attached_volumes = attached;
        kv_error verr = {0};
        if (pod_render_migration_target(v->vmi, &opts, v->uid, config->config, config->policy, &pod, &verr) <
            0)
                return fail(v, verr.msg, err);
        expectations_expect_create(v->c->pod_exp, v->exp_key);
        r = kube_create(v->api, &kube_pod, v->ns, pod, &created, err);
        if (r < 0) {
                expectations_observed(v->c->pod_exp, v->exp_key);
                return r;
        }
        v->c->pods_created++;
        log_info("migration %s/%s: created target Pod %s for VMI %s", v->ns, v->name,
                 kube_str(created, "metadata.name"), v->vmi_name);
        return 0;
}

/* ---- the VMI's migrationState ---- */

typedef struct start_args {
        vmim *v;
        const cJSON *source;
        const mig_config *config;
} start_args;

static cJSON *start_state(const vmim *v, const cJSON *source, const mig_config *config)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        cJSON *ms = cJSON_CreateObject();
        cJSON_AddStringToObject(ms, "migrationUid", v->uid);
        cJSON_AddStringToObject(ms, "sourcePod", kube_str(source, "metadata.name"));
        cJSON_AddStringToObject(ms, "sourceNode", kube_str(source, "spec.nodeName") ?: "");
        cJSON_AddStringToObject(ms, "targetPod", kube_str(v->target, "metadata.name"));
        cJSON_AddStringToObject(ms, "targetNode", kube_str(v->target, "spec.nodeName") ?: "");
        cJSON_AddStringToObject(ms, "targetNodeAddress", kube_str(v->target, "status.podIP"));
        cJSON_AddBoolToObject(ms, "targetNodeDomainDetected", true);
        cJSON_AddStringToObject(ms, "targetNodeDomainReadyTimestamp", now);
        cJSON_AddStringToObject(ms, "startTimestamp", now);
        cJSON_AddStringToObject(ms, "mode", "PreCopy");
        cJSON_AddBoolToObject(ms, "completed", false);
        cJSON_AddBoolToObject(ms, "failed", false);
        cJSON_AddItemToObject(ms, "migrationConfiguration", cJSON_Duplicate(config->config, true));
        if (*config->policy)
                cJSON_AddStringToObject(ms, "migrationPolicyName", config->policy);
        return ms;
}

/* On the fresh VMI: refuses (-EBUSY) when it stopped running or another migration took it meanwhile. */
static int mutate_start(cJSON *vmi, void *ud)
{
        start_args *a = ud;
        const cJSON *cur = kube_obj(vmi, "status.migrationState");
        const char *uid = kube_str(cur, "migrationUid");
        if (uid && !strcmp(uid, a->v->uid))
                return 0;
        if (strcmp(vmi_phase(vmi), "Running") || migration_in_flight(cur))
                return -EBUSY;
        set_item(cJSON_GetObjectItemCaseSensitive(vmi, "status"), "migrationState",
                 start_state(a->v, a->source, a->config));
        return 1;
}

static int mutate_abort(cJSON *vmi, void *ud)
{
        const char *uid = ud;
        cJSON *ms = kube_obj(vmi, "status.migrationState");
        const char *cur = kube_str(ms, "migrationUid");
        if (!cur || strcmp(cur, uid) || !migration_in_flight(ms) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "abortRequested")))
                return 0;
        set_item(ms, "abortRequested", cJSON_CreateTrue());
        return 1;
}

static int update_vmi(vmim *v, kube_mutate_fn fn, void *ud, kv_error *err)
{
        /* fresh from the API: the cached VMI is pruned (last-applied annotation) and a PUT must not lose it
         */
        return kube_update_retry(v->api, &kube_vmi, v->ns, v->vmi_name, NULL, false, fn, ud, NULL, err);
}

static int start_migration(vmim *v, kv_error *err)
{
        /* The configuration the target Pod was started with, resolved when it was created: the source must
         * get the same one, whatever happened to the policies since. */
        _cleanup_(mig_config_free) mig_config config = {0};
        const char *policy;
        kv_error perr = {0};
        if (pod_migration_config(v->target, &config.config, &policy, &perr) < 0 ||
            (!config.config && migration_config_resolve(NULL, &config.config, &perr) < 0)) /* the defaults */
                return fail(v, perr.msg, err);
        snprintf(config.policy, sizeof(config.policy), "%s", policy);
        int r;
        vmi_migration_view view;
        vmi_migration_observe(v->vmi, v->pods, "", &view);
        start_args a = {v, view.active, &config};
        r = view.active ? update_vmi(v, mutate_start, &a, err) : -EBUSY;
        vmi_migration_view_free(&view);
        if (r == -EBUSY)
                return fail(v, "the VMI stopped running or another migration started before the hand-over",
                            err);
        if (r < 0)
                return r;
        log_info("migration %s/%s: VMI %s migrationState written, source to %s", v->ns, v->name, v->vmi_name,
                 kube_str(v->target, "status.podIP"));
        return set_phase(v, P_RUNNING, NULL, err);
}

/* ---- phases ---- */

/* Why this migration must not start, or NULL. */
static const char *refusal(vmim *v, char *buf, size_t size)
{
        if (!v->vmi) {
                snprintf(buf, size, "spec.vmiName: no VirtualMachineInstance %s in namespace %s", v->vmi_name,
                         v->ns);
                return buf;
        }
        if (strcmp(vmi_phase(v->vmi), "Running")) {
                snprintf(buf, size, "spec.vmiName: VirtualMachineInstance %s is %s, not Running", v->vmi_name,
                         *vmi_phase(v->vmi) ? vmi_phase(v->vmi) : "not started");
                return buf;
        }
        migration_blocker b;
        if (!vmi_migratable(v->vmi, kube_obj(v->vmi, "status.volumeStatus"), &b)) {
                snprintf(buf, size, "VirtualMachineInstance %s is not live-migratable: %s", v->vmi_name,
                         b.message);
                return buf;
        }
        const cJSON *ms = kube_obj(v->vmi, "status.migrationState");
        if (migration_in_flight(ms)) {
                snprintf(buf, size, "VirtualMachineInstance %s: migration %s is not finished", v->vmi_name,
                         kube_str(ms, "migrationUid"));
                return buf;
        }
        char idx[600];
        snprintf(idx, sizeof(idx), "%s/%s", v->ns, v->vmi_name);
        _cleanup_json_ cJSON *others = kube_store_by_index(&v->c->vmims.store, idx);
        const char *created = kube_str(v->m, "metadata.creationTimestamp") ?: "";
        const cJSON *o;
        cJSON_ArrayForEach(o, others)
        {
                const char *uid = kube_str(o, "metadata.uid"),
                           *oc = kube_str(o, "metadata.creationTimestamp") ?: "";
                enum vmim_phase p = phase_of(o);
                if (!uid || !strcmp(uid, v->uid) || p >= P_SUCCEEDED)
                        continue;
                /* the one already under way, or the older of two waiting (ties by name): deterministic */
                int older = strcmp(oc, created);
                if (p >= P_SCHEDULING || older < 0 ||
                    (older == 0 && strcmp(kube_str(o, "metadata.name") ?: "", v->name) < 0)) {
                        snprintf(buf, size, "VirtualMachineInstance %s: migration %s is not finished",
                                 v->vmi_name, kube_str(o, "metadata.name"));
                        return buf;
                }
        }
        return NULL;
}

/* Before the hand-over: the target Pod's progress gives the phase. */
static int follow_target(vmim *v, kv_error *err)
{
        char buf[600];
        if (!v->vmi || strcmp(vmi_phase(v->vmi), "Running")) {
                snprintf(buf, sizeof(buf),
                         "VirtualMachineInstance %s stopped running before the migration started",
                         v->vmi_name);
                return fail(v, buf, err);
        }
        if (!v->target) {
                if (!expectations_satisfied(v->c->pod_exp, v->exp_key))
                        return 0; /* ours is on its way through the informer */
                return fail(v, "target Pod disappeared", err);
        }
        const char *pname = kube_str(v->target, "metadata.name");
        _cleanup_json_ cJSON *ls = pod_launcher_status(v->target);
        const char *lphase = kube_str(ls, "phase");
        if (kube_obj(v->target, "metadata.deletionTimestamp") || pod_is_final(v->target) ||
            (lphase && vmi_phase_is_final(lphase))) {
                snprintf(buf, sizeof(buf), "target Pod %s ended before the migration started: %s", pname,
                         kube_str(ls, "reason") ?: kube_str(v->target, "status.phase") ?: "deleted");
                return fail(v, buf, err);
        }
        const char *pphase = kube_str(v->target, "status.phase");
        if (!kube_str(v->target, "spec.nodeName"))
                return set_phase(v, P_SCHEDULING, NULL, err);
        if (!pphase || strcmp(pphase, "Running") || !kube_str(v->target, "status.podIP"))
                return set_phase(v, P_SCHEDULED, NULL, err);
        if (!lphase || strcmp(lphase, "Scheduled") || !kube_str(ls, "migrationState.targetNodeAddress"))
                return set_phase(v, P_PREPARING, NULL, err);
        int r = set_phase(v, P_TARGET_READY, NULL, err);
        return r < 0 ? r : start_migration(v, err);
}

/* After the hand-over: the VMI's migrationState (kept by the VMI's status) decides. */
static int follow_migration(vmim *v, kv_error *err)
{
        if (cJSON_IsTrue(kube_obj(v->ms, "completed")))
                return set_phase(v, P_SUCCEEDED, NULL, err);
        if (cJSON_IsTrue(kube_obj(v->ms, "failed")))
                return fail(v, kube_str(v->ms, "failureReason") ?: "migration failed", err);
        return set_phase(v, P_RUNNING, NULL, err);
}

/* Deleted: a migration under way is aborted first (the source's reporter cancels it); then the target
 * Pod goes and the finalizer with it. */
static int reconcile_deletion(vmim *v, kv_error *err)
{
        if (!finalizer_has(v->m, VMIM_FINALIZER))
                return 0;
        int r;
        if (v->ms && migration_in_flight(v->ms)) {
                if (cJSON_IsTrue(kube_obj(v->ms, "abortRequested")))
                        return 0; /* the VMI's status brings us back when it ends */
                log_info("migration %s/%s deleted while running: abort requested", v->ns, v->name);
                r = update_vmi(v, mutate_abort, (void *)v->uid, err);
                return r == -KUBE_ENOTFOUND ? 0 : r;
        }
        /* a completed migration's target is the VMI's Pod now (or the source of a later migration) */
        bool completed = phase_of(v->m) == P_SUCCEEDED || cJSON_IsTrue(kube_obj(v->ms, "completed"));
        if (!completed && (r = delete_target(v, err)) < 0)
                return r;
        r = finalizer_patch(v->api, &kube_vmim, v->m, VMIM_FINALIZER, false, NULL, NULL, err);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}

static int step(vmim *v, kv_error *err)
{
        enum vmim_phase phase = phase_of(v->m);
        if (kube_obj(v->m, "metadata.deletionTimestamp"))
                return reconcile_deletion(v, err);
        if (phase == P_FAILED)
                return delete_target(v, err); /* a restart between the two writes of fail() */
        if (phase == P_SUCCEEDED)
                return 0;
        if (!finalizer_has(v->m, VMIM_FINALIZER)) {
                int r = finalizer_patch(v->api, &kube_vmim, v->m, VMIM_FINALIZER, true, NULL, NULL, err);
                return r == -KUBE_ENOTFOUND ? 0 : r; /* the update event brings us back */
        }
        if (v->ms)
                return follow_migration(v, err);
        if (phase <= P_PENDING) {
                char buf[600];
                const char *why = refusal(v, buf, sizeof(buf));
                if (why)
                        return set_phase(v, P_FAILED, why, err);
                /* The configuration is resolved when the migration starts, as in KubeVirt: here, before the
                 * target Pod that is started with it (a bad policy fails the VMIM before a Pod is made). */
                _cleanup_(mig_config_free) mig_config config = {0};
                if (!v->target) {
                        int r = resolve_config(v, &config, err);
                        if (r != 0 || *config.problem)
                                return r != 0 ? r : set_phase(v, P_FAILED, config.problem, err);
                }
                int r = phase == P_UNSET ? set_phase(v, P_PENDING, NULL, err) : 0;
                if (r < 0)
                        return r;
                if (!v->target) {
                        if (!expectations_satisfied(v->c->pod_exp, v->exp_key))
                                return 0; /* ours is on its way through the informer */
                        if ((r = create_target(v, &config, err)) < 0)
                                return r;
                        return set_phase(v, P_SCHEDULING, NULL, err);
                }
        }
        return follow_target(v, err);
}

static void find_target(vmim *v)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, v->pods)
        {
                const char *uid = pod_migration_uid(p);
                if (uid && !strcmp(uid, v->uid))
                        v->target = p;
        }
        const cJSON *ms = kube_obj(v->vmi, "status.migrationState");
        const char *muid = kube_str(ms, "migrationUid");
        if (muid && !strcmp(muid, v->uid))
                v->ms = ms;
}

int reconcile_vmim(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *m = kube_store_get(&c->vmims.store, key), *vmi = NULL, *pods = NULL;
        if (!m)
                return 0;
        vmim v = {.c = c, .api = api, .m = m};
        if (kube_obj_ident(m, "VMIM", key, &v.ns, &v.name, &v.uid, err) < 0)
                return -EINVAL;
        v.vmi_name = kube_str(m, "spec.vmiName") ?: "";
        snprintf(v.exp_key, sizeof(v.exp_key), "migration/%s", v.uid);
        char vkey[600];
        snprintf(vkey, sizeof(vkey), "%s/%s", v.ns, v.vmi_name);
        v.vmi = vmi = kube_store_get(&c->vmis.store, vkey);
        pods = vmi ? kube_store_by_index(&c->pods.store, kube_str(vmi, "metadata.uid")) : cJSON_CreateArray();
        if (!pods)
                return kv_error_errno(err, ENOMEM, "VMIM %s", key);
        v.pods = pods;
        if (vmi)
                find_target(&v);
        return step(&v, err);
}
