/* The migration view of a VMI (pure): which of its Pods speaks for it — the source until the migration
 * completed, then the target (docs/cluster-live-ops.md) — and the status.migrationState that the Pods and
 * their launchers' reports imply. Used by the VMI status (vmistatus.c) and the VMIM reconciler. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "podrender.h"

typedef struct vmi_migration_view {
        const cJSON *active; /* the Pod the VMI's status comes from (points into pods), NULL = none */
        cJSON *state;        /* the new status.migrationState (owned), NULL = none */
        bool hold;           /* the source handed over, the target has not reported yet: keep the status */
        bool lost;           /* the source handed over and the target failed: the guest is gone */
        char reason[512];    /* failureReason when this observation failed the migration */
} vmi_migration_view;

/* pods: a JSON array of the VMI's Pods (source, targets, leftovers). Free with vmi_migration_view_free. */
void vmi_migration_observe(const cJSON *vmi, const cJSON *pods, const char *now, vmi_migration_view *v);
void vmi_migration_view_free(vmi_migration_view *v);
/* status.migrationState with a migrationUid, neither completed nor failed. */
bool migration_in_flight(const cJSON *ms);
/* Why a VMI cannot be live-migrated: KubeVirt's LiveMigratable False, its reason and message. */
typedef struct migration_blocker {
        const char *reason; /* InterfaceNotLiveMigratable, HotplugNotLiveMigratable */
        char message[400];
} migration_blocker;
/* True when the VMI can be live-migrated; else false with b filled. volume_status: its status.volumeStatus as
 * the launcher reports it (the hot-plugged volumes attached now): a hot-plugged claim that is Ready migrates
 * (its attachment Pod follows the target, docs/hotplug-volumes.md), any other hot-plugged volume blocks. */
bool vmi_migratable(const cJSON *vmi, const cJSON *volume_status, migration_blocker *b);
/* The claim of a spec.volumes[] entry that is a hotpluggable persistentVolumeClaim (claimName) or dataVolume
 * (the DataVolume's name), else NULL. */
const char *vmi_volume_hotplug_claim(const cJSON *vol);
/* The Pod's kvlite.io/launcher-status annotation parsed, or NULL. */
cJSON *pod_launcher_status(const cJSON *pod);
/* The migration a Pod is the target of (its kubevirt.io/migrationJobUID label), or NULL. */
const char *pod_migration_uid(const cJSON *pod);
bool pod_is_final(const cJSON *pod);
