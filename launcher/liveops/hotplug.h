/* hotplug: disks, NICs, vCPUs and memory added to / removed from a running guest over QMP (notes §2–4).
 * Each call is bounded by a timeout and leaves the VM running whatever happens. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "qmp.h"
#include "vmi.h"

typedef struct hp_disk {
        const char *name; /* the KubeVirt disk name: device id "ua-<name>", node "hp-<name>" */
        const char *path; /* image file (prepared) */
        image_format format;
        disk_bus bus; /* BUS_VIRTIO (own root port) or BUS_SCSI (scsi0, added if missing) */
        bool readonly;
        const char *serial; /* NULL = none */
} hp_disk;

typedef struct hp_nic {
        const char *name; /* device "ua-<name>", netdev "hostua-<name>" as the boot-time NICs */
        const char *mac;  /* NULL = QEMU's */
        nic_model model;
        const char *hostname; /* for the user-mode DHCP server, may be NULL */
} hp_nic;

int hotplug_disk_add(qmp *q, const hp_disk *d, kv_error *err);
/* device_del, wait for the guest to release it, then blockdev-del of its node (found in query-block, so
 * boot-time disks can be removed too). */
int hotplug_disk_remove(qmp *q, const char *name, int timeout_ms, kv_error *err);
int hotplug_nic_add(qmp *q, const hp_nic *n, kv_error *err);
int hotplug_nic_remove(qmp *q, const char *name, int timeout_ms, kv_error *err);

/* The unplugs' pieces for a caller that runs the QMP exchange itself (the launcher's loop):
 * device_del of `id`, DEVICE_DELETED with data.device == id, then the backend's deletion. */
typedef struct hp_unplug {
        bool disk;
        char name[128];
        char id[136];      /* ua-<name> */
        char backend[160]; /* NIC: hostua-<name>; disk: its node, from hotplug_disk_node_from */
} hp_unplug;
void hotplug_unplug_ids(bool disk, const char *name, hp_unplug *u);
/* The disk's node in a query-block reply → u->backend; 0 when no such disk is attached, else 1. */
int hotplug_disk_node_from(const cJSON *query_block, hp_unplug *u);
/* blockdev-del or netdev_del, with its arguments in *args. */
const char *hotplug_backend_del(const hp_unplug *u, cJSON **args);
/* Plug every vCPU slot of query-hotpluggable-cpus with socket-id < sockets. Lowering is refused
 * (-EOPNOTSUPP): vCPU unplug crashes QEMU 7.2 under TCG. */
int hotplug_set_cpus(qmp *q, unsigned sockets, kv_error *err);
/* Make the guest's memory `bytes` (>= the boot size, <= max_bytes = -m maxmem) with one virtio-mem
 * device (hot-plugged on first use) whose requested-size is the difference; pc-dimm if virtio-mem cannot
 * be plugged. max_bytes 0 = read it from QEMU. Waits up to timeout_ms for the guest to follow. */
int hotplug_set_memory(qmp *q, uint64_t bytes, uint64_t max_bytes, int timeout_ms, kv_error *err);
/* hotplug_set_memory without its wait, for a caller that waits from its own loop: the short QMP exchange
 * (read the memory devices, resize or plug virtio-mem, else plug a DIMM). w->needed says that the guest
 * still has to plug virtio-mem memory: poll qom-get hotplug_vmem_size_query() until
 * hotplug_vmem_size_of(reply) == w->want, or fail with hotplug_vmem_timeout(). */
typedef struct hp_mem_wait {
        bool needed;
        uint64_t want;
} hp_mem_wait;
int hotplug_memory_request(qmp *q, uint64_t bytes, uint64_t max_bytes, hp_mem_wait *w, kv_error *err);
cJSON *hotplug_vmem_size_query(void);
uint64_t hotplug_vmem_size_of(const cJSON *ret);
int hotplug_vmem_timeout(uint64_t size, uint64_t want, int timeout_ms, kv_error *err);
