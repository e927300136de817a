/* VMI reconciler: finalizer, exactly one launcher Pod (plus a migration's target, which the VMIM reconciler
 * creates), status from the active Pod, deletion through the finalizer, and self-GC of VMIs whose VM is
 * gone. */
#include "api.h"
#include "controller.h"
#include "backendstorage.h"
#include "datavolume.h"
#include "evacuation.h"
#include "finalizer.h"
#include "log.h"
#include "macro.h"
#include "vmimigration.h"
#include "vmistatus.h"

#include <string.h>

static bool has_finalizer(const cJSON *obj)
{
        return finalizer_has(obj, VMI_FINALIZER);
}

static int patch_finalizers(kube_client *api, const cJSON *vmi, bool add, cJSON **out, kv_error *err)
{
        cJSON *extra = NULL;
        if (add && !*vmi_phase(vmi)) { /* record Pending in the same write */
                char now[40];
                rfc3339_now(now, sizeof(now));
                extra = cJSON_CreateObject();
                cJSON_AddItemToObject(extra, "status", vmi_status_desired(vmi, NULL, now));
        }
        return finalizer_patch(api, &kube_vmi, vmi, VMI_FINALIZER, add, extra, out, err);
}

/* Writes status when it differs; a 409 re-reads the VMI and recomputes (never overwrite newer state). */
/* KubeVirt's AccessCredentialsSyncSuccess / AccessCredentialsSyncFailed Events, when the launcher's
 * AccessCredentialsSynchronized condition appears or changes on the VMI. */
static void access_credentials_event(kube_client *api, const cJSON *vmi, const cJSON *was, const cJSON *now)
{
        const cJSON *c, *before = NULL, *after = NULL;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(
                                  was, "conditions")) if (!strcmp(kube_str(c, "type") ?: "",
                                                                  "AccessCredentialsSynchronized")) before =
            c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(
                                  now, "conditions")) if (!strcmp(kube_str(c, "type") ?: "",
                                                                  "AccessCredentialsSynchronized")) after = c;
        if (!after || (before && !strcmp(kube_str(before, "status") ?: "", kube_str(after, "status") ?: "") &&
                       !strcmp(kube_str(before, "message") ?: "", kube_str(after, "message") ?: "")))
                return;
        bool ok = !strcmp(kube_str(after, "status") ?: "", "True");
        const char *msg = kube_str(after, "message") ?: "";
        char text[600];
        if (ok)
                snprintf(text, sizeof(text), "Access credentials sync successful%s%s", *msg ? ": " : ".",
                         msg);
        else
                snprintf(text, sizeof(text), "Access credentials sync failed: %s", msg);
        post_object_event(api, vmi, kube_vmi.api_version, kube_vmi.kind, ok ? "Normal" : "Warning",
                          ok ? "AccessCredentialsSyncSuccess" : "AccessCredentialsSyncFailed", text);
}

static int write_status(kube_client *api, const cJSON *vmi_cached, const cJSON *pods, const char *fail_reason,
                        kv_error *err)
{
        _cleanup_json_ cJSON *vmi = cJSON_Duplicate(vmi_cached, 1);
        for (int attempt = 0; attempt < 5; attempt++) {
                char now[40];
                rfc3339_now(now, sizeof(now));
                _cleanup_json_ cJSON *desired = fail_reason ? vmi_status_failed(vmi, fail_reason, now)
                                                            : vmi_status_from_pods(vmi, pods, now);
                const cJSON *cur = cJSON_GetObjectItemCaseSensitive(vmi, "status");
                if (cur && cJSON_Compare(cur, desired, true))
                        return 0;
                _cleanup_json_ cJSON *patch = cJSON_CreateObject();
                cJSON *md = cJSON_AddObjectToObject(patch, "metadata");
                cJSON_AddStringToObject(md, "resourceVersion", kube_str(vmi, "metadata.resourceVersion"));
                /* a merge patch keeps keys it does not name: removals must be explicit nulls */
                cJSON_AddItemToObject(patch, "status", kube_merge_patch_diff(cur, desired));
                const char *ns = kube_str(vmi, "metadata.namespace"), *name = kube_str(vmi, "metadata.name");
                int r = kube_merge_patch(api, &kube_vmi, ns, name, patch, false, NULL, err);
                if (r == 0)
                        access_credentials_event(api, vmi, cur, desired);
                if (r != -KUBE_ECONFLICT)
                        return r;
                cJSON *fresh = NULL;
                if ((r = kube_get(api, &kube_vmi, ns, name, &fresh, err)) < 0)
                        return r == -KUBE_ENOTFOUND ? 0 : r;
                cJSON_Delete(vmi);
                vmi = fresh;
        }
        return kv_error_set(err, KUBE_ECONFLICT, "VMI status: still conflicting after 5 fresh reads");
}

/* Pods created by this VMI according to the API itself, for when the cache may be behind (restart). */
static int api_pods(controller *c, kube_client *api, const char *ns, const char *uid, cJSON **items,
                    kv_error *err)
{
        char sel[128];
        cJSON *list = NULL;
        snprintf(sel, sizeof(sel), POD_LABEL_CREATED_BY "=%s", uid);
        c->api_lookups++;
        int r = kube_list(api, &kube_pod, ns, sel, &list, err);
        if (r < 0)
                return r;
        *items = cJSON_DetachItemFromObjectCaseSensitive(list, "items");
        cJSON_Delete(list);
        return *items ? 0 : kv_error_set(err, EPROTO, "pod list without items");
}

static int reconcile_deletion(controller *c, kube_client *api, const char *key, const cJSON *vmi, cJSON *pods,
                              kv_error *err)
{
        const char *ns = kube_str(vmi, "metadata.namespace"), *uid = kube_str(vmi, "metadata.uid");
        const cJSON *p;
        int r;
        if (!has_finalizer(vmi))
                return 0;
        if ((r = reconcile_hotplug_pods(c, api, vmi, NULL, 0, err)) < 0)
                return r;
        cJSON_ArrayForEach(p, pods)
        {
                if (kube_obj(p, "metadata.deletionTimestamp"))
                        continue;
                r = kube_delete(api, &kube_pod, ns, kube_str(p, "metadata.name"), kube_str(p, "metadata.uid"),
                                NULL, "Background", err);
                if (r < 0 && r != -KUBE_ECONFLICT)
                        return r;
        }
        if (cJSON_GetArraySize(pods) > 0 || !expectations_satisfied(c->pod_exp, key))
                return 0; /* the Pod's DELETED event brings us back */
        _cleanup_json_ cJSON *live = NULL;
        if ((r = api_pods(c, api, ns, uid, &live, err)) < 0)
                return r;
        if (cJSON_GetArraySize(live) > 0)
                return 1000; /* the cache is behind; look again shortly */
        r = patch_finalizers(api, vmi, false, NULL, err);
        if (r == 0)
                log_info("VMI %s: launcher Pod gone, finalizer removed", key);
        return r == -KUBE_ENOTFOUND ? 0 : r;
}

/* A VMI whose controlling VM no longer exists (the test API server has no garbage collector). */
static bool owner_vm_gone(controller *c, const cJSON *vmi)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(vmi, "metadata.ownerReferences"))
        {
                const char *kind = kube_str(o, "kind"), *name = kube_str(o, "name"),
                           *uid = kube_str(o, "uid");
                if (!kind || strcmp(kind, "VirtualMachine") ||
                    !cJSON_IsTrue(cJSON_GetObjectItem(o, "controller")) || !name)
                        continue;
                char vkey[600];
                snprintf(vkey, sizeof(vkey), "%s/%s", kube_str(vmi, "metadata.namespace"), name);
                _cleanup_json_ cJSON *vm = kube_store_get(&c->vms.store, vkey);
                const char *vuid = kube_str(vm, "metadata.uid");
                return !vm || (uid && vuid && strcmp(uid, vuid));
        }
        return false;
}

static int create_pod(controller *c, kube_client *api, const char *key, const cJSON *vmi, bool first_touch,
                      cJSON **created, kv_error *err)
{
        const char *ns = kube_str(vmi, "metadata.namespace"), *uid = kube_str(vmi, "metadata.uid");
        _cleanup_json_ cJSON *pod = NULL;
        int r;
        if (!first_touch) { /* a previous run may have created one the cache has not shown us */
                _cleanup_json_ cJSON *live = NULL;
                if ((r = api_pods(c, api, ns, uid, &live, err)) < 0)
                        return r;
                if (cJSON_GetArraySize(live) > 0) {
                        *created = cJSON_DetachItemFromArray(live, 0);
                        return 0;
                }
        }
        /* the registry configuration for containerDisk pulls, as for importer Pods (docs/registries.md) */
        _cleanup_free_ char *secret = NULL;
        pod_render_opts opts;
        if ((r = launcher_pod_opts(c, api, vmi, &opts, &secret, err)) < 0)
                return r;
        kv_error verr = {0};
        if (pod_render(vmi, &opts, &pod, &verr) < 0) {
                log_warning("VMI %s cannot run: %s", key, verr.msg);
                r = write_status(api, vmi, NULL, verr.msg, err);
                return r < 0 ? r : 1; /* status written: nothing more to do */
        }
        if (pod_uses_backend_storage(pod) && (r = backend_storage_ensure(api, vmi, err)) < 0)
                return r;
        expectations_expect_create(c->pod_exp, key);
        r = kube_create(api, &kube_pod, ns, pod, created, err);
        if (r < 0) {
                expectations_observed(c->pod_exp, key);
                return r;
        }
        c->pods_created++;
        log_info("VMI %s: created launcher Pod %s", key, kube_str(*created, "metadata.name"));
        return 0;
}

static bool pod_running(const cJSON *pod)
{
        const char *phase = kube_str(pod, "status.phase");
        return pod && phase && !strcmp(phase, "Running") && !kube_obj(pod, "metadata.deletionTimestamp");
}

/* Attachment Pods follow the running launcher Pod (the one the status comes from) and, during a migration,
 * its running target Pod, whose launcher attaches them before it accepts the stream; none otherwise. */
static int hotplug_pods(controller *c, kube_client *api, const cJSON *vmi, const cJSON *pods, kv_error *err)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        vmi_migration_view v;
        vmi_migration_observe(vmi, pods, now, &v);
        const cJSON *launchers[8], *p;
        size_t n = 0;
        bool running = !strcmp(vmi_phase(vmi), "Running");
        if (running && pod_running(v.active))
                launchers[n++] = v.active;
        cJSON_ArrayForEach(p, pods)
        {
                if (running && n < ARRAY_SIZE(launchers) && p != v.active && pod_migration_uid(p) &&
                    pod_running(p))
                        launchers[n++] = p;
        }
        int r = reconcile_hotplug_pods(c, api, vmi, launchers, n, err);
        vmi_migration_view_free(&v);
        return r;
}

int reconcile_vmi(controller *c, kube_client *api, const char *key, kv_error *err)
{
        _cleanup_json_ cJSON *vmi = kube_store_get(&c->vmis.store, key), *pods = NULL, *created = NULL;
        int r;
        if (!vmi) {
                expectations_forget(c->pod_exp, key);
                return 0;
        }
        pods = kube_store_by_index(&c->pods.store, kube_str(vmi, "metadata.uid"));
        if (!pods)
                return kv_error_errno(err, ENOMEM, "VMI %s", key);
        if (kube_obj(vmi, "metadata.deletionTimestamp"))
                return reconcile_deletion(c, api, key, vmi, pods, err);
        if (owner_vm_gone(c, vmi)) {
                log_info("VMI %s: its VirtualMachine is gone, deleting", key);
                return kube_delete(api, &kube_vmi, kube_str(vmi, "metadata.namespace"),
                                   kube_str(vmi, "metadata.name"), kube_str(vmi, "metadata.uid"), NULL,
                                   "Background", err);
        }
        const char *phase = vmi_phase(vmi);
        bool first_touch = false;
        if (!has_finalizer(vmi) && !vmi_phase_is_final(phase)) {
                cJSON *updated = NULL;
                if ((r = patch_finalizers(api, vmi, true, &updated, err)) < 0)
                        return r;
                cJSON_Delete(vmi);
                vmi = updated;
                /* we add the finalizer before any Pod, so a VMI without it has none of ours */
                first_touch = cJSON_GetArraySize(pods) == 0;
        }
        /* a VMI that never ran has no migration, so "no Pod" is simply no Pod at all */
        if (cJSON_GetArraySize(pods) == 0 && !vmi_phase_is_final(phase)) {
                if (!expectations_satisfied(c->pod_exp, key))
                        return 0; /* our Pod is on its way through the informer */
                if (!strcmp(phase, "") || !strcmp(phase, "Pending")) {
                        if ((r = create_pod(c, api, key, vmi, first_touch, &created, err)) != 0)
                                return r < 0 ? r : 0;
                        cJSON_AddItemToArray(pods, TAKE_PTR(created));
                }
        }
        kv_error perr = {0};
        if (vmi_container_disk_pulls(api, vmi, pods, &perr) < 0)
                log_warning("VMI %s: containerDisk pull report: %s", key, perr.msg);
        if ((r = write_status(api, vmi, pods, NULL, err)) != 0)
                return r;
        if ((r = hotplug_pods(c, api, vmi, pods, err)) != 0)
                return r;
        return reconcile_evacuation(c, api, vmi, err);
}
