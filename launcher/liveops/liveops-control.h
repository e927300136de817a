/* liveops-control: the control-socket commands of the live operations (hot-plug, snapshots, migration).
 * Compiled into virt-launcher; control-commands.c splices LIVEOPS_CTL_HANDLERS into ctl_handlers[]. The
 * live operations see the launcher only through liveops_host; their own state is one liveops object. */
#pragma once

#include "control-server.h"
#include "qmp-seq.h"

struct vmi;
struct launcher_paths;

/* What the live operations may see of, and ask from, the launcher that hosts them. */
typedef struct liveops_host {
        void *ctx; /* passed back to the callbacks */
        loop *loop;
        status *st;
        /* --incoming and its companions (sup_config); incoming NULL: not a migration target */
        const char *incoming, *incoming_config, *incoming_nbd_host;
        int incoming_nbd_port;
        struct vmi **vmi;                   /* the running spec, replaced by `apply` */
        const struct launcher_paths *paths; /* to prepare the volumes an `apply` adds */
        qmp *(*qmp)(void *ctx);             /* the launcher's monitor; NULL once gone */
        bool (*stopping)(void *ctx);        /* a stop was requested */
        void (*publish)(void *ctx);         /* write the status (and hand it to the reporter) */
        void (*qmp_rearm)(void *ctx);       /* after queueing QMP commands outside a QMP callback */
        void (*request_stop)(void *ctx, const char *why);
        /* Stop the VM and end the launcher Failed with this reason. */
        void (*fail)(void *ctx, const char *why);
        /* A clean QEMU exit ends the launcher Succeeded with this reason ("Migrated"). */
        void (*set_end_reason)(void *ctx, const char *reason);
        /* The guest agent (may be NULL: none): runs `execute` and calls cb once with its "return" or NULL
         * and why; returns a handle for agent_cancel, or 0 without calling cb when no agent is connected. */
        unsigned (*agent_command)(void *ctx, const char *execute, int timeout_ms,
                                  void (*cb)(const cJSON *ret, const char *why, void *data), void *data);
        void (*agent_cancel)(void *ctx, unsigned handle);
} liveops_host;

typedef struct liveops liveops;

/* host is copied. */
int liveops_new(const liveops_host *host, liveops **out);
/* After the QMP connection is gone (its callbacks have run), before the loop is freed. */
void liveops_free(liveops *lo);
/* The hosting launcher's liveops (the supervisor keeps it). */
liveops *liveops_of(ctl_request *req);

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
int liveops_target_boot(liveops *lo, kv_error *err);
/* A migration target whose spec has deferred volumes (hot-plugged claims its Pod does not mount) takes the
 * stream only once virt-handler attached each of them (hotplug-attach) and they are plugged as on the source;
 * liveops-apply.c calls this after each attach. */
void liveops_target_attached(liveops *lo);
/* The first deferred volume of the running spec (only those without an fd set yet: unattached), or NULL. */
const char *liveops_deferred_volume(liveops *lo, bool unattached);
/* Plugs the deferred volumes from their fd sets, one after the other, then calls done (liveops-apply.c). */
void liveops_plug_deferred(liveops *lo, void (*done)(liveops *lo, int r, const kv_error *err));
/* The supervisor's QMP event handler passes every event here. MIGRATION: on a target whose incoming
 * migration completed, the launcher finishes by itself (exports released, `cont`, phase Running); on a
 * source, the next progress poll comes at once. JOB_STATUS_CHANGE: a snapshot job's end. */
void liveops_on_qmp_event(liveops *lo, const char *name, const cJSON *data);
/* 0 when QMP commands may run on the VM now (phase `phase`, no stop, no snapshot job in flight), else
 * -EBUSY with why in err. For liveops-apply.c. */
int liveops_vm_usable(liveops *lo, enum phase phase, kv_error *err);
const liveops_host *liveops_host_of(liveops *lo);
/* An operation of liveops-apply.c in flight (what: "apply"): other live operations are refused with EBUSY
 * until it ends (what NULL); cancel(data) runs if the launcher ends first. */
void liveops_set_busy(liveops *lo, const char *what, void (*cancel)(void *data), void *data);
/* How liveops-apply.c runs QMP steps on the launcher's loop. */
lo_seq_host liveops_seq_host(liveops *lo);
/* VMI reload: the new spec (args.vmi, JSON/YAML text or object) diffed against the running one and
 * applied as hot-plug operations (liveops-apply.c). */
int liveops_ctl_apply(ctl_request *req);
/* hotplug-attach {volume} + an fd (SCM_RIGHTS): virt-handler hands over the disk image of a claim mounted by
 * an attachment Pod (docs/hotplug-volumes.md). The fd goes into a QEMU fd set (add-fd); an `apply` adding
 * that volume opens /dev/fdset/N instead of <pvc-root>/<volume>/disk.img. Idempotent per volume. */
int liveops_ctl_hotplug_attach(ctl_request *req);
/* The fd set holding volume `name`'s image (hotplug-attach), or -1. */
int liveops_attached_fdset(liveops *lo, const char *name);
/* Records it with the image's directory (dirfd, -1 = none; taken: closed when forgotten), -ENOSPC when the
 * table is full; or forgets it (fdset < 0). */
int liveops_attached_set(liveops *lo, const char *name, int fdset, int dirfd);
/* The directory of the image in fd set `fdset` (a descriptor the launcher keeps), or -1. */
int liveops_attached_dir(liveops *lo, int fdset);
/* Their rows in ctl_handlers[] (control-commands.c); names and summaries are ctl-protocol.h's. */
#define LIVEOPS_CTL_HANDLERS                                                                                 \
        [CTL_VERB_HOTPLUG_DISK] = liveops_ctl_hotplug_disk,                                                  \
        [CTL_VERB_UNPLUG_DISK] = liveops_ctl_unplug_disk, [CTL_VERB_HOTPLUG_NIC] = liveops_ctl_hotplug_nic,  \
        [CTL_VERB_UNPLUG_NIC] = liveops_ctl_unplug_nic, [CTL_VERB_SET_CPUS] = liveops_ctl_set_cpus,          \
        [CTL_VERB_SET_MEMORY] = liveops_ctl_set_memory,                                                      \
        [CTL_VERB_SNAPSHOT_SAVE] = liveops_ctl_snapshot_save,                                                \
        [CTL_VERB_SNAPSHOT_LOAD] = liveops_ctl_snapshot_load,                                                \
        [CTL_VERB_SNAPSHOT_DELETE] = liveops_ctl_snapshot_delete,                                            \
        [CTL_VERB_SNAPSHOT_LIST] = liveops_ctl_snapshot_list, [CTL_VERB_MIGRATE] = liveops_ctl_migrate,      \
        [CTL_VERB_MIGRATE_CANCEL] = liveops_ctl_migrate_cancel,                                              \
        [CTL_VERB_MIGRATE_STATUS] = liveops_ctl_migrate_status,                                              \
        [CTL_VERB_MIGRATION_TARGET] = liveops_ctl_migration_target,                                          \
        [CTL_VERB_MIGRATION_TARGET_FINISH] = liveops_ctl_migration_target_finish,                            \
        [CTL_VERB_APPLY] = liveops_ctl_apply, [CTL_VERB_HOTPLUG_ATTACH] = liveops_ctl_hotplug_attach
