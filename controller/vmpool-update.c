/* vmpool-update: a VirtualMachinePool's revisions and the rollout of template changes to its VMs and their
 * VMIs, as KubeVirt's pool controller (vmpool.h, docs/controller.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "replicas.h"
#include "vmpool.h"

#define REV_CACHE_MAX 16

static const char *revision_of(const cJSON *obj)
{
        return cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.labels"), POOL_REVISION_LABEL));
}

int pool_revision_ensure(kube_client *api, const cJSON *pool, char *name, size_t len, kv_error *err)
{
        const cJSON *gen = kube_obj(pool, "metadata.generation");
        int g = cJSON_IsNumber(gen) ? gen->valueint : 1;
        snprintf(name, len, "%s-%d", kube_str(pool, "metadata.name") ?: "", g);
        _cleanup_json_ cJSON *rev = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(rev, "metadata");
        cJSON_AddStringToObject(rev, "apiVersion", kube_controllerrevision.api_version);
        cJSON_AddStringToObject(rev, "kind", kube_controllerrevision.kind);
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(pool, kube_vmpool.api_version, kube_vmpool.kind));
        cJSON_AddItemToObject(rev, "data", cJSON_Duplicate(kube_obj(pool, "spec"), true));
        cJSON_AddNumberToObject(rev, "revision", g);
        int r =
            kube_create(api, &kube_controllerrevision, kube_str(pool, "metadata.namespace"), rev, NULL, err);
        return r == -KUBE_EEXISTS ? 0 : r;
}

/* The revisions one pass reads, each once: their data (the pool spec then), NULL when not found. */
typedef struct rev_cache {
        kube_client *api;
        const char *ns;
        char *names[REV_CACHE_MAX];
        cJSON *data[REV_CACHE_MAX];
        int n;
} rev_cache;

static void rev_cache_free(rev_cache *rc)
{
        for (int i = 0; i < rc->n; i++) {
                free(rc->names[i]);
                cJSON_Delete(rc->data[i]);
        }
}

static int rev_get(rev_cache *rc, const char *name, const cJSON **data, kv_error *err)
{
        for (int i = 0; i < rc->n; i++)
                if (!strcmp(rc->names[i], name))
                        return *data = rc->data[i], 0;
        if (rc->n == REV_CACHE_MAX)
                return kv_error_set(err, EAGAIN, "more than %d revisions in one pass", REV_CACHE_MAX);
        _cleanup_json_ cJSON *rev = NULL;
        int r = kube_get(rc->api, &kube_controllerrevision, rc->ns, name, &rev, err);
        if (r < 0 && r != -KUBE_ENOTFOUND)
                return r;
        rc->names[rc->n] = strdup(name);
        rc->data[rc->n] = rev ? cJSON_DetachItemFromObjectCaseSensitive(rev, "data") : NULL;
        *data = rc->data[rc->n++];
        return 0;
}

/* 1 when the VM was written from a template other than the pool's current one. */
static int vm_outdated(rev_cache *rc, const cJSON *pool, const cJSON *vm, kv_error *err)
{
        const char *rev = revision_of(vm);
        const cJSON *data = NULL;
        if (!rev)
                return 1;
        JF_TRY(rev_get(rc, rev, &data, err));
        return !data || !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(data, "virtualMachineTemplate"),
                                       kube_obj(pool, "spec.virtualMachineTemplate"), true);
}

/* obj[key] = v (consumed), whether obj had key or not. */
static void put(cJSON *obj, const char *key, cJSON *v)
{
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (v)
                cJSON_AddItemToObject(obj, key, v);
}

/* KubeVirt's opportunistic update: labels, annotations (the template's over the VM's) and spec from the
 * current template; the VM keeps its identity (metadata otherwise, status). */
static int rewrite_vm(kube_client *api, const cJSON *pool, const cJSON *vm, const char *revision,
                      kv_error *err)
{
        const char *name = kube_str(vm, "metadata.name");
        long idx = pool_vm_index(kube_str(pool, "metadata.name") ?: "", name);
        if (idx < 0)
                return 0;
        _cleanup_json_ cJSON *fresh = pool_vm_for(pool, name, idx, revision),
                             *out = cJSON_Duplicate(vm, true);
        cJSON *md = cJSON_GetObjectItemCaseSensitive(out, "metadata"), *a;
        put(md, "labels", cJSON_Duplicate(kube_obj(fresh, "metadata.labels"), 1));
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(md, "annotations")))
                put(md, "annotations", cJSON_CreateObject());
        cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
        cJSON_ArrayForEach(a, kube_obj(fresh, "metadata.annotations"))
        {
                put(ann, a->string, cJSON_Duplicate(a, 1));
        }
        put(out, "spec", cJSON_Duplicate(kube_obj(fresh, "spec"), 1));
        int r = kube_update(api, &kube_vm, out, false, NULL, err);
        if (r >= 0)
                log_info("VirtualMachinePool %s/%s: VM %s updated to revision %s",
                         kube_str(pool, "metadata.namespace"), kube_str(pool, "metadata.name"), name,
                         revision);
        return r == -KUBE_ECONFLICT || r == -KUBE_ENOTFOUND ? 0 : r; /* a 409: the next pass */
}

enum { UPDATE_NONE, UPDATE_RESTART, UPDATE_LABEL };

/* KubeVirt's isOutdatedVMI: a VMI without a revision label, or whose revision is gone, restarts; one whose
 * revision's VMI template differs from its VM's restarts; the same template only gets the VM's label. */
static int vmi_update_type(rev_cache *rc, const cJSON *vm, const cJSON *vmi, kv_error *err)
{
        const char *vm_rev = revision_of(vm), *vmi_rev = revision_of(vmi);
        const cJSON *want = NULL, *have = NULL;
        if (!vm_rev)
                return UPDATE_NONE;
        if (!vmi_rev)
                return UPDATE_RESTART;
        if (!strcmp(vm_rev, vmi_rev))
                return UPDATE_NONE;
        JF_TRY(rev_get(rc, vm_rev, &want, err));
        if (!want)
                return UPDATE_NONE;
        JF_TRY(rev_get(rc, vmi_rev, &have, err));
        if (!have)
                return UPDATE_RESTART;
        return cJSON_Compare(kube_obj(want, "virtualMachineTemplate.spec.template"),
                             kube_obj(have, "virtualMachineTemplate.spec.template"), true)
                   ? UPDATE_LABEL
                   : UPDATE_RESTART;
}

static bool vmi_available(const cJSON *vmi)
{
        return vmi && !kube_obj(vmi, "metadata.deletionTimestamp") &&
               !strcmp(kube_str(vmi, "status.phase") ?: "", "Running") && condition_ready(vmi);
}

/* spec.maxUnavailable: a count or "N%" of spec.replicas (default 100%), at least 1. */
static int max_unavailable(const cJSON *pool)
{
        const cJSON *m = kube_obj(pool, "spec.maxUnavailable"), *rep = kube_obj(pool, "spec.replicas");
        int replicas = cJSON_IsNumber(rep) && rep->valueint > 0 ? rep->valueint : 1, v = replicas;
        char *end = NULL;
        if (cJSON_IsNumber(m))
                v = m->valueint;
        else if (cJSON_IsString(m)) {
                long pct = strtol(m->valuestring, &end, 10);
                if (!strcmp(end, "%") && pct >= 0 && pct <= 100)
                        v = (int)(replicas * pct / 100);
        }
        return v < 1 ? 1 : v;
}

static cJSON *vmi_of(controller *c, const cJSON *vm)
{
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", kube_str(vm, "metadata.namespace") ?: "",
                 kube_str(vm, "metadata.name") ?: "");
        return kube_store_get(&c->vmis.store, key);
}

static int apply_vmi_update(kube_client *api, const cJSON *vm, const cJSON *vmi, int type, kv_error *err)
{
        const char *ns = kube_str(vmi, "metadata.namespace"), *name = kube_str(vmi, "metadata.name");
        if (type == UPDATE_RESTART) {
                log_info("VirtualMachinePool: VMI %s/%s restarted for its VM's new template", ns, name);
                return kube_delete(api, &kube_vmi, ns, name, kube_str(vmi, "metadata.uid"), NULL, NULL, err);
        }
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "labels"),
                                POOL_REVISION_LABEL, revision_of(vm));
        return kube_merge_patch(api, &kube_vmi, ns, name, patch, false, NULL, err);
}

/* KubeVirt's proactive update of the VMIs of the up-to-date VMs (current[i]): the not Ready ones at once,
 * the others while fewer than maxUnavailable are unavailable. */
static int proactive(controller *c, kube_client *api, rev_cache *rc, const cJSON *pool,
                     const cJSON *const *vms, const bool *current, int n, kv_error *err)
{
        int budget = max_unavailable(pool);
        for (int i = 0; i < n; i++) {
                _cleanup_json_ cJSON *vmi = vmi_of(c, vms[i]);
                budget -= !vmi_available(vmi);
        }
        for (int i = 0; i < n; i++) {
                _cleanup_json_ cJSON *vmi = vmi_of(c, vms[i]);
                if (!current[i] || !vmi || kube_obj(vmi, "metadata.deletionTimestamp"))
                        continue;
                int type = vmi_update_type(rc, vms[i], vmi, err);
                if (type < 0)
                        return type;
                if (type == UPDATE_NONE || (type == UPDATE_RESTART && vmi_available(vmi) && budget-- <= 0))
                        continue;
                JF_TRY(apply_vmi_update(api, vms[i], vmi, type, err));
        }
        return 0;
}

static bool names_revision(controller *c, const cJSON *const *vms, int n, const char *name)
{
        for (int i = 0; i < n; i++) {
                _cleanup_json_ cJSON *vmi = vmi_of(c, vms[i]);
                const char *a = revision_of(vms[i]), *b = vmi ? revision_of(vmi) : NULL;
                if ((a && !strcmp(a, name)) || (b && !strcmp(b, name)))
                        return true;
        }
        return false;
}

/* KubeVirt's pruneUnusedRevisions: the pool's revisions that are not current and that no VM or VMI names. */
static int prune(controller *c, kube_client *api, const cJSON *pool, const char *revision,
                 const cJSON *const *vms, int n, kv_error *err)
{
        const char *ns = kube_str(pool, "metadata.namespace");
        _cleanup_json_ cJSON *revs = NULL;
        const cJSON *rev;
        JF_TRY(kube_list(api, &kube_controllerrevision, ns, NULL, &revs, err));
        cJSON_ArrayForEach(rev, cJSON_GetObjectItemCaseSensitive(revs, "items"))
        {
                const char *name = kube_str(rev, "metadata.name") ?: "";
                if (!owned_by_controller(rev, pool) || !strcmp(name, revision) ||
                    names_revision(c, vms, n, name))
                        continue;
                JF_TRY(kube_delete(api, &kube_controllerrevision, ns, name, NULL, NULL, NULL, err));
        }
        return 0;
}

static const char *update_strategy(const cJSON *pool)
{
        const cJSON *s = kube_obj(pool, "spec.updateStrategy");
        return kube_obj(s, "unmanaged")       ? "unmanaged"
               : kube_obj(s, "opportunistic") ? "opportunistic"
                                              : "proactive";
}

int pool_update(controller *c, kube_client *api, const cJSON *pool, const char *revision,
                const cJSON *const *vms, int n, char *failure, size_t len, kv_error *err)
{
        const char *strategy = update_strategy(pool);
        if (!strcmp(strategy, "unmanaged"))
                return 0;
        rev_cache rc = {.api = api, .ns = kube_str(pool, "metadata.namespace")};
        bool *current = calloc((size_t)n + 1, sizeof(bool)), rewritten = false;
        int r = current ? 0 : kv_error_set(err, ENOMEM, "out of memory");
        for (int i = 0; r >= 0 && i < n; i++) {
                r = vm_outdated(&rc, pool, vms[i], err);
                current[i] = r == 0;
                if (r == 1) {
                        rewritten = true;
                        kv_error why = {0};
                        if (rewrite_vm(api, pool, vms[i], revision, &why) <
                            0) /* refused: said in the status */
                                snprintf(failure, len, "VM %s: %s", kube_str(vms[i], "metadata.name"),
                                         why.msg);
                        r = 0;
                }
        }
        if (r >= 0 && strcmp(strategy, "opportunistic"))
                r = proactive(c, api, &rc, pool, vms, current, n, err);
        if (r >= 0 && !rewritten)
                r = prune(c, api, pool, revision, vms, n, err);
        free(current);
        rev_cache_free(&rc);
        return r;
}
