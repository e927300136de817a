/* The controller's end of the snapshot channel (docs/cluster-snapshots.md): the VMI annotation
 * kvlite.io/snapshot-requests it writes, and the results the VM's launcher reports in its Pod's status
 * (snapshotOperations, snapshots). Shared by the VirtualMachineSnapshot and VirtualMachineRestore
 * reconcilers.
 */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"

#define SNAPSHOT_REQUESTS_ANNOTATION "kvlite.io/snapshot-requests"
/* On a VirtualMachineSnapshotContent: "claims" when its volumeBackups are claims it owns (a stopped VM's
 * snapshot), each volumeSnapshotName naming the claim; absent: qcow2 snapshots inside the VM's images. */
#define CONTENT_ANN_BACKUPS "kvlite.io/volume-backups"
/* On a content with claims: "launcher" when a running VM's launcher made the point-in-time copy the clone
 * Pods read (`disk.img.vmsnapshot-<snapshot uid>` next to each claim's disk.img); absent: a stopped VM's. */
#define CONTENT_ANN_SOURCE "kvlite.io/backup-source"
#define BACKUP_FILE_SUFFIX ".vmsnapshot-" /* the launcher's backup of an image: <image>.vmsnapshot-<uid> */
#define BACKUP_FILE_PREFIX "disk.img" BACKUP_FILE_SUFFIX
/* On a content with hostDisk backups: the node their images are on (the running VM's, or the one its template
 * pins with nodeSelector kubernetes.io/hostname); absent: any node (a one-node cluster). */
#define CONTENT_ANN_NODE "kvlite.io/backup-node"
#define NODE_HOSTNAME_LABEL "kubernetes.io/hostname"

typedef struct controller controller;

/* What the reconcilers see of one VM: its VMI (cached copy, NULL = none), whether it runs, and the status of
 * the launcher that speaks for it (the migration's active Pod), parsed (NULL = none yet). */
typedef struct snapshot_vm {
        cJSON *vmi;
        cJSON *launcher_status;
        bool running;
} snapshot_vm;

int snapshot_vm_observe(controller *c, const char *ns, const char *name, snapshot_vm *vm, kv_error *err);
void snapshot_vm_free(snapshot_vm *vm);

/* When the VM does not run, its refusal in buf: "VirtualMachine <name> stopped before the <what> completed"
 * once request id was made, else "VirtualMachine <name> is not running: <why>"; false when it runs. */
bool snapshot_vm_refuses(const snapshot_vm *vm, const char *name, const char *id, const char *what,
                         const char *why, char *buf, size_t size);
/* The launcher's record of operation id (with op, "save|load|delete"), or NULL. */
const cJSON *snapshot_vm_result(const snapshot_vm *vm, const char *id, const char *op);
/* The launcher's snapshots[] entry for tag, or NULL. */
const cJSON *snapshot_vm_snapshot(const snapshot_vm *vm, const char *tag);

/* Whether a VirtualMachineSnapshotContent's backups are claims (CONTENT_ANN_BACKUPS). */
bool content_has_claims(const cJSON *content);
/* A content's annotation key, or NULL. */
const char *content_annotation(const cJSON *content, const char *key);
/* Whether its claims are copies of a running VM's backups (CONTENT_ANN_SOURCE). */
bool content_from_launcher(const cJSON *content);

/* Whether the cached VMI's requests hold id. */
bool snapshot_request_present(const cJSON *vmi, const char *id);
/* Adds {id, op, tag} (at the end, once) or, with op NULL, removes id from the VMI's requests: a
 * read-modify-write of the fresh VMI, retried on conflict. A VMI that is gone is no error. Skips the write
 * when the cached VMI already says so. */
int snapshot_request_set(kube_client *api, const cJSON *vmi, const char *id, const char *op, const char *tag,
                         kv_error *err);
