/* vmpool: the VirtualMachinePool reconciler's parts (reconcile-vmpool.c: scaling; vmpool-update.c: revisions
 * and the rollout of template changes, as KubeVirt's pool controller). */
#pragma once
#include <cjson/cJSON.h>

#include "controller.h"

/* KubeVirt's label on a pool's VMs and their template (so on their VMIs): the ControllerRevision, named
 * <pool>-<generation> and holding the pool's spec, the VM was last written from. */
#define POOL_REVISION_LABEL "kubevirt.io/vm-pool-revision-name"

/* The VM <name> of index idx from the pool's template (KubeVirt's indexVMSpec), labelled with revision. */
cJSON *pool_vm_for(const cJSON *pool, const char *name, long idx, const char *revision);
/* The index at the end of "<pool>-<index>", or -1. */
long pool_vm_index(const char *pool, const char *name);

/* The pool's current revision (created when missing), its name in name (at least 300 bytes). */
int pool_revision_ensure(kube_client *api, const cJSON *pool, char *name, size_t len, kv_error *err);

/* KubeVirt's update pass over the n VMs the pool counts: a VM written from an older template is rewritten
 * from the current one (always); then, unless spec.updateStrategy is opportunistic or unmanaged, a VMI
 * started from an older template is restarted (deleted, for its VM to start it again): at once when it is
 * not Ready, else within spec.maxUnavailable (default 100%); a VMI whose template did not change only gets
 * the new revision label. Revisions no VM or VMI names any more are deleted. A VM the API refuses to update
 * leaves its message in failure (len bytes), for the ReplicaFailure condition. */
int pool_update(controller *c, kube_client *api, const cJSON *pool, const char *revision,
                const cJSON *const *vms, int n, char *failure, size_t len, kv_error *err);
