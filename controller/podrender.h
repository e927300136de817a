/* VMI → launcher Pod: the pure renderer behind "exactly one Pod per VMI" (see /docs/controller.md for
 * the Pod shape and the memory overhead formula). Golden-file tested. */
#pragma once
#include "kvlite-annotations.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct pod_render_opts {
        const char *launcher_image;
        const char *service_account; /* NULL = none */
        /* KubeVirt's developerConfiguration.useEmulation: request no devices.kubevirt.io/kvm (and no
         * vhost-net), so the Pod runs under TCG on any node. Otherwise it lands only where KVM is usable. */
        bool use_emulation;
        const cJSON *tolerations; /* the cluster's default tolerations for launcher Pods (array), or NULL */
        /* containerDisks that are registry references (not local directories) are pulled by an init container
         * running this image's kvlite-importer --container-disk into an emptyDir; NULL = image volumes */
        const char *importer_image;
        const char *registry_secret; /* the Secret in the VMI's namespace with registries.yaml; NULL = none */
        /* The node directory where virt-handler serves its API-server relay (virt-handler --api-relay-dir):
         * mounted read-only at POD_NODE_RELAY_MOUNT, and the reporter told to reach the API server through
         * the socket there, as a Pod whose address the guest took (bridge binding) has no other way. NULL =
         * the reporter connects to KUBERNETES_SERVICE_HOST itself. */
        const char *api_relay_dir;
        /* Volumes that reach the launcher through attachment Pods, not through this Pod (a migration target's
         * hot-plugged claims the source Pod did not mount either, docs/hotplug-volumes.md): NULL-terminated,
         * NULL = none. */
        const char *const *attached_volumes;
} pod_render_opts;

#define POD_NODE_SELECTOR_SCHEDULABLE "kubevirt.io/schedulable"
#define POD_RESOURCE_KVM "devices.kubevirt.io/kvm"
#define POD_RESOURCE_TUN "devices.kubevirt.io/tun"
#define POD_RESOURCE_VHOST_NET "devices.kubevirt.io/vhost-net"
#define POD_RESOURCE_VHOST_VSOCK "devices.kubevirt.io/vhost-vsock"

#define POD_LABEL_APP "kubevirt.io"
#define POD_LABEL_CREATED_BY "kubevirt.io/created-by"
#define POD_LABEL_VM_NAME "vm.kubevirt.io/name"
#define POD_LABEL_VMI_ID "vmi.kubevirt.io/id" /* KubeVirt >= 1.7's virtctl expose selector */
#define POD_ANNOTATION_MULTUS_NETWORKS "k8s.v1.cni.cncf.io/networks"
#define POD_ANNOTATION_LAUNCHER_STATUS KVLITE_ANN_LAUNCHER_STATUS
#define POD_ANNOTATION_MIGRATION_POLICY "kvlite.io/migration-policy"
#define POD_ANNOTATION_MIGRATION_CONFIG "kvlite.io/migration-configuration"
#define LAUNCHER_RUN_DIR "/var/run/kvlite"
#define POD_REGISTRY_MOUNT "/etc/kvlite/registries"
#define POD_NODE_RELAY_MOUNT "/var/run/kvlite-node"
#define POD_NODE_RELAY_SOCKET "apiserver.sock"      /* in api_relay_dir, virt-handler's listener */
#define POD_CONTAINER_DISK_PREFIX "container-disk-" /* init container per pulled containerDisk volume */
#define POD_LABEL_MIGRATION_JOB "kubevirt.io/migrationJobUID"

/* Bytes the Pod needs beyond guest memory: virt-launcher, QEMU's own allocations, page tables, vCPU
 * threads and the TCG translation cache. */
uint64_t pod_memory_overhead(uint64_t guest_bytes, unsigned vcpus);

/* A toleration from KEY[=VALUE]:EFFECT (kubectl taint's syntax): operator Equal with a value, Exists
 * without; EFFECT NoSchedule, PreferNoSchedule or NoExecute. NULL with err naming the part at fault. */
cJSON *pod_toleration_parse(const char *spec, kv_error *err);

/* Renders the Pod for a VMI. -EINVAL with the VMI field path when the VMI cannot run (validation by the
 * launcher's own VMI model, so the controller and launcher agree). */
int pod_render(const cJSON *vmi, const pod_render_opts *opts, cJSON **pod, kv_error *err);
/* The Pod volume of the VMI's backend storage claim (backendstorage.h), and whether a Pod has it. */
#define POD_BACKEND_STORAGE_VOLUME "persistent-state"
bool pod_uses_backend_storage(const cJSON *pod);
/* The VMI as handed to the launcher in KVLITE_VMI: identity, labels, annotations and spec only. */
cJSON *pod_launcher_vmi(const cJSON *vmi);
/* The migration target Pod: pod_render() plus `--incoming tcp:0.0.0.0:49152 --incoming-nbd 0.0.0.0:49153
 * --incoming-config <config as compact JSON>` (the resolved MigrationConfiguration the source will get too,
 * so both QEMUs set the same capabilities), the label kubevirt.io/migrationJobUID=<migration_uid>, the same
 * JSON in the annotation kvlite.io/migration-configuration and, with a policy,
 * kvlite.io/migration-policy=<policy>. The hand-over reads them back (pod_migration_config), so a policy
 * changed meanwhile cannot make the two sides differ. */
int pod_render_migration_target(const cJSON *vmi, const pod_render_opts *opts, const char *migration_uid,
                                const cJSON *config, const char *policy, cJSON **pod, kv_error *err);
/* What pod_render_migration_target rendered, from the annotations: *config (owned; NULL when the Pod has
 * none, i.e. a launcher started with the defaults) and the policy name ("" for none, points into pod).
 * -EINVAL when the argument is not a JSON object. */
int pod_migration_config(const cJSON *pod, cJSON **config, const char **policy, kv_error *err);

/* Adds a Pod volume `name` of `kind` (src consumed) to vols and its mount at path to mounts. */
void pod_add_volume(cJSON *vols, cJSON *mounts, const char *name, const char *kind, cJSON *src,
                    const char *path, bool read_only);
