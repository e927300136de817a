/* liveops-control: the control-socket commands of the live operations (hot-plug, snapshots, migration).
 * Compiled into virt-launcher; control-commands.c splices LIVEOPS_CTL_COMMANDS into ctl_commands[]. */
#pragma once

#include "control.h"

int liveops_ctl_hotplug_disk(ctl_request *req);
int liveops_ctl_unplug_disk(ctl_request *req);
int liveops_ctl_hotplug_nic(ctl_request *req);
int liveops_ctl_unplug_nic(ctl_request *req);
int liveops_ctl_set_cpus(ctl_request *req);
int liveops_ctl_set_memory(ctl_request *req);
/* snapshot-save/-load/-delete: args {tag, id}; with the optional id (≤ 128 bytes) the outcome is recorded
 * in the status' snapshotOperations; each refreshes the status' snapshots (docs/cluster-snapshots.md). */
int liveops_ctl_snapshot_save(ctl_request *req);
int liveops_ctl_snapshot_load(ctl_request *req);
int liveops_ctl_snapshot_delete(ctl_request *req);
int liveops_ctl_snapshot_list(ctl_request *req);
int liveops_ctl_migrate(ctl_request *req);
int liveops_ctl_migrate_cancel(ctl_request *req);
int liveops_ctl_migrate_status(ctl_request *req);
/* Target side: a launcher started with --incoming (QEMU at -incoming defer, phase Scheduled). */
int liveops_ctl_migration_target(ctl_request *req);
int liveops_ctl_migration_target_finish(ctl_request *req);
/* Called by the supervisor instead of `cont` when started with --incoming URI|defer: a URI is
 * prepared at once with the --incoming-config configuration (default: the defaults). */
int liveops_target_boot(supervisor *s, const char *incoming, kv_error *err);
/* The supervisor's QMP event handler passes MIGRATION events here: on a target whose incoming migration
 * completed, the launcher finishes by itself (exports released, `cont`, phase Running). */
void liveops_on_migration_event(supervisor *s, const cJSON *data);
/* VMI reload: the new spec (args.vmi, JSON/YAML text or object) diffed against the running one and
 * applied as hot-plug operations (liveops-apply.c). */
int liveops_ctl_apply(ctl_request *req);

/* clang-format off */
#define LIVEOPS_CTL_COMMANDS \
	{"hotplug-disk", liveops_ctl_hotplug_disk, "hot-plug a disk {name,path,format,bus:virtio|scsi}"}, \
	{"unplug-disk", liveops_ctl_unplug_disk, "unplug a disk {name}"}, \
	{"hotplug-nic", liveops_ctl_hotplug_nic, "hot-plug a NIC {name,mac}"}, \
	{"unplug-nic", liveops_ctl_unplug_nic, "unplug a NIC {name}"}, \
	{"set-cpus", liveops_ctl_set_cpus, "plug vCPUs up to {sockets} (never unplugs)"}, \
	{"set-memory", liveops_ctl_set_memory, "resize guest memory to {bytes} (virtio-mem)"}, \
	{"snapshot-save", liveops_ctl_snapshot_save, "snapshot RAM and disks as {tag,id}"}, \
	{"snapshot-load", liveops_ctl_snapshot_load, "restore snapshot {tag,id}"}, \
	{"snapshot-delete", liveops_ctl_snapshot_delete, "delete snapshot {tag,id}"}, \
	{"snapshot-list", liveops_ctl_snapshot_list, "list snapshots"}, \
	{"migrate", liveops_ctl_migrate, "live-migrate to {uri,nbdPort,config}; the source quits when done"}, \
	{"migrate-cancel", liveops_ctl_migrate_cancel, "cancel the running migration"}, \
	{"migrate-status", liveops_ctl_migrate_status, "migrationState of the last migration"}, \
	{"migration-target", liveops_ctl_migration_target, "receive a migration on {uri,nbdPort,config}"}, \
	{"migration-target-finish", liveops_ctl_migration_target_finish, "after the source completed: cont"}, \
	{"apply", liveops_ctl_apply, "apply a changed VMI {vmi}: hot-plug what differs"}
/* clang-format on */
