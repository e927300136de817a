/* snapshot: internal qcow2 snapshots. Online (QEMU running): snapshot-save/-load/-delete jobs with the
 * RAM state, over every writable qcow2 disk. Offline (QEMU not running): qemu-img snapshot on one image.
 * See docs/snapshots.md for the mapping to VirtualMachineSnapshot / VirtualMachineRestore. */
#pragma once

#include <cjson/cJSON.h>

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
