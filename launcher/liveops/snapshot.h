/* snapshot: internal qcow2 snapshots. Online (QEMU running): snapshot-save/-load/-delete jobs with the
 * RAM state, over every writable qcow2 disk. Offline (QEMU not running): qemu-img snapshot on one image.
 * See docs/snapshots.md for the mapping to VirtualMachineSnapshot / VirtualMachineRestore. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"
#include "qmp.h"

#define SNAPSHOT_TIMEOUT_MS 120000

/* The VM is paused for the duration of a save or load (QEMU 7.2 is not live here), then resumes. */
int snapshot_save(qmp *q, const char *tag, int timeout_ms, kv_error *err);
int snapshot_load(qmp *q, const char *tag, int timeout_ms, kv_error *err);
int snapshot_delete(qmp *q, const char *tag, int timeout_ms, kv_error *err);
/* [{"name","vmStateSize","date","disks":[node...]}] from the disks' qcow2 headers. */
int snapshot_list(qmp *q, cJSON **out, kv_error *err);

/* The pieces of the above for a caller that runs the QMP commands itself (the launcher's loop): */
/* The arguments of `command` (snapshot-save/-load/-delete) as job `job`, over the disks of a query-block
 * reply. */
int snapshot_job_args(const cJSON *query_block, const char *command, const char *tag, const char *job,
                      cJSON **args, kv_error *err);
/* snapshot_list's result from a query-block reply. */
cJSON *snapshot_list_from(const cJSON *query_block);

/* op: "create", "apply", "delete" (qemu-img takes the image's write lock, so this fails while a QEMU
 * has it open) or "list" (*out gets the same shape as snapshot_list). qemu_img NULL = "qemu-img". */
int snapshot_offline(const char *qemu_img, const char *op, const char *image, const char *tag, cJSON **out,
                     kv_error *err);

/* Backups of raw disks (docs/cluster-snapshots.md, "Running VMs"): a VM with a writable raw disk (a claim)
 * cannot hold internal snapshots; its save instead copies each writable raw disk, at one point in time
 * (drive-backup sync=full in one transaction), into `<image>.vmsnapshot-<tag>` next to the image, where a
 * clone Pod copies it into a claim the snapshot owns; the delete of the tag removes those files. */
#define SNAPSHOT_BACKUP_SUFFIX ".vmsnapshot-"
/* Whether the disks of a query-block reply are snapshotted by backups (some writable disk is raw). */
bool snapshot_backup_mode(const cJSON *query_block);
/* A hot-plugged image QEMU holds in fd set `fdset`: the launcher's descriptor of its directory, or -1. */
typedef int (*snapshot_dir_fn)(void *ctx, int fdset);
/* [{"node","file","target","size"}] for every writable raw disk. A hot-plugged one (file /dev/fdset/N) whose
 * directory dir_of knows: {"node","file","dirfd","name","size"}, the target <dir>/disk.img.vmsnapshot-<tag>
 * made with openat, handed to QEMU in an fd set of its own (snapshot_backup_open, then "target":
 * "/dev/fdset/M", "fdset": M). Refused for another disk that is not a file, or a tag that is not 1-128 of
 * [A-Za-z0-9._-]. */
int snapshot_backup_disks(const cJSON *query_block, const char *tag, snapshot_dir_fn dir_of, void *ctx,
                          cJSON **out, kv_error *err);
/* The next entry without a target (a hot-plugged disk's): its target opened read-write for add-fd (the
 * caller closes it) and *index set; -1 when there is none left, or a negative errno. */
int snapshot_backup_open(const cJSON *disks, int *index, kv_error *err);
/* The `transaction` arguments: one drive-backup per disk, job ids `<job_prefix><index>`. */
cJSON *snapshot_backup_transaction(const cJSON *disks, const char *job_prefix);
/* Creates each target, sparse, of its disk's size (QEMU opens it with mode "existing"). */
int snapshot_backup_create(const cJSON *disks, kv_error *err);
/* Removes the targets (a failed save's or a deleted tag's); absent ones are fine. */
int snapshot_backup_remove(const cJSON *disks, kv_error *err);
