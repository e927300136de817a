/* evacuation: KubeVirt's evacuation controller. A VMI marked for evacuation (status.evacuationNodeName, set
 * by virt-api's pods/eviction webhook when `kubectl drain` evicts its launcher Pod) gets a
 * VirtualMachineInstanceMigration that moves it off that node; the migration's hand-over clears the mark
 * (vmistatus.c). One migration at a time per VMI, a failed one retried with back-off. */
#pragma once

#include <cjson/cJSON.h>
#include <time.h>

#include "error.h"

#define EVACUATION_ANNOTATION "kubevirt.io/evacuationMigration" /* value: the node evacuated */
#define EVACUATION_LABEL_VMI "kubevirt.io/vmi-name"
#define EVACUATION_GENERATE_NAME "kubevirt-evacuation-"

/* Pure. The migration to create for vmi (owned), or NULL with *retry_ms > 0 when one is due later (after a
 * failed one) or 0 when none is needed: the VMI runs on the node it is marked to leave, no migration of it
 * is in flight and none of vmims (the VMIMs naming it) is still going. now: time(NULL). */
cJSON *evacuation_migration(const cJSON *vmi, const cJSON *vmims, time_t now, int *retry_ms);

typedef struct controller controller;
typedef struct kube_client kube_client;
/* Creates the migration evacuation_migration asks for (at most one while the informer has not shown it).
 * 0, >0 ms to look again, <0 error. */
int reconcile_evacuation(controller *c, kube_client *api, const cJSON *vmi, kv_error *err);
