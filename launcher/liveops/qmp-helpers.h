/* qmp-helpers: the QMP idioms every live operation repeats — execute with the default timeout, walk
 * query-block's nodes, wait for a device's DEVICE_DELETED, find a free pcie-root-port, run a job to its
 * end and surface query-jobs[].error. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "error.h"
#include "json.h"
#include "macro.h"
#include "qmp.h"

#define LO_CMD_TIMEOUT_MS 10000
#define LO_UNPLUG_TIMEOUT_MS 10000 /* ACPI unplug takes 0.1 s, native PCIe ~6 s (notes §2) */

/* qmp_execute with LO_CMD_TIMEOUT_MS; the error message starts with the command name. */
int lo_exec(qmp *q, const char *command, cJSON *args, cJSON **ret, kv_error *err);
/* Called for each block device of query-block that has a medium with a node name: the device entry, its
 * "inserted" member and that node name. Return <0 to fail (with err set), 1 to stop, 0 to go on. */
typedef int (*lo_block_fn)(const cJSON *block, const cJSON *inserted, const char *node, void *ud,
                           kv_error *err);
/* query-block, then fn over its nodes. Returns fn's <0 or 1, else 0. */
int lo_for_each_block_node(qmp *q, lo_block_fn fn, void *ud, kv_error *err);
/* The same walk over a query-block reply already in hand (the launcher's asynchronous callers). */
int lo_walk_block_nodes(const cJSON *blocks, lo_block_fn fn, void *ud, kv_error *err);
/* The error of a DEVICE_DELETED wait that timed out (why the guest may not have released it). */
int lo_device_deleted_timeout(const char *id, int timeout_ms, kv_error *err);
/* The id of a pcie-root-port with nothing plugged into it ("rp3") in a query-pci reply; -ENOSPC if none
 * (err may be NULL). */
int lo_free_root_port_in(const cJSON *query_pci, char *out, size_t size, kv_error *err);
/* The ids of the pcie-root-ports in a query-pci reply, in its order: up to max, their count. */
size_t lo_root_ports_in(const cJSON *query_pci, char (*ids)[16], size_t max);
/* Whether a qom-list reply of a bus lists a device plugged into it (a child[N] link). A root port's bus
 * tells so even before the guest numbered the buses (a migration target at -incoming), query-pci does not. */
bool lo_bus_has_child(const cJSON *qom_list);
/* Whether a device with this id exists under /machine/peripheral (the qom-list reply in hand). */
bool lo_device_in(const cJSON *qom_list, const char *id);
/* Job `id` in a query-jobs reply: 0 while it runs, 1 once concluded without error, -EIO (concluded with
 * its "error" in err) or -ENOENT (not listed). */
int lo_job_outcome(const cJSON *jobs, const char *id, kv_error *err);
/* Wait until job `id` is concluded, dismiss it, and turn its "error" member into -EIO. */
int lo_job_finish(qmp *q, const char *id, int timeout_ms, kv_error *err);
/* Dismiss a concluded job left over by an earlier crash of ours (ignores "not found"). */
void lo_job_dismiss_stale(qmp *q, const char *id);
