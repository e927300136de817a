/* virt-controller's state: informers (VMI, launcher Pod, attachment Pod, VM, VMIM, importer Pod, and while
 * their groups are served MigrationPolicy, VirtualMachineSnapshot, VirtualMachineRestore, DataVolume) on one
 * curl-multi loop thread, one work queue of "kind/namespace/name" keys, worker threads running the
 * reconcilers with their own API connections, expectations, and counters for /metrics. */
#pragma once

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "clock.h"
#include "expectations.h"
#include "json.h"
#include "macro.h"
#include "informer.h"
#include "optionalgroups.h"
#include "podrender.h"
#include "workqueue.h"

#define VMI_FINALIZER "kvlite.io/vmi-finalizer"
#define POLICY_INDEX_ALL "all" /* the index value of every MigrationPolicy in its cache */

typedef struct controller_opts {
        const char *namespace;    /* NULL = all namespaces */
        const char *metrics_addr; /* "host:port", "" = no metrics server */
        pod_render_opts pod;
        unsigned workers;
        unsigned discovery_interval_ms; /* optional API groups' discovery period; 0 = 10 s */
        const char *importer_image;     /* DataVolume importer Pods' image */
        const char *registry_config;    /* "ns/name" of the Secret with registries.yaml; NULL = none */
} controller_opts;

enum reconcile_kind {
        RK_VMI,
        RK_VM,
        RK_VMIM,
        RK_VMSNAPSHOT,
        RK_VMRESTORE,
        RK_DV,
        RK_DS,
        RK_VMIRS,
        RK_VMPOOL,
        RK__MAX
};

typedef struct controller {
        controller_opts opts;
        kube_config *cfg;
        CURLM *multi;
        kube_informer vmis, pods, vms, vmims,
            policies;                      /* policies: cluster-scoped, read at migration start */
        kube_informer snapshots, restores; /* indexed by the VM they name ("ns/vmName") */
        kube_informer dvs;                 /* cdi.kubevirt.io DataVolumes, while that group is served */
        kube_informer datasources;         /* CDI DataSources, indexed by the claim they name ("ns/name") */
        kube_informer replicasets;         /* VirtualMachineInstanceReplicaSets */
        kube_informer pools;               /* VirtualMachinePools (pool.kubevirt.io) */
        kube_informer importers;           /* DataVolume importer Pods (app=containerized-data-importer) */
        kube_informer attachers;         /* hot-plug attachment Pods (kubevirt.io=hotplug-disk) by VMI uid */
        optional_ctl optional[OPT__MAX]; /* snapshots, restores, policies: run while their group is served */
        kube_workqueue *queue;
        expectations *pod_exp, *vmi_exp, *vmim_exp; /* vmim_exp: evacuation migrations by "ns/vmi" */
        pthread_t *threads;
        unsigned nthreads;
        atomic_bool stop;
        atomic_bool synced;
        struct metrics_server *metrics;
        atomic_ulong reconciles[RK__MAX][2]; /* [kind][0=ok,1=error] */
        atomic_ulong pods_created, api_lookups;
} controller;

/* Every informer, for the loop's passes and /metrics: `kube_informer *infs[] = INFORMERS(c);` */
#define INFORMERS(c)                                                                                         \
        {                                                                                                    \
                &(c)->vmis, &(c)->pods, &(c)->vms, &(c)->vmims, &(c)->policies, &(c)->snapshots,             \
                    &(c)->restores, &(c)->dvs, &(c)->datasources, &(c)->replicasets, &(c)->pools,            \
                    &(c)->importers, &(c)->attachers                                                         \
        }

int controller_init(controller *c, kube_config *cfg, const controller_opts *opts, kv_error *err);
/* Runs until controller_stop() (from a signal handler: it only sets a flag) or a fatal error. */
int controller_run(controller *c, kv_error *err);
void controller_stop(controller *c);
void controller_free(controller *c);

/* Reconcilers (one file each). Return 0 (done), >0 (requeue after that many ms) or <0 (retry with backoff).
 */
typedef struct kube_client kube_client;
int reconcile_vmi(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vm(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vmim(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vmsnapshot(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vmrestore(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_dv(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_ds(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vmirs(controller *c, kube_client *api, const char *key, kv_error *err);
int reconcile_vmpool(controller *c, kube_client *api, const char *key, kv_error *err);
/* "ns/name" of the claim a DataSource's pvc source names (its informer's index), malloc'd, or NULL. */
char *datasource_claim_key(const cJSON *ds);
/* The attachment Pods of a VMI's hot-plugged claims (hotplugpods.c): one per claim and launcher Pod that did
 * not mount it, on that launcher's node, for each of the n launchers (the running one and, during a
 * migration, its target); deleted when the volume leaves the spec or their launcher Pod is no longer among
 * them (n = 0: the VMI stopped or is deleted). */
int reconcile_hotplug_pods(controller *c, kube_client *api, const cJSON *vmi, const cJSON *const *launchers,
                           size_t n, kv_error *err);
/* The hot-plugged claims of the VMI's spec that launcher Pod `launcher` did not mount (they reach it through
 * attachment Pods): up to max - 1 names (pointing into vmi), NULL-terminated; their count. */
size_t hotplug_unmounted(const cJSON *vmi, const cJSON *launcher, const char **names, size_t max);

#define HP_POD_APP "hotplug-disk"            /* kubevirt.io=hotplug-disk, KubeVirt's label */
#define HP_LABEL_VMI "kvlite.io/hotplug-vmi" /* the VMI's name (for the work queue) */
#define HP_LABEL_VMI_UID "kvlite.io/hotplug-vmi-uid"
#define HP_LABEL_VOLUME "kvlite.io/hotplug-volume" /* the VMI volume it attaches */

/* Shared by reconcilers. */
void controller_enqueue(controller *c, enum reconcile_kind kind, const char *ns, const char *name);
/* "ns/name" split in place into ns and name. */
int key_split(char *key, char **ns, char **name);
