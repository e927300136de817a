/* vmi-diff: old VMI spec vs new VMI spec → the live operations that turn one into the other (pure), and
 * their application over QMP. An edited file (local launcher) and an API update (cluster) both come
 * through here. Also KubeVirt-style status.volumeStatus entries. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "hotplug.h"
#include "qmp.h"
#include "vmi.h"

typedef enum {
        LIVEOP_DISK_REMOVE,
        LIVEOP_NIC_REMOVE,
        LIVEOP_DISK_ADD,
        LIVEOP_NIC_ADD,
        LIVEOP_CPU_SET,
        LIVEOP_MEMORY_SET
} liveop_kind;

typedef struct liveop {
        liveop_kind kind;
        char name[128]; /* disk / interface name */
        size_t index;   /* *_ADD: index into the new VMI's disks / interfaces */
        uint64_t value; /* CPU_SET: sockets; MEMORY_SET: bytes */
} liveop;

typedef struct liveop_plan {
        liveop *ops; /* removals first, then additions, then CPU, then memory */
        size_t n;
        char restart_reason[256]; /* changed fields that need a restart (KubeVirt: RestartRequired); "" = none
                                   */
} liveop_plan;

/* -EINVAL naming the field for changes that are refused (vCPU unplug, beyond maxSockets/maxGuest,
 * a disk or interface changed in place). */
int vmi_diff(const vmi *old_vmi, const vmi *new_vmi, liveop_plan *plan, kv_error *err);
void liveop_plan_free(liveop_plan *plan);
const char *liveop_kind_name(liveop_kind k);
cJSON *liveop_plan_to_json(const liveop_plan *plan);

/* One operation as hotplug.c's steps, for a caller that runs them on its loop (*o freeable either way). */
int liveop_hp_op(const vmi *new_vmi, const liveop *op, int timeout_ms, hp_op *o, kv_error *err);

/* status.volumeStatus: upsert {name, target, phase, reason, message, hotplugVolume} by name (phase NULL
 * removes the entry). */
void volume_status_set(cJSON *volume_status, const char *name, const char *phase, const char *reason,
                       const char *message, bool hotplug);
