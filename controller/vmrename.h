/* A VM's rename, the controller's half (virt-api/subresources.c vm_rename starts it: the old VM fenced, the
 * new one created with the old one's spec). docs/virtctl.md "rename". */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"

/* The same names as virt-api's SUBRES_RENAME*_ANNOTATION. */
#define VM_ANN_RENAME_TO "kvlite.io/rename-to"               /* on the old VM: the name it becomes */
#define VM_ANN_RENAMED_FROM "kvlite.io/renamed-from"         /* on the new VM until the move is done */
#define VM_ANN_RENAMED_FROM_UID "kvlite.io/renamed-from-uid" /* the old VM's uid */

/* Whether a rename holds the VM back from starting: the old VM fenced, or the new one not yet finished. */
bool vm_rename_holds(const cJSON *vm);
/* On the new VM of a rename: moves the old VM's DataVolumes and instancetype revisions to it, points the
 * VirtualMachineSnapshots of the old name at it, then deletes the old VM; once the old VM is gone, drops the
 * record. Every step is idempotent, so an interrupted move is finished on the next reconcile.
 * 0: not a rename (or its record is gone); >0: ms to come back after; <0: error. */
int vm_rename_finish(kube_client *api, const cJSON *vm, kv_error *err);
