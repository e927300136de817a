/* liveops-command: one live operation named by its control-socket verb with JSON arguments, shared by the
 * launcher's control socket and liveops-driver so both speak the same commands. */
#pragma once

#include <cjson/cJSON.h>

#include "error.h"
#include "hotplug.h"
#include "migration.h"
#include "qmp.h"

/* Verbs: hotplug-disk {name,path,format,bus,readonly,serial}, unplug-disk {name,timeoutMs},
 * hotplug-nic {name,mac}, unplug-nic {name}, set-cpus {sockets}, set-memory {bytes,max,timeoutMs},
 * snapshot-save|snapshot-load|snapshot-delete {tag}, snapshot-list, migration-target {uri,nbdPort,config},
 * migration-target-finish {timeoutMs}, migrate {uri,nbdPort,config,timeoutMs} (blocking); the names are
 * ctl-protocol.h's.
 * *result (may stay NULL) gets extra members for the answer. -EINVAL for an unknown verb. */
int liveops_command(qmp *q, const char *verb, const cJSON *args, cJSON **result, kv_error *err);
/* KubeVirt MigrationConfiguration member names → migration_config (absent = launcher default),
 * validated: config must be an object (or absent/null: the defaults), bandwidthPerMigration a
 * byte count (a number or a Kubernetes quantity such as "64Mi"), the timeouts, parallelMigrationThreads and
 * downtimeMs whole numbers, the allow and disable flags booleans; other members (KubeVirt fields that do not
 * apply here) are ignored. -EINVAL naming `where` and the field, e.g.
 * `--incoming-config: completionTimeoutPerGiB: must be a whole number from 0 to 1000000`. */
int liveops_parse_migration_config(const cJSON *config, const char *where, migration_config *out,
                                   kv_error *err);
/* The hot-plug verbs (hotplug-disk, hotplug-nic, unplug-disk, unplug-nic, set-cpus, set-memory) with their
 * arguments as an hp_op to step (the launcher runs it on its loop). -EINVAL on bad arguments, -ENOENT for
 * another verb; *o is freeable (hp_op_free) either way. */
int liveops_hp_op(const char *verb, const cJSON *args, hp_op *o, kv_error *err);
