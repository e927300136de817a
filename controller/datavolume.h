/* DataVolumes (cdi.kubevirt.io/v1beta1): the DataVolume reconciler (reconcile-dv.c: claim, importer Pod,
 * CDI's status) and the VM side (vm-datavolumes.c: dataVolumeTemplates created or adopted, a VMI held back
 * until its DataVolumes are ready, DataVolumes kept when the VM is deleted). docs/datavolumes.md. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "api.h"

#define DV_IMPORTER_APP "containerized-data-importer" /* label app= of importer Pods, as CDI's */
#define DV_IMPORTER_PREFIX "importer-"
#define DV_ANN_RETAINED "kvlite.io/retained-from-vm" /* on a DataVolume its deleted VM left behind */
#define DV_ANN_ALLOW_ADOPTION "cdi.kubevirt.io/allowClaimAdoption"
#define VM_DV_FINALIZER "kubevirt.io/virtualMachineControllerFinalize"

/* What a VM waits for before its VMI, worst first wins: KubeVirt's printableStatus for each. */
enum dv_wait { DV_WAIT_NONE, DV_WAIT_BINDING, DV_WAIT_PROVISIONING, DV_WAIT_ERROR };

typedef struct controller controller;
struct pod_render_opts;
/* The cluster's registry configuration (opts.registry_config, a Secret with registries.yaml and the files it
 * names) copied as Secret copy_name into owner's namespace, where a Pod can mount it (an importer Pod, a
 * launcher Pod's containerDisk pull), owned by owner. *name = NULL when the cluster has none. */
int registry_config_copy(controller *c, kube_client *api, const cJSON *owner, const char *api_version,
                         const char *kind, const char *copy_name, char **name, kv_error *err);
/* The launcher Pod options for a VMI: the controller's, with the VMI's copy of the registry configuration
 * (Secret virt-launcher-<vmi>-registries, owned by the VMI) for its containerDisk pulls. The source Pod and
 * every migration target Pod of the VMI use the same copy. *secret (owned) is what opts->registry_secret
 * points to. */
int launcher_pod_opts(controller *c, kube_client *api, const cJSON *vmi, struct pod_render_opts *opts,
                      char **secret, kv_error *err);
/* The last line of text that is a JSON object with key (an importer's result or progress line), or NULL. */
cJSON *last_json_line(const char *text, const char *key);
/* An importer's registry report as a sentence: "served by B (digest sha256:…); passed over: A (what: why)".
 */
void describe_registry(const cJSON *rep, char *out, size_t size);
/* An Event about obj (involvedObject of api_version/kind), from virt-controller. Failures are logged. */
void post_object_event(kube_client *api, const cJSON *obj, const char *api_version, const char *kind,
                       const char *type, const char *reason, const char *message);
/* Which registry served each of the VMI's pulled containerDisks (the launcher Pods' container-disk-<volume>
 * init containers' result lines): the annotation VMI_ANN_CONTAINER_DISK_PULLS, and an Event
 * ContainerDiskPulled (or ContainerDiskPullFailed) each time a volume's pull result changes. */
int vmi_container_disk_pulls(kube_client *api, const cJSON *vmi, const cJSON *pods, kv_error *err);
#define VMI_ANN_CONTAINER_DISK_PULLS "kvlite.io/container-disk-pulls"
/* The DataVolume's controller owner reference, or NULL. */
const cJSON *dv_controller_ref(const cJSON *obj);
/* Whether obj's controller owner reference is owner (by uid). */
bool owned_by_controller(const cJSON *obj, const cJSON *owner);

/* Creates the VM's missing template DataVolumes and adopts its own (or orphaned) ones. */
int vm_datavolumes_sync(controller *c, kube_client *api, const cJSON *vm, kv_error *err);
/* The state of the DataVolumes the template's volumes name; msg says which and why. */
enum dv_wait vm_datavolumes_wait(controller *c, const cJSON *vm, char *msg, size_t size);
const char *dv_wait_printable(enum dv_wait w);
/* A deleted VM lets go of its DataVolumes: its ownerReference removed, DV_ANN_RETAINED set to its name. */
int vm_datavolumes_release(kube_client *api, const cJSON *vm, kv_error *err);
/* A renamed VM's DataVolumes go to its new VM (ownerReference and created-by label), claims untouched. */
int vm_datavolumes_move(kube_client *api, const cJSON *from, const cJSON *to, kv_error *err);
