/* Cold migration of a stopped VM (docs/cold-migration.md): its node-local claims copied to another node over
 * NBD by two short-lived Pods, verified, then the VM's volumes switched to the copies and the old claims
 * released. The request and the progress are VM annotations, so a controller restart resumes the move. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"

#define VM_ANN_COLD_MIGRATE "kvlite.io/cold-migrate"     /* the request: "" (the scheduler picks) or a node */
#define VM_ANN_COLD_MIGRATION "kvlite.io/cold-migration" /* the controller's progress and result, JSON */
#define COLD_MIGRATION_NBD_PORT 10809                    /* + the claim's index */

typedef struct controller controller;

/* Whether a cold migration holds the VM back from starting. */
bool vm_cold_migrate_holds(const cJSON *vm);
/* One step of the VM's requested cold migration; vmi: the VM's VMI when it has one.
 * 0: no request; >0: ms to come back after; <0: error. */
int vm_cold_migrate_step(controller *c, kube_client *api, const cJSON *vm, const cJSON *vmi, kv_error *err);
/* The copy's name for claim `from`: "<from>-cm1", then "-cm2" for a copy of "<x>-cm1", and so on. */
char *cold_migration_claim_name(const char *from);
