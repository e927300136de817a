/* backendstorage: KubeVirt's backend storage claim, persistent-state-for-<VMI name>, that keeps a
 * persistent TPM's and EFI's state (devices.tpm.persistent, bootloader.efi.persistent) across launches. The
 * controller makes it before the VMI's launcher Pod, owned by the VM the VMI belongs to (so a VM restart
 * keeps it) or else by the VMI; the Pod mounts it where the launcher's PVC root has it (podrender.c). */
#pragma once
#include <cjson/cJSON.h>

#include "api.h"

#define BACKEND_STORAGE_SIZE "10Mi"
#define BACKEND_STORAGE_LABEL "persistent-state-for" /* its value: the VMI's name, as KubeVirt labels it */

/* The claim for vmi exists (created when missing; an existing claim of that name is used as it is). */
int backend_storage_ensure(kube_client *api, const cJSON *vmi_obj, kv_error *err);
