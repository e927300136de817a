/* The VMI status the controller wants, from the VMI and its launcher Pod: phase (Pending → Scheduling →
 * Scheduled → Running → Succeeded/Failed), nodeName, interfaces, the Ready condition, transition
 * timestamps, and the launcher's own report (kvlite.io/launcher-status) merged in. Pure. */
#pragma once

#include <cjson/cJSON.h>

/* pod may be NULL (none exists). now is an RFC 3339 timestamp. Returns a new status object. */
cJSON *vmi_status_desired(const cJSON *vmi, const cJSON *pod, const char *now);
/* The status from all the VMI's Pods (a JSON array): the active one (vmimigration.h) gives phase, node, IP
 * and conditions; migrationState and activePods follow the migration. */
cJSON *vmi_status_from_pods(const cJSON *vmi, const cJSON *pods, const char *now);
/* Status for a VMI that cannot run (validation failure): Failed with reason. */
cJSON *vmi_status_failed(const cJSON *vmi, const char *reason, const char *now);
const char *vmi_phase(const cJSON *vmi); /* "" when unset */
int vmi_phase_is_final(const char *phase);
