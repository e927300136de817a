/* reconcile-vmpool: KubeVirt's VirtualMachinePool (pool.kubevirt.io). It keeps spec.replicas (default 1)
 * VirtualMachines of spec.virtualMachineTemplate: the VMs it controls that match spec.selector and are not
 * being deleted. A new VM is named <pool>-<index>, the lowest index no VM of the namespace has; its
 * dataVolumeTemplates (and the volumes naming them) get "-<index>" too, and with spec.nameGeneration
 * appendIndexToSecretRefs / appendIndexToConfigMapRefs so do the Secrets and ConfigMaps its volumes name, as
 * KubeVirt does. Too many: the VMs with the highest indexes go first. spec.paused stops all of it. Status:
 * replicas, readyReplicas (VMs whose Ready condition is True), labelSelector, ReplicaPaused and
 * ReplicaFailure. VM events wake the pool that controls them. At its size, template changes roll out
 * (vmpool-update.c). docs/controller.md */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"
#include "jfield.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "replicas.h"
#include "statusfields.h"
#include "vmpool.h"

#define POOL_BURST 10
#define POOL_RECHECK_MS 30000
#define POOL_MAX_VMS 256

long pool_vm_index(const char *pool, const char *name)
{
        size_t n = strlen(pool);
        if (strncmp(name, pool, n) || name[n] != '-' || !name[n + 1])
                return -1;
        char *end;
        long i = strtol(name + n + 1, &end, 10);
        return *end || i < 0 ? -1 : i;
}

/* name → name-<idx> in place (a cJSON string item). */
static void suffix(cJSON *s, long idx)
{
        char buf[300];
        if (!cJSON_IsString(s))
                return;
        snprintf(buf, sizeof(buf), "%s-%ld", s->valuestring, idx);
        cJSON_SetValuestring(s, buf);
}

/* KubeVirt's indexVMSpec: the VM spec of index idx. */
static void index_spec(cJSON *spec, long idx, bool secrets, bool config_maps)
{
        cJSON *dvt, *vol;
        cJSON_ArrayForEach(dvt, cJSON_GetObjectItemCaseSensitive(spec, "dataVolumeTemplates"))
        {
                cJSON *name = (cJSON *)kube_obj(dvt, "metadata.name");
                if (!cJSON_IsString(name))
                        continue;
                char old[256];
                snprintf(old, sizeof(old), "%s", name->valuestring);
                suffix(name, idx);
                cJSON_ArrayForEach(vol, (cJSON *)kube_obj(spec, "template.spec.volumes"))
                {
                        cJSON *ref = (cJSON *)kube_obj(vol, "dataVolume.name");
                        if (!ref)
                                ref = (cJSON *)kube_obj(vol, "persistentVolumeClaim.claimName");
                        if (cJSON_IsString(ref) && !strcmp(ref->valuestring, old))
                                cJSON_SetValuestring(ref, name->valuestring);
                }
        }
        cJSON_ArrayForEach(vol, (cJSON *)kube_obj(spec, "template.spec.volumes"))
        {
                if (secrets) {
                        suffix((cJSON *)kube_obj(vol, "secret.secretName"), idx);
                        suffix((cJSON *)kube_obj(vol, "cloudInitNoCloud.secretRef.name"), idx);
                        suffix((cJSON *)kube_obj(vol, "cloudInitConfigDrive.secretRef.name"), idx);
                }
                if (config_maps)
                        suffix((cJSON *)kube_obj(vol, "configMap.name"), idx);
        }
}

/* obj.metadata.labels[POOL_REVISION_LABEL] = revision (obj: the VM, or its spec.template). */
static void label_revision(cJSON *obj, const char *revision)
{
        if (!cJSON_IsObject(obj))
                return;
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        if (!cJSON_IsObject(md))
                md = cJSON_AddObjectToObject(obj, "metadata");
        cJSON *labels = cJSON_GetObjectItemCaseSensitive(md, "labels");
        if (!cJSON_IsObject(labels))
                labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_DeleteItemFromObjectCaseSensitive(labels, POOL_REVISION_LABEL);
        cJSON_AddStringToObject(labels, POOL_REVISION_LABEL, revision);
}

cJSON *pool_vm_for(const cJSON *pool, const char *name, long idx, const char *revision)
{
        cJSON *vm = replicas_from_template(kube_obj(pool, "spec.virtualMachineTemplate"), &kube_vm, pool,
                                           &kube_vmpool);
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(vm, "metadata"), "name", name);
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(vm, "spec");
        index_spec(spec, idx, cJSON_IsTrue(kube_obj(pool, "spec.nameGeneration.appendIndexToSecretRefs")),
                   cJSON_IsTrue(kube_obj(pool, "spec.nameGeneration.appendIndexToConfigMapRefs")));
        label_revision(vm, revision);
        label_revision(cJSON_GetObjectItemCaseSensitive(spec, "template"), revision);
        return vm;
}

typedef struct pool_state {
        const cJSON *vms[POOL_MAX_VMS]; /* counted, borrowed from the list */
        int n, ready;
        char failure[512];
} pool_state;

static const char *pool_name(const cJSON *pool)
{
        return kube_str(pool, "metadata.name") ?: "";
}

static int by_index_desc(const void *a, const void *b, void *pool)
{
        const char *name = pool;
        long x = pool_vm_index(name, kube_str(*(const cJSON *const *)a, "metadata.name") ?: "");
        long y = pool_vm_index(name, kube_str(*(const cJSON *const *)b, "metadata.name") ?: "");
        return (y > x) - (y < x);
}

/* Creates VMs at the lowest free indexes (a VM of that name, the pool's or not, takes its index). */
static int grow(kube_client *api, const cJSON *pool, pool_state *s, int count, const char *revision)
{
        const char *ns = kube_str(pool, "metadata.namespace");
        for (long idx = 0, made = 0; made < count && idx < 100000; idx++) {
                char name[300];
                snprintf(name, sizeof(name), "%s-%ld", pool_name(pool), idx);
                kv_error err = {0};
                _cleanup_json_ cJSON *vm = pool_vm_for(pool, name, idx, revision), *created = NULL;
                int r = kube_create(api, &kube_vm, ns, vm, &created, &err);
                if (r == -KUBE_EEXISTS)
                        continue;
                if (r < 0) {
                        snprintf(s->failure, sizeof(s->failure), "%s", err.msg);
                        log_warning("VirtualMachinePool %s/%s: %s", ns, pool_name(pool), err.msg);
                        return 0;
                }
                log_info("VirtualMachinePool %s/%s: created VM %s", ns, pool_name(pool), name);
                made++;
        }
        return 0;
}

static int shrink(kube_client *api, const cJSON *pool, pool_state *s, int count, kv_error *err)
{
        qsort_r(s->vms, (size_t)s->n, sizeof(s->vms[0]), by_index_desc, (void *)pool_name(pool));
        for (int i = 0; i < count && i < s->n; i++) {
                int r = kube_delete(api, &kube_vm, kube_str(pool, "metadata.namespace"),
                                    kube_str(s->vms[i], "metadata.name"), NULL, NULL, "Background", err);
                if (r < 0 && r != -KUBE_ENOTFOUND)
                        return r;
        }
        return 0;
}

/* Grows or shrinks toward want; at that size, KubeVirt's update pass (vmpool-update.c). */
static int scale_or_update(controller *c, kube_client *api, const cJSON *pool, pool_state *s, int want,
                           kv_error *err)
{
        char revision[300];
        JF_TRY(pool_revision_ensure(api, pool, revision, sizeof(revision), err));
        if (s->n < want)
                return grow(api, pool, s, want - s->n < POOL_BURST ? want - s->n : POOL_BURST, revision);
        if (s->n > want)
                return shrink(api, pool, s, s->n - want < POOL_BURST ? s->n - want : POOL_BURST, err);
        return pool_update(c, api, pool, revision, s->vms, s->n, s->failure, sizeof(s->failure), err);
}

static int write_pool_status(kube_client *api, const cJSON *pool, const pool_state *s, const char *selector,
                             bool paused, kv_error *err)
{
        replicas_status st = {s->n, s->ready, selector, paused, s->failure};
        return replicas_write_status(api, &kube_vmpool, pool, &st, err);
}

int reconcile_vmpool(controller *c, kube_client *api, const char *key, kv_error *err)
{
        if (optional_state(c, OPT_POOL) != OPT_RUNNING)
                return optional_state(c, OPT_POOL) == OPT_STARTING ? 200 : 0;
        _cleanup_json_ cJSON *pool = kube_store_get(&c->pools.store, key), *vms = NULL;
        if (!pool || kube_obj(pool, "metadata.deletionTimestamp"))
                return 0; /* its VMs go with it: they are owned */
        _cleanup_free_ char *selector = label_selector_string(kube_obj(pool, "spec.selector"));
        pool_state s = {0};
        if (!selector) {
                snprintf(s.failure, sizeof(s.failure),
                         "spec.selector: a matchLabels or matchExpressions "
                         "selector is required");
                return write_pool_status(api, pool, &s, "", false, err);
        }
        const cJSON *replicas = kube_obj(pool, "spec.replicas"), *v;
        int want = cJSON_IsNumber(replicas) && replicas->valueint >= 0 ? replicas->valueint : 1;
        bool paused = cJSON_IsTrue(kube_obj(pool, "spec.paused"));
        int r = kube_list(api, &kube_vm, kube_str(pool, "metadata.namespace"), selector, &vms, err);
        if (r < 0)
                return r;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(vms, "items"))
        {
                if (!owned_by_controller(v, pool) || kube_obj(v, "metadata.deletionTimestamp") ||
                    s.n == POOL_MAX_VMS)
                        continue;
                s.vms[s.n++] = v;
                s.ready += condition_ready(v);
        }
        if (!paused)
                r = scale_or_update(c, api, pool, &s, want, err);
        if (r >= 0)
                r = write_pool_status(api, pool, &s, selector, paused, err);
        return r < 0 ? r : POOL_RECHECK_MS;
}
