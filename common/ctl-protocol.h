/* The launcher's control socket as both of its ends know it (docs/launcher-control.md): the line limit and
 * the one table of verbs. virt-launcher's command table, its `help`, liveops-driver and the reporter's
 * requests all name verbs from here, so the lists cannot drift apart. */
#pragma once

#define CTL_LINE_MAX (64 * 1024) /* one request or reply line, newline included */

/* X(ID, "verb", "summary for `help`") */
#define CTL_VERBS(X)                                                                                         \
        X(HELP, "help", "list the commands")                                                                 \
        X(STATUS, "status", "the launcher status (same document as --status-file)")                          \
        X(PAUSE, "pause", "pause the guest (QMP stop)")                                                      \
        X(UNPAUSE, "unpause", "resume the guest (QMP cont)")                                                 \
        X(SHUTDOWN, "shutdown", "ACPI power button, then quit and SIGKILL after the grace period")           \
        X(SOFTREBOOT, "softreboot", "ACPI power button; the guest's power-off becomes a reset (reboot)")     \
        X(CONSOLE, "console", "switch this connection to the raw serial console stream")                     \
        X(HOTPLUG_DISK, "hotplug-disk", "hot-plug a disk {name,path,format,bus:virtio|scsi}")                \
        X(UNPLUG_DISK, "unplug-disk", "unplug a disk {name}")                                                \
        X(HOTPLUG_NIC, "hotplug-nic", "hot-plug a NIC {name,mac}")                                           \
        X(UNPLUG_NIC, "unplug-nic", "unplug a NIC {name}")                                                   \
        X(SET_CPUS, "set-cpus", "plug vCPUs up to {sockets} (never unplugs)")                                \
        X(SET_MEMORY, "set-memory", "resize guest memory to {bytes} (virtio-mem)")                           \
        X(SNAPSHOT_SAVE, "snapshot-save", "snapshot RAM and disks as {tag,id}")                              \
        X(SNAPSHOT_LOAD, "snapshot-load", "restore snapshot {tag,id}")                                       \
        X(SNAPSHOT_DELETE, "snapshot-delete", "delete snapshot {tag,id}")                                    \
        X(SNAPSHOT_LIST, "snapshot-list", "list snapshots")                                                  \
        X(MIGRATE, "migrate", "live-migrate to {uri,nbdPort,config}; the source quits when done")            \
        X(MIGRATE_CANCEL, "migrate-cancel", "cancel the running migration")                                  \
        X(MIGRATE_STATUS, "migrate-status", "migrationState of the last migration")                          \
        X(MIGRATION_TARGET, "migration-target", "receive a migration on {uri,nbdPort,config}")               \
        X(MIGRATION_TARGET_FINISH, "migration-target-finish", "after the source completed: cont")            \
        X(APPLY, "apply", "apply a changed VMI {vmi}: hot-plug what differs")                                \
        X(HOTPLUG_ATTACH, "hotplug-attach",                                                                  \
          "take hot-plugged claim {volume}'s open disk image (the fd by SCM_RIGHTS; virt-handler)")

#define CTL_VERB_ENUM_(id, name, summary) CTL_VERB_##id,
typedef enum ctl_verb { CTL_VERBS(CTL_VERB_ENUM_) CTL_VERB__MAX } ctl_verb;
#undef CTL_VERB_ENUM_

/* "migration-target"; NULL for a value outside the table. */
const char *ctl_verb_name(ctl_verb v);
const char *ctl_verb_summary(ctl_verb v);
/* The verb named `name`, or -1. */
int ctl_verb_from_name(const char *name);
