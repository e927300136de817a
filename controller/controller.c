/* The controller's loop: informers on a curl multi handle + the metrics server's epoll fd, polled by one
 * thread; worker threads take keys from the queue and run the reconcilers. */
#include "controller.h"
#include "evacuation.h"
#include "api.h"
#include "datavolume.h"
#include "log.h"
#include "metrics.h"
#include "vmimigration.h"
#include "vmistatus.h"

#include <malloc.h>
#include <string.h>
#include <time.h>

static const char *const kind_prefix[] = {"vmi", "vm", "vmim",  "vmsnapshot", "vmrestore",
                                          "dv",  "ds", "vmirs", "vmpool"};

int key_split(char *key, char **ns, char **name)
{
        char *slash = strchr(key, '/');
        if (!slash)
                return -EINVAL;
        *slash = '\0';
        *ns = key;
        *name = slash + 1;
        return 0;
}

void controller_enqueue(controller *c, enum reconcile_kind kind, const char *ns, const char *name)
{
        char key[600];
        snprintf(key, sizeof(key), "%s:%s/%s", kind_prefix[kind], ns ? ns : "", name);
        kube_workqueue_add(c->queue, key);
}

/* ---- cache shaping: keep only what reconcilers read ---- */

static void prune_common(cJSON *obj)
{
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(md, "annotations"),
                                                "kubectl.kubernetes.io/last-applied-configuration");
}

static void prune_pod(cJSON *pod)
{
        prune_common(pod);
        /* the spec is ours (rendered from the VMI); only the node binding and the claims mounted at creation
         * (hotplugpods.c) are read back */
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
        cJSON *node = cJSON_DetachItemFromObjectCaseSensitive(spec, "nodeName");
        cJSON *claims = cJSON_CreateArray();
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(spec, "volumes"))
        {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
                if (cJSON_IsString(name) && cJSON_GetObjectItemCaseSensitive(v, "persistentVolumeClaim"))
                        cJSON_AddItemToArray(claims, jstr(cJSON_CreateObject(), "name", name->valuestring));
        }
        cJSON_DeleteItemFromObjectCaseSensitive(pod, "spec");
        spec = cJSON_AddObjectToObject(pod, "spec");
        if (node)
                cJSON_AddItemToObject(spec, "nodeName", node);
        cJSON_AddItemToObject(spec, "volumes", claims);
}

/* Attachment Pods by the VMI they serve (its uid). */
static char *attacher_index(const cJSON *pod)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(kube_obj(pod, "metadata.labels"), HP_LABEL_VMI_UID);
        return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static char *pod_index(const cJSON *pod)
{
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(kube_obj(pod, "metadata.labels"), POD_LABEL_CREATED_BY);
        return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* Migrations by the VMI they move ("ns/vmiName"): VMI and target Pod events wake them. */
static char *vmim_index(const cJSON *m)
{
        const char *ns = kube_str(m, "metadata.namespace"), *vmi = kube_str(m, "spec.vmiName");
        char *out = NULL;
        if (ns && vmi && asprintf(&out, "%s/%s", ns, vmi) < 0)
                out = NULL;
        return out;
}

/* Every policy under one index value: kube_store_by_index(store, POLICY_INDEX_ALL) lists them. */
static char *policy_index(const cJSON *policy)
{
        return strdup(POLICY_INDEX_ALL);
}

static void enqueue_vmims_of(controller *c, const char *ns, const char *vmi)
{
        char idx[600];
        snprintf(idx, sizeof(idx), "%s/%s", ns ? ns : "", vmi ? vmi : "");
        _cleanup_json_ cJSON *ms = kube_store_by_index(&c->vmims.store, idx);
        const cJSON *m;
        cJSON_ArrayForEach(m, ms) controller_enqueue(c, RK_VMIM, ns, kube_str(m, "metadata.name"));
}

/* Snapshots and restores by the VM they name ("ns/vmName"): VM, VMI and launcher Pod events wake them. */
static char *vm_ref_index(const cJSON *obj, const char *path)
{
        const char *ns = kube_str(obj, "metadata.namespace"), *vm = kube_str(obj, path);
        char *out = NULL;
        if (ns && vm && asprintf(&out, "%s/%s", ns, vm) < 0)
                out = NULL;
        return out;
}

static char *snapshot_index(const cJSON *s)
{
        return vm_ref_index(s, "spec.source.name");
}

static char *restore_index(const cJSON *r)
{
        return vm_ref_index(r, "spec.target.name");
}

static void enqueue_by_index(controller *c, kube_informer *inf, enum reconcile_kind kind, const char *ns,
                             const char *vm)
{
        char idx[600];
        snprintf(idx, sizeof(idx), "%s/%s", ns ? ns : "", vm ? vm : "");
        _cleanup_json_ cJSON *objs = kube_store_by_index(&inf->store, idx);
        const cJSON *o;
        cJSON_ArrayForEach(o, objs) controller_enqueue(c, kind, ns, kube_str(o, "metadata.name"));
}

/* The VMI of a VM has its name, so does the Pod label vm.kubevirt.io/name. */
static void enqueue_snapshot_ops_of(controller *c, const char *ns, const char *vm)
{
        enqueue_by_index(c, &c->snapshots, RK_VMSNAPSHOT, ns, vm);
        enqueue_by_index(c, &c->restores, RK_VMRESTORE, ns, vm);
}

static void vmi_tag(const cJSON *vmi, char *out, size_t size)
{
        snprintf(out, size, "%s", vmi_phase(vmi));
}

/* ---- event handlers (loop thread) ---- */

static void on_vmi(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller *c = ud;
        const char *ns = kube_str(obj, "metadata.namespace"), *name = kube_str(obj, "metadata.name");
        controller_enqueue(c, RK_VMI, ns, name);
        enqueue_vmims_of(c, ns, name);
        enqueue_snapshot_ops_of(c, ns, name);
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences"))
        {
                const char *kind = kube_str(o, "kind");
                if (kind && !strcmp(kind, "VirtualMachine")) {
                        char key[600];
                        snprintf(key, sizeof(key), "%s/%s", ns, kube_str(o, "name") ?: "");
                        if (type == KUBE_ADDED)
                                expectations_observed(c->vmi_exp, key);
                        controller_enqueue(c, RK_VM, ns, kube_str(o, "name") ?: "");
                }
                if (kind && !strcmp(kind, "VirtualMachineInstanceReplicaSet"))
                        controller_enqueue(c, RK_VMIRS, ns, kube_str(o, "name") ?: "");
        }
}

static void on_vmirs(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller_enqueue(ud, RK_VMIRS, kube_str(obj, "metadata.namespace"), kube_str(obj, "metadata.name"));
}

static void on_vmpool(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller_enqueue(ud, RK_VMPOOL, kube_str(obj, "metadata.namespace"),
                           kube_str(obj, "metadata.name"));
}

static void on_attacher(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        const cJSON *vmi = cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.labels"), HP_LABEL_VMI);
        if (cJSON_IsString(vmi))
                controller_enqueue(ud, RK_VMI, kube_str(obj, "metadata.namespace"), vmi->valuestring);
}

static void on_pod(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller *c = ud;
        const char *ns = kube_str(obj, "metadata.namespace");
        const cJSON *vmname =
            cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.labels"), POD_LABEL_VM_NAME);
        if (!cJSON_IsString(vmname))
                return;
        const char *mig = pod_migration_uid(obj);
        if (type == KUBE_ADDED) {
                char key[600];
                if (mig) /* a migration target: the VMIM reconciler's expectation, not the VMI's */
                        snprintf(key, sizeof(key), "migration/%s", mig);
                else
                        snprintf(key, sizeof(key), "%s/%s", ns, vmname->valuestring);
                expectations_observed(c->pod_exp, key);
        }
        controller_enqueue(c, RK_VMI, ns, vmname->valuestring);
        enqueue_snapshot_ops_of(c, ns, vmname->valuestring);
        if (mig)
                enqueue_vmims_of(c, ns, vmname->valuestring);
}

static void on_vm(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        const char *ns = kube_str(obj, "metadata.namespace"), *name = kube_str(obj, "metadata.name");
        controller_enqueue(ud, RK_VM, ns, name);
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences")) /* the pool that controls it */
            if (!strcmp(kube_str(o, "kind") ?: "", "VirtualMachinePool"))
                controller_enqueue(ud, RK_VMPOOL, ns, kube_str(o, "name") ?: "");
        enqueue_snapshot_ops_of(ud, ns, name);
        if (type == KUBE_DELETED) /* its VMI (same name) must go too */
                controller_enqueue(ud, RK_VMI, ns, name);
}

static void on_vmim(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller *c = ud;
        const char *ns = kube_str(obj, "metadata.namespace");
        controller_enqueue(c, RK_VMIM, ns, kube_str(obj, "metadata.name"));
        if (cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.annotations"), EVACUATION_ANNOTATION)) {
                /* an evacuation's end may call for the next one */
                char key[600];
                snprintf(key, sizeof(key), "%s/%s", ns ?: "", kube_str(obj, "spec.vmiName") ?: "");
                if (type == KUBE_ADDED)
                        expectations_observed(c->vmim_exp, key);
                controller_enqueue(c, RK_VMI, ns, kube_str(obj, "spec.vmiName"));
        }
}

/* A snapshot becoming ready wakes the restores waiting for it (those of the same VM). */
static void on_snapshot(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        const char *ns = kube_str(obj, "metadata.namespace");
        controller_enqueue(ud, RK_VMSNAPSHOT, ns, kube_str(obj, "metadata.name"));
        enqueue_by_index(ud, &((controller *)ud)->restores, RK_VMRESTORE, ns,
                         kube_str(obj, "spec.source.name"));
        controller_enqueue(ud, RK_VM, ns, kube_str(obj, "spec.source.name") ?: ""); /* snapshotInProgress */
}

static void on_restore(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller_enqueue(ud, RK_VMRESTORE, kube_str(obj, "metadata.namespace"),
                           kube_str(obj, "metadata.name"));
        controller_enqueue(ud, RK_VM, kube_str(obj, "metadata.namespace"),
                           kube_str(obj, "spec.target.name") ?: ""); /* restoreInProgress */
}

/* A DataVolume wakes its own reconcile and the VM that owns it, or that it was kept from. */
static void on_dv(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        const char *ns = kube_str(obj, "metadata.namespace");
        controller_enqueue(ud, RK_DV, ns, kube_str(obj, "metadata.name"));
        const cJSON *owner = dv_controller_ref(obj);
        if (owner && !strcmp(kube_str(owner, "kind") ?: "", "VirtualMachine"))
                controller_enqueue(ud, RK_VM, ns, kube_str(owner, "name") ?: "");
        const cJSON *kept =
            cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.annotations"), DV_ANN_RETAINED);
        if (cJSON_IsString(kept))
                controller_enqueue(ud, RK_VM, ns, kept->valuestring);
        /* and the DataSources naming its claim (their Ready follows its phase) */
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns ?: "", kube_str(obj, "metadata.name") ?: "");
        _cleanup_json_ cJSON *sources = kube_store_by_index(&((controller *)ud)->datasources.store, key);
        const cJSON *ds;
        cJSON_ArrayForEach(ds, sources)
            controller_enqueue(ud, RK_DS, kube_str(ds, "metadata.namespace"), kube_str(ds, "metadata.name"));
}

static void on_datasource(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        controller_enqueue(ud, RK_DS, kube_str(obj, "metadata.namespace"), kube_str(obj, "metadata.name"));
}

static void on_importer(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        const cJSON *owner = dv_controller_ref(obj);
        if (owner && !strcmp(kube_str(owner, "kind") ?: "", "DataVolume"))
                controller_enqueue(ud, RK_DV, kube_str(obj, "metadata.namespace"),
                                   kube_str(owner, "name") ?: "");
}

/* As in KubeVirt, a policy is read when a migration starts; changing it does not touch running ones. */
static void on_policy(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
}

/* ---- workers ---- */

static int dispatch(controller *c, kube_client *api, const char *qkey, enum reconcile_kind *kind,
                    kv_error *err)
{
        const char *colon = strchr(qkey, ':');
        for (int k = 0; colon && k < RK__MAX; k++)
                if (strlen(kind_prefix[k]) == (size_t)(colon - qkey) &&
                    !strncmp(qkey, kind_prefix[k], colon - qkey)) {
                        *kind = (enum reconcile_kind)k;
                        if (k == RK_VMI)
                                return reconcile_vmi(c, api, colon + 1, err);
                        if (k == RK_VM)
                                return reconcile_vm(c, api, colon + 1, err);
                        if (k == RK_VMSNAPSHOT)
                                return reconcile_vmsnapshot(c, api, colon + 1, err);
                        if (k == RK_VMRESTORE)
                                return reconcile_vmrestore(c, api, colon + 1, err);
                        if (k == RK_DV)
                                return reconcile_dv(c, api, colon + 1, err);
                        if (k == RK_DS)
                                return reconcile_ds(c, api, colon + 1, err);
                        if (k == RK_VMIRS)
                                return reconcile_vmirs(c, api, colon + 1, err);
                        if (k == RK_VMPOOL)
                                return reconcile_vmpool(c, api, colon + 1, err);
                        return reconcile_vmim(c, api, colon + 1, err);
                }
        *kind = RK_VMI;
        return kv_error_set(err, EINVAL, "bad queue key %s", qkey);
}

static void *worker(void *arg)
{
        controller *c = arg;
        _cleanup_(kube_client_freep) kube_client *api = kube_client_new(c->cfg);
        if (!api)
                return NULL;
        api->max_attempts = 3; /* the queue's backoff takes over after that */
        for (;;) {
                _cleanup_free_ char *key = NULL;
                if (kube_workqueue_get(c->queue, &key, -1) < 0)
                        break;
                kv_error err = {0};
                enum reconcile_kind kind;
                int r = dispatch(c, api, key, &kind, &err);
                c->reconciles[kind][r < 0]++;
                if (r < 0) {
                        unsigned delay = kube_workqueue_add_rate_limited(c->queue, key);
                        log_warning("reconcile %s failed (retry in %u ms): %s", key, delay, err.msg);
                } else {
                        kube_workqueue_forget(c->queue, key);
                        if (r > 0)
                                kube_workqueue_add_after(c->queue, key, (unsigned)r);
                }
                kube_workqueue_done(c->queue, key);
        }
        return NULL;
}

/* ---- lifecycle ---- */

int controller_init(controller *c, kube_config *cfg, const controller_opts *opts, kv_error *err)
{
        memset(c, 0, sizeof(*c));
        c->opts = *opts;
        c->cfg = cfg;
        c->multi = curl_multi_init();
        c->queue = kube_workqueue_new(NULL);
        c->pod_exp = expectations_new(60000);
        c->vmi_exp = expectations_new(60000);
        c->vmim_exp = expectations_new(60000);
        if (!c->multi || !c->queue || !c->pod_exp || !c->vmi_exp || !c->vmim_exp)
                return kv_error_errno(err, ENOMEM, "controller");
        static const kube_store_ops vmi_ops = {prune_common, NULL, vmi_tag},
                                    pod_ops = {prune_pod, pod_index, NULL},
                                    vmim_ops = {prune_common, vmim_index, NULL},
                                    policy_ops = {prune_common, policy_index, NULL},
                                    snapshot_ops = {prune_common, snapshot_index, NULL},
                                    restore_ops = {prune_common, restore_index, NULL},
                                    attacher_ops = {prune_common, attacher_index, NULL},
                                    datasource_ops = {prune_common, datasource_claim_key, NULL},
                                    plain_ops = {prune_common, NULL, NULL};
        const char *ns = opts->namespace;
        if (kube_informer_init(&c->vmis, cfg, c->multi, &kube_vmi, ns, NULL, &vmi_ops, on_vmi, c) < 0 ||
            kube_informer_init(&c->pods, cfg, c->multi, &kube_pod, ns, POD_LABEL_APP "=virt-launcher",
                               &pod_ops, on_pod, c) < 0 ||
            kube_informer_init(&c->vms, cfg, c->multi, &kube_vm, ns, NULL, &plain_ops, on_vm, c) < 0 ||
            kube_informer_init(&c->vmims, cfg, c->multi, &kube_vmim, ns, NULL, &vmim_ops, on_vmim, c) < 0 ||
            kube_informer_init(&c->policies, cfg, c->multi, &kube_migrationpolicy, NULL, NULL, &policy_ops,
                               on_policy, c) < 0 ||
            kube_informer_init(&c->snapshots, cfg, c->multi, &kube_vmsnapshot, ns, NULL, &snapshot_ops,
                               on_snapshot, c) < 0 ||
            kube_informer_init(&c->restores, cfg, c->multi, &kube_vmrestore, ns, NULL, &restore_ops,
                               on_restore, c) < 0 ||
            kube_informer_init(&c->dvs, cfg, c->multi, &kube_datavolume, ns, NULL, &plain_ops, on_dv, c) <
                0 ||
            kube_informer_init(&c->datasources, cfg, c->multi, &kube_datasource, ns, NULL, &datasource_ops,
                               on_datasource, c) < 0 ||
            kube_informer_init(&c->replicasets, cfg, c->multi, &kube_vmirs, ns, NULL, &plain_ops, on_vmirs,
                               c) < 0 ||
            kube_informer_init(&c->pools, cfg, c->multi, &kube_vmpool, ns, NULL, &plain_ops, on_vmpool, c) <
                0 ||
            kube_informer_init(&c->importers, cfg, c->multi, &kube_pod, ns, "app=" DV_IMPORTER_APP,
                               &plain_ops, on_importer, c) < 0 ||
            kube_informer_init(&c->attachers, cfg, c->multi, &kube_pod, ns, POD_LABEL_APP "=" HP_POD_APP,
                               &attacher_ops, on_attacher, c) < 0)
                return kv_error_errno(err, ENOMEM, "informers");
        optional_groups_init(c);
        if (opts->metrics_addr && *opts->metrics_addr)
                return metrics_server_start(c, opts->metrics_addr, &c->metrics, err);
        return 0;
}

static int start_workers(controller *c, kv_error *err)
{
        c->threads = calloc(c->opts.workers, sizeof(pthread_t));
        if (!c->threads)
                return kv_error_errno(err, ENOMEM, "workers");
        for (; c->nthreads < c->opts.workers; c->nthreads++) {
                int r = pthread_create(&c->threads[c->nthreads], NULL, worker, c);
                if (r)
                        return kv_error_errno(err, r, "pthread_create");
        }
        return 0;
}

static long min_timeout(long a, long b)
{
        if (a < 0)
                return b;
        if (b < 0)
                return a;
        return a < b ? a : b;
}

static void drain_transfers(controller *c)
{
        kube_informer *infs[] = INFORMERS(c);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(c->multi, &left)))
                if (msg->msg == CURLMSG_DONE)
                        for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
                                if (kube_informer_transfer_done(infs[i], msg->easy_handle, msg->data.result,
                                                                kv_now_ms()))
                                        break;
}

/* The caches of the VMI/VM/VMIM/Pod machinery; optional groups' informers never hold it back. */
static bool core_synced(const controller *c)
{
        return c->vmis.synced && c->pods.synced && c->vms.synced && c->vmims.synced && c->importers.synced &&
               c->attachers.synced;
}

int controller_run(controller *c, kv_error *err)
{
        kube_informer *infs[] = INFORMERS(c);
        while (!c->stop) {
                uint64_t now = kv_now_ms();
                long timeout = min_timeout(1000, optional_groups_tick(c, now));
                for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
                        timeout = min_timeout(timeout, kube_informer_tick(infs[i], now));
                if (core_synced(c) && !c->synced) {
                        /* workers start only on a complete cache: a missing Pod must mean no Pod */
                        c->synced = true;
                        malloc_trim(0); /* hand back the list responses' transient memory */
                        log_info("caches synced (%zu VMIs, %zu Pods); starting %u workers",
                                 kube_store_size(&c->vmis.store), kube_store_size(&c->pods.store),
                                 c->opts.workers);
                        int r = start_workers(c, err);
                        if (r < 0)
                                return r;
                }
                struct curl_waitfd extra = {.fd = -1, .events = CURL_WAIT_POLLIN};
                if (c->metrics) {
                        extra.fd = metrics_server_fd(c->metrics);
                        timeout = min_timeout(timeout, metrics_server_timeout(c->metrics));
                }
                int running;
                curl_multi_poll(c->multi, extra.fd >= 0 ? &extra : NULL, extra.fd >= 0 ? 1 : 0, (int)timeout,
                                NULL);
                curl_multi_perform(c->multi, &running);
                drain_transfers(c);
                if (c->metrics)
                        metrics_server_run(c->metrics);
        }
        return 0;
}

void controller_stop(controller *c)
{
        c->stop = true;
        if (c->multi)
                curl_multi_wakeup(c->multi);
}

void controller_free(controller *c)
{
        if (c->queue)
                kube_workqueue_shutdown(c->queue);
        for (unsigned i = 0; i < c->nthreads; i++)
                pthread_join(c->threads[i], NULL);
        free(c->threads);
        metrics_server_stop(c->metrics);
        kube_informer *infs[] = INFORMERS(c);
        for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
                if (infs[i]->res)
                        kube_informer_free(infs[i]);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        if (c->queue)
                kube_workqueue_free(c->queue);
        if (c->pod_exp)
                expectations_free(c->pod_exp);
        if (c->vmi_exp)
                expectations_free(c->vmi_exp);
        if (c->vmim_exp)
                expectations_free(c->vmim_exp);
}
