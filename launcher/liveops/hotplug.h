/* hotplug: disks, NICs, vCPUs and memory added to / removed from a running guest over QMP (notes §2–4).
 * Each call is bounded by a timeout and leaves the VM running whatever happens. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "qmp.h"
#include "qmp-seq.h"
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

/* device_del of ua-<name>, DEVICE_DELETED with data.device == that id, then the backend's deletion (the
 * disk's node found in query-block, so boot-time disks can be removed too). */
typedef struct hp_unplug {
        bool disk;
        char name[128];
        char id[136];      /* ua-<name> */
        char backend[160]; /* NIC: hostua-<name>; disk: its node */
} hp_unplug;

/* Each operation is a step function (qmp-seq.h): the launcher runs it on its loop, liveops-driver with
 * lo_seq_run. One hp_op per operation: an init, then hp_step until done, then hp_op_free. vCPUs: every
 * slot of query-hotpluggable-cpus with socket-id < sockets is plugged; lowering is refused (-EOPNOTSUPP):
 * vCPU unplug crashes QEMU 7.2 under TCG. Memory: the guest's memory becomes `bytes` (>= the boot size,
 * <= max_bytes = -m maxmem, 0 = read it from QEMU) with one virtio-mem device (hot-plugged on first use)
 * whose requested-size is the difference; pc-dimm if virtio-mem cannot be plugged. */
typedef enum { HP_DISK_ADD, HP_NIC_ADD, HP_UNPLUG, HP_CPUS, HP_MEMORY } hp_kind;
typedef struct hp_op {
        hp_kind kind;
        int step;
        bool tolerate, failed, wait, polling, vmem_needed;
        kv_error err; /* the failure reported once the undo ran */
        const char *undo_command;
        cJSON *undo_args;
        char name[128], path[4096], serial[128], mac[32], hostname[256], port[40], dimm[32];
        char ports[32][16]; /* disk add: the root ports, probed in order for a free one */
        size_t n_ports, i_port;
        image_format format;
        disk_bus bus;
        bool readonly;
        nic_model model;
        hp_unplug u;
        int timeout_ms;
        unsigned sockets, n_dimms;
        cJSON *plug; /* set-cpus: the device_add arguments still to send */
        uint64_t bytes, max_bytes, mem_base, extra, cap, size;
        int64_t deadline;
} hp_op;
/* -EINVAL when the disk cannot be hot-plugged (bus, no prepared image). */
int hp_disk_add_init(hp_op *o, const hp_disk *d, kv_error *err);
void hp_nic_add_init(hp_op *o, const hp_nic *n);
void hp_unplug_init(hp_op *o, bool disk, const char *name, int timeout_ms);
void hp_cpus_init(hp_op *o, unsigned sockets);
/* wait: poll until the guest plugged the virtio-mem memory (up to timeout_ms), as hotplug_set_memory. */
void hp_memory_init(hp_op *o, uint64_t bytes, uint64_t max_bytes, int timeout_ms, bool wait);
int hp_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
void hp_op_free(hp_op *o);
