/* hotplug: disk, NIC, vCPU and memory hot-plug over QMP, in the orders verified in the notes (§2–4). */
#include "hotplug.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "macro.h"
#include "qmp-helpers.h"

#define VMEM_ID "kv-vmem0"
#define VMEM_BACKEND "kv-vmem0-mem"
#define VMEM_BLOCK (2u << 20)

static const char *const nic_drivers[] = {[NIC_VIRTIO] = "virtio-net-pci",
                                          [NIC_E1000E] = "e1000e",
                                          [NIC_E1000] = "e1000",
                                          [NIC_RTL8139] = "rtl8139"};

static cJSON *disk_node(const hp_disk *d, const char *node)
{
        cJSON *file = jstr(jstr(cJSON_CreateObject(), "driver", "file"), "filename", d->path);
        cJSON *n =
            jstr(jstr(cJSON_CreateObject(), "node-name", node), "driver", image_format_name(d->format));
        if (d->readonly) {
                file = jbool(file, "read-only", true);
                n = jbool(n, "read-only", true);
        }
        if (n && file)
                cJSON_AddItemToObject(n, "file", file);
        else
                cJSON_Delete(file);
        /* A user image must not open the backing file its header names (notes §7). */
        if (n && d->format == IMG_QCOW2)
                cJSON_AddNullToObject(n, "backing");
        return n;
}

struct node_of {
        const char *id;
        char prefix[160];
        size_t plen;
        char *node;
        size_t size;
};

static int match_device(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        struct node_of *n = ud;
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(block, "qdev"));
        if (!s || (strcmp(s, n->id) && (strncmp(s, n->prefix, n->plen) || (s[n->plen] && s[n->plen] != '/'))))
                return 0;
        snprintf(n->node, n->size, "%s", node);
        return 1;
}

static void hotplug_unplug_ids(bool disk, const char *name, hp_unplug *u)
{
        *u = (hp_unplug){.disk = disk};
        snprintf(u->name, sizeof(u->name), "%s", name);
        snprintf(u->id, sizeof(u->id), "ua-%s", name);
        if (!disk)
                snprintf(u->backend, sizeof(u->backend), "hostua-%s", name);
}

/* The node behind device ua-<name>: query-block's qdev is "/machine/peripheral/<id>[/virtio-backend]"
 * for -blockdev disks. */
static int hotplug_disk_node_from(const cJSON *query_block, hp_unplug *u)
{
        struct node_of n = {.id = u->id, .node = u->backend, .size = sizeof(u->backend)};
        n.plen = (size_t)snprintf(n.prefix, sizeof(n.prefix), "/machine/peripheral/%s", u->id);
        return lo_walk_block_nodes(query_block, match_device, &n, NULL);
}

static const char *hotplug_backend_del(const hp_unplug *u, cJSON **args)
{
        *args = jstr(cJSON_CreateObject(), u->disk ? "node-name" : "id", u->backend);
        return u->disk ? "blockdev-del" : "netdev_del";
}

static int prop_int(const cJSON *props, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(props, key);
        return cJSON_IsNumber(v) ? v->valueint : 0;
}

/* device_add arguments for a free slot of query-hotpluggable-cpus. */
static int cpu_device(const cJSON *slot, cJSON **out, kv_error *err)
{
        const cJSON *props = cJSON_GetObjectItem(slot, "props");
        const cJSON *type = cJSON_GetObjectItem(slot, "type");
        if (!cJSON_IsString(type) || !cJSON_IsObject(props))
                return kv_error_set(err, EPROTO, "query-hotpluggable-cpus: slot without type/props");
        char id[64];
        snprintf(id, sizeof(id), "cpu-s%d-c%d-t%d", prop_int(props, "socket-id"), prop_int(props, "core-id"),
                 prop_int(props, "thread-id"));
        /* Copy type and props verbatim (notes §4): the topology ids depend on -smp. */
        cJSON *dev = cJSON_Duplicate(props, true);
        *out = jstr(jstr(dev, "driver", type->valuestring), "id", id);
        return 0;
}

static uint64_t num_u64(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(o, key);
        return (uint64_t)json_clamp_i64(v, 0, INT64_MAX, 0);
}

static cJSON *vmem_size_query(void)
{
        return jstr(jstr(cJSON_CreateObject(), "path", "/machine/peripheral/" VMEM_ID), "property", "size");
}

static uint64_t vmem_size_of(const cJSON *ret)
{
        return cJSON_IsNumber(ret) ? (uint64_t)ret->valuedouble : 0;
}

static int vmem_timeout(uint64_t size, uint64_t want, int timeout_ms, kv_error *err)
{
        return kv_error_set(err, ETIMEDOUT,
                            "set memory: the guest plugged %" PRIu64 " of %" PRIu64
                            " MiB requested within %d ms (it needs "
                            "virtio_mem and memory onlining); the request stays in place",
                            size >> 20, want >> 20, timeout_ms);
}

/* ---- the operations as step functions (qmp-seq.h): the launcher runs them on its loop, liveops-driver
 * with lo_seq_run. Every command is sent may_fail: hp_step turns a failure the step
 * did not ask to see into the operation's error, after the undo command (if one is set) ran. -------- */

/* The steps, named after the reply they wait for; each operation starts at HP_BEGIN. */
enum { HP_BEGIN };
enum {
        DISK_NODE_ADDED = 1,
        DISK_SCSI_LISTED,
        DISK_PORTS,
        DISK_PORT_PROBED,
        DISK_SCSI_ADDED,
        DISK_DEVICE_ADDED
};
enum { NIC_PORT = 1, NIC_NETDEV_ADDED, NIC_DEVICE_ADDED };
enum { UNPLUG_BLOCKS = 1, UNPLUG_DELETED, UNPLUG_BACKEND_DELETED };
enum { CPUS_SLOTS = 1, CPUS_PLUGGED };
enum {
        MEM_MACHINE = 1,
        MEM_SUMMARY,
        MEM_DEVICES,
        MEM_VMEM_PORT,
        MEM_VMEM_BACKEND,
        MEM_VMEM_DEVICE,
        MEM_VMEM_UNDONE,
        MEM_DIMM_BACKEND,
        MEM_DIMM_ADDED,
        MEM_VMEM_RESIZED,
        MEM_POLL
};

static int hp_next(hp_op *o, int step, lo_next *n, const char *command, cJSON *args)
{
        o->step = step;
        *n = (lo_next){.command = command, .args = args};
        return LO_SEQ_NEXT;
}

/* A failure of the next command goes to the step (qerr) instead of failing the operation. */
static int hp_try(hp_op *o, int step, lo_next *n, const char *command, cJSON *args)
{
        o->tolerate = true;
        return hp_next(o, step, n, command, args);
}

static void hp_set_undo(hp_op *o, const char *command, cJSON *args)
{
        cJSON_Delete(o->undo_args);
        o->undo_command = command;
        o->undo_args = args;
}

/* ---- disk add: blockdev-add, [virtio-scsi controller], device_add; the node goes again on a failure */

static cJSON *disk_device(hp_op *o, const char *driver, const char *bus)
{
        char node[140], id[140];
        snprintf(node, sizeof(node), "hp-%s", o->name);
        snprintf(id, sizeof(id), "ua-%s", o->name);
        cJSON *dev = jstr(jstr(cJSON_CreateObject(), "id", id), "drive", node);
        if (o->serial[0])
                dev = jstr(dev, "serial", o->serial);
        /* scsi-id left out: QEMU picks a free one on the bus. */
        return jstr(jstr(dev, "driver", driver), "bus", bus);
}

/* The first root port with nothing plugged in, asked of QOM one port at a time: a migration target plugs the
 * source's hot-plugged disks before its guest ran, when query-pci cannot tell (docs/hotplug-volumes.md), and
 * both ends must choose the same port. */
static int disk_probe_port(hp_op *o, lo_next *n, kv_error *err)
{
        char path[64];
        if (o->i_port >= o->n_ports)
                return kv_error_set(err, ENOSPC,
                                    "no free PCIe root port left for hot-plug (start the VM with more)");
        snprintf(path, sizeof(path), "/machine/peripheral/%s/%s", o->ports[o->i_port], o->ports[o->i_port]);
        return hp_next(o, DISK_PORT_PROBED, n, "qom-list", jstr(cJSON_CreateObject(), "path", path));
}

static int disk_add_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        char node[140];
        snprintf(node, sizeof(node), "hp-%s", o->name);
        switch (o->step) {
        case HP_BEGIN: {
                hp_disk d = {.name = o->name, .path = o->path, .format = o->format, .readonly = o->readonly};
                return hp_next(o, DISK_NODE_ADDED, n, "blockdev-add", disk_node(&d, node));
        }
        case DISK_NODE_ADDED:
                hp_set_undo(o, "blockdev-del", jstr(cJSON_CreateObject(), "node-name", node));
                if (o->bus == BUS_SCSI)
                        return hp_next(o, DISK_SCSI_LISTED, n, "qom-list",
                                       jstr(cJSON_CreateObject(), "path", "/machine/peripheral"));
                return hp_next(o, DISK_PORTS, n, "query-pci", NULL);
        case DISK_SCSI_LISTED: /* the SCSI controller, added on first use */
                if (lo_device_in(ret, "scsi0"))
                        return hp_next(o, DISK_DEVICE_ADDED, n, "device_add",
                                       disk_device(o, "scsi-hd", "scsi0.0"));
                return hp_next(o, DISK_PORTS, n, "query-pci", NULL);
        case DISK_PORTS:
                o->n_ports = lo_root_ports_in(ret, o->ports, ARRAY_SIZE(o->ports));
                o->i_port = 0;
                return disk_probe_port(o, n, err);
        case DISK_PORT_PROBED:
                if (lo_bus_has_child(ret)) {
                        o->i_port++;
                        return disk_probe_port(o, n, err);
                }
                snprintf(o->port, sizeof(o->port), "%s", o->ports[o->i_port]);
                if (o->bus == BUS_SCSI)
                        return hp_next(
                            o, DISK_SCSI_ADDED, n, "device_add",
                            jstr(jstr(jstr(cJSON_CreateObject(), "driver", "virtio-scsi-pci"), "id", "scsi0"),
                                 "bus", o->port));
                return hp_next(o, DISK_DEVICE_ADDED, n, "device_add",
                               disk_device(o, "virtio-blk-pci", o->port));
        case DISK_SCSI_ADDED:
                return hp_next(o, DISK_DEVICE_ADDED, n, "device_add", disk_device(o, "scsi-hd", "scsi0.0"));
        case DISK_DEVICE_ADDED:
                hp_set_undo(o, NULL, NULL);
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "hot-plug disk: bad step %d", o->step);
}

/* ---- NIC add: a free root port, netdev_add, device_add; the netdev goes again on a failure ---------- */

static int nic_add_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        char id[140], netdev[140];
        snprintf(id, sizeof(id), "ua-%s", o->name);
        snprintf(netdev, sizeof(netdev), "hostua-%s", o->name);
        switch (o->step) {
        case HP_BEGIN:
                return hp_next(o, NIC_PORT, n, "query-pci", NULL);
        case NIC_PORT: {
                if (lo_free_root_port_in(ret, o->port, sizeof(o->port), err) < 0)
                        return -err->code;
                cJSON *nd = jstr(jstr(cJSON_CreateObject(), "type", "user"), "id", netdev);
                if (o->hostname[0])
                        nd = jstr(nd, "hostname", o->hostname);
                return hp_next(o, NIC_NETDEV_ADDED, n, "netdev_add", nd);
        }
        case NIC_NETDEV_ADDED: {
                hp_set_undo(o, "netdev_del", jstr(cJSON_CreateObject(), "id", netdev));
                cJSON *dev =
                    jstr(jstr(jstr(jstr(cJSON_CreateObject(), "driver", nic_drivers[o->model]), "id", id),
                              "netdev", netdev),
                         "bus", o->port);
                if (o->mac[0])
                        dev = jstr(dev, "mac", o->mac);
                return hp_next(o, NIC_DEVICE_ADDED, n, "device_add", dev);
        }
        case NIC_DEVICE_ADDED:
                hp_set_undo(o, NULL, NULL);
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "hot-plug interface: bad step %d", o->step);
}

/* ---- unplug: [the disk's node from query-block], device_del with its DEVICE_DELETED, the backend --- */

static int unplug_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        switch (o->step) {
        case HP_BEGIN:
                if (o->u.disk)
                        return hp_next(o, UNPLUG_BLOCKS, n, "query-block", NULL);
                /* fall through */
        case UNPLUG_BLOCKS:
                if (o->u.disk && hotplug_disk_node_from(ret, &o->u) == 0)
                        return kv_error_set(err, ENOENT, "no such disk attached");
                hp_try(o, UNPLUG_DELETED, n, "device_del", jstr(cJSON_CreateObject(), "id", o->u.id));
                *n = (lo_next){.command = n->command,
                               .args = n->args,
                               .event = "DEVICE_DELETED",
                               .key = "device",
                               .value = o->u.id,
                               .wait_ms = o->timeout_ms};
                return LO_SEQ_NEXT;
        case UNPLUG_DELETED: {
                if (qerr && qerr->code == ETIMEDOUT)
                        return lo_device_deleted_timeout(o->u.id, o->timeout_ms, err);
                if (qerr && !strstr(qerr->msg, "DeviceNotFound")) { /* already gone: removed */
                        *err = *qerr;
                        return -err->code;
                }
                cJSON *args;
                const char *command = hotplug_backend_del(&o->u, &args);
                return hp_next(o, UNPLUG_BACKEND_DELETED, n, command, args);
        }
        case UNPLUG_BACKEND_DELETED:
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "unplug: bad step %d", o->step);
}

/* ---- vCPUs: every free slot below the socket count plugged, in query-hotpluggable-cpus' order ------- */

static int cpus_plan(hp_op *o, const cJSON *slots, kv_error *err)
{
        unsigned max_socket = 0, plugged_above = 0, sockets = o->sockets;
        const cJSON *s;
        cJSON_ArrayForEach(s, slots)
        {
                unsigned sock = (unsigned)prop_int(cJSON_GetObjectItem(s, "props"), "socket-id");
                max_socket = sock + 1 > max_socket ? sock + 1 : max_socket;
                if (cJSON_GetObjectItem(s, "qom-path") && sock >= sockets)
                        plugged_above++;
        }
        if (sockets > max_socket)
                return kv_error_set(err, EINVAL,
                                    "set cpus: %u sockets requested, the VM allows at most %u (maxSockets)",
                                    sockets, max_socket);
        if (plugged_above)
                return kv_error_set(
                    err, EOPNOTSUPP,
                    "set cpus: lowering the socket count is refused: vCPU hot-unplug crashes QEMU 7.2 "
                    "under TCG (restart the VM with fewer sockets instead)");
        o->plug = cJSON_CreateArray();
        cJSON_ArrayForEach(s, slots)
        {
                unsigned sock = (unsigned)prop_int(cJSON_GetObjectItem(s, "props"), "socket-id");
                if (cJSON_GetObjectItem(s, "qom-path") || sock >= sockets)
                        continue;
                cJSON *dev = NULL;
                if (cpu_device(s, &dev, err) < 0)
                        return -err->code;
                cJSON_AddItemToArray(o->plug, dev);
        }
        return 0;
}

static int cpus_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        if (o->step == HP_BEGIN)
                return hp_next(o, CPUS_SLOTS, n, "query-hotpluggable-cpus", NULL);
        if (o->step == CPUS_SLOTS && cpus_plan(o, ret, err) < 0)
                return -err->code;
        cJSON *dev = cJSON_DetachItemFromArray(o->plug, 0);
        return dev ? hp_next(o, CPUS_PLUGGED, n, "device_add", dev) : LO_SEQ_DONE;
}

/* ---- memory: read the memory devices, resize or plug virtio-mem (else a DIMM), then (wait) poll the
 * virtio-mem size until the guest plugged it -------------------------------------------------------- */

static int mem_devices(hp_op *o, const cJSON *devs, lo_next *n, kv_error *err)
{
        uint64_t base = o->mem_base, dimms = 0, vmem_max = 0, bytes = o->bytes, max_bytes = o->max_bytes;
        bool vmem = false;
        const cJSON *d;
        cJSON_ArrayForEach(d, devs)
        {
                const cJSON *type = cJSON_GetObjectItem(d, "type"), *data = cJSON_GetObjectItem(d, "data");
                const cJSON *id = cJSON_GetObjectItem(data, "id");
                if (!cJSON_IsString(type))
                        continue;
                if (!strcmp(type->valuestring, "dimm")) {
                        dimms += num_u64(data, "size");
                        o->n_dimms++;
                } else if (!strcmp(type->valuestring, "virtio-mem") && cJSON_IsString(id) &&
                           !strcmp(id->valuestring, VMEM_ID)) {
                        vmem = true;
                        vmem_max = num_u64(data, "max-size");
                }
        }
        if (bytes < base + dimms)
                return kv_error_set(err, EINVAL,
                                    "set memory: %" PRIu64 " MiB is below the boot memory (%" PRIu64
                                    " MiB) plus plugged DIMMs (%" PRIu64 " MiB)",
                                    bytes >> 20, base >> 20, dimms >> 20);
        if (max_bytes <= base)
                max_bytes = 0; /* maxmem == boot memory: no room for hot-plug */
        if (max_bytes && bytes > max_bytes)
                return kv_error_set(err, EINVAL,
                                    "set memory: %" PRIu64 " MiB is above maxGuest (%" PRIu64 " MiB)",
                                    bytes >> 20, max_bytes >> 20);
        o->extra = (bytes - base - dimms + VMEM_BLOCK - 1) / VMEM_BLOCK * VMEM_BLOCK;
        if (vmem && o->extra > vmem_max)
                return kv_error_set(err, EINVAL, "set memory: above the virtio-mem capacity");
        if (vmem)
                return hp_next(o, MEM_VMEM_RESIZED, n, "qom-set",
                               jnum(jstr(jstr(cJSON_CreateObject(), "path", "/machine/peripheral/" VMEM_ID),
                                         "property", "requested-size"),
                                    "value", (double)o->extra));
        if (o->extra == 0)
                return LO_SEQ_DONE;
        if (!max_bytes)
                return kv_error_set(err, EINVAL, "set memory: the VM has no maxGuest, memory cannot grow");
        o->cap = (max_bytes - base - dimms) / VMEM_BLOCK * VMEM_BLOCK;
        /* virtio-mem is preferred: it can also shrink; pc-dimm only when it cannot be plugged. */
        return hp_try(o, MEM_VMEM_PORT, n, "query-pci", NULL);
}

static int mem_dimm(hp_op *o, lo_next *n)
{
        snprintf(o->dimm, sizeof(o->dimm), "kv-dimm%u", o->n_dimms);
        char mem[48];
        snprintf(mem, sizeof(mem), "%s-mem", o->dimm);
        return hp_next(o, MEM_DIMM_BACKEND, n, "object-add",
                       jnum(jstr(jstr(cJSON_CreateObject(), "qom-type", "memory-backend-ram"), "id", mem),
                            "size", (double)o->extra));
}

/* The guest's part: poll the virtio-mem size (woken by MEMORY_DEVICE_SIZE_CHANGE); the last poll after
 * the deadline decides. */
static int mem_wait(hp_op *o, const cJSON *ret, lo_next *n, kv_error *err)
{
        if (!ret) {
                o->deadline = kv_now_ms() + o->timeout_ms;
                o->vmem_needed = true;
                if (!o->wait)
                        return LO_SEQ_DONE;
                return hp_next(o, MEM_POLL, n, "qom-get", vmem_size_query());
        }
        o->size = vmem_size_of(ret);
        if (o->size == o->extra)
                return LO_SEQ_DONE;
        int64_t left = o->deadline - kv_now_ms();
        if (left <= 0)
                return vmem_timeout(o->size, o->extra, o->timeout_ms, err);
        o->step = MEM_POLL;
        o->polling = true;
        *n = (lo_next){.wait_ms = left < 100 ? (int)left : 100,
                       .event = "MEMORY_DEVICE_SIZE_CHANGE",
                       .key = "id",
                       .value = VMEM_ID};
        return LO_SEQ_NEXT;
}

static int memory_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        switch (o->step) {
        case HP_BEGIN:
                if (!o->max_bytes) /* -m maxmem from the machine's "memory" property (QEMU >= 7.1) */
                        return hp_try(
                            o, MEM_MACHINE, n, "qom-get",
                            jstr(jstr(cJSON_CreateObject(), "path", "/machine"), "property", "memory"));
                /* fall through */
        case MEM_MACHINE:
                if (o->step == MEM_MACHINE)
                        o->max_bytes = qerr ? 0 : num_u64(ret, "max-size");
                return hp_next(o, MEM_SUMMARY, n, "query-memory-size-summary", NULL);
        case MEM_SUMMARY:
                o->mem_base = num_u64(ret, "base-memory");
                return hp_next(o, MEM_DEVICES, n, "query-memory-devices", NULL);
        case MEM_DEVICES:
                return mem_devices(o, ret, n, err);
        case MEM_VMEM_PORT: /* query-pci for virtio-mem's port */
                if (qerr || lo_free_root_port_in(ret, o->port, sizeof(o->port), NULL) < 0)
                        return mem_dimm(o, n);
                return hp_try(o, MEM_VMEM_BACKEND, n, "object-add",
                              jnum(jstr(jstr(cJSON_CreateObject(), "qom-type", "memory-backend-ram"), "id",
                                        VMEM_BACKEND),
                                   "size", (double)o->cap));
        case MEM_VMEM_BACKEND: {
                if (qerr)
                        return mem_dimm(o, n);
                cJSON *dev =
                    jstr(jstr(jstr(jstr(cJSON_CreateObject(), "driver", "virtio-mem-pci"), "id", VMEM_ID),
                              "memdev", VMEM_BACKEND),
                         "bus", o->port);
                dev = jnum(jnum(dev, "block-size", VMEM_BLOCK), "requested-size", (double)o->extra);
                return hp_try(o, MEM_VMEM_DEVICE, n, "device_add", dev);
        }
        case MEM_VMEM_DEVICE:
                if (!qerr)
                        return mem_wait(o, NULL, n, err);
                return hp_try(o, MEM_VMEM_UNDONE, n, "object-del",
                              jstr(cJSON_CreateObject(), "id", VMEM_BACKEND));
        case MEM_VMEM_UNDONE:
                return mem_dimm(o, n);
        case MEM_DIMM_BACKEND: { /* the DIMM's backend is in */
                char mem[48];
                snprintf(mem, sizeof(mem), "%s-mem", o->dimm);
                return hp_next(o, MEM_DIMM_ADDED, n, "device_add",
                               jstr(jstr(jstr(cJSON_CreateObject(), "driver", "pc-dimm"), "id", o->dimm),
                                    "memdev", mem));
        }
        case MEM_DIMM_ADDED:
                return LO_SEQ_DONE;
        case MEM_VMEM_RESIZED: /* requested-size set on the existing virtio-mem */
                return mem_wait(o, NULL, n, err);
        case MEM_POLL:
                if (o->polling) {
                        o->polling = false;
                        return hp_next(o, MEM_POLL, n, "qom-get", vmem_size_query());
                }
                return mem_wait(o, ret, n, err);
        }
        return kv_error_set(err, EINVAL, "set memory: bad step %d", o->step);
}

/* ---- the common part ------------------------------------------------------------------------------ */

static void hp_init(hp_op *o, hp_kind kind, const char *name)
{
        *o = (hp_op){.kind = kind};
        snprintf(o->name, sizeof(o->name), "%s", name ? name : "");
}

int hp_disk_add_init(hp_op *o, const hp_disk *d, kv_error *err)
{
        hp_init(o, HP_DISK_ADD, d->name);
        if (d->bus != BUS_VIRTIO && d->bus != BUS_SCSI)
                return kv_error_set(err, EINVAL, "disk %s: only virtio and scsi disks can be hot-plugged",
                                    d->name);
        if (!d->path)
                return kv_error_set(err, EINVAL, "disk %s: its volume is not prepared (no image path)",
                                    d->name);
        if (snprintf(o->path, sizeof(o->path), "%s", d->path) >= (int)sizeof(o->path))
                return kv_error_set(err, ENAMETOOLONG, "disk %s: image path too long", d->name);
        snprintf(o->serial, sizeof(o->serial), "%s", d->serial ? d->serial : "");
        o->format = d->format;
        o->bus = d->bus;
        o->readonly = d->readonly;
        return 0;
}

void hp_nic_add_init(hp_op *o, const hp_nic *nic)
{
        hp_init(o, HP_NIC_ADD, nic->name);
        snprintf(o->mac, sizeof(o->mac), "%s", nic->mac ? nic->mac : "");
        snprintf(o->hostname, sizeof(o->hostname), "%s", nic->hostname ? nic->hostname : "");
        o->model = nic->model;
}

void hp_unplug_init(hp_op *o, bool disk, const char *name, int timeout_ms)
{
        hp_init(o, HP_UNPLUG, name);
        hotplug_unplug_ids(disk, name, &o->u);
        o->timeout_ms = timeout_ms;
}

void hp_cpus_init(hp_op *o, unsigned sockets)
{
        hp_init(o, HP_CPUS, NULL);
        o->sockets = sockets;
}

void hp_memory_init(hp_op *o, uint64_t bytes, uint64_t max_bytes, int timeout_ms, bool wait)
{
        hp_init(o, HP_MEMORY, NULL);
        o->bytes = bytes;
        o->max_bytes = max_bytes;
        o->timeout_ms = timeout_ms;
        o->wait = wait;
}

void hp_op_free(hp_op *o)
{
        cJSON_Delete(TAKE_PTR(o->undo_args));
        cJSON_Delete(TAKE_PTR(o->plug));
}

/* The operation's name in its QMP errors ("hot-plug disk d1: device_add: ..."). */
static void hp_wrap(const hp_op *o, kv_error *err)
{
        switch (o->kind) {
        case HP_DISK_ADD:
                kv_error_wrap(err, "hot-plug disk %s", o->name);
                break;
        case HP_NIC_ADD:
                kv_error_wrap(err, "hot-plug interface %s", o->name);
                break;
        case HP_UNPLUG:
                kv_error_wrap(err, "unplug %s %s", o->u.disk ? "disk" : "interface", o->name);
                break;
        case HP_CPUS:
                kv_error_wrap(err, "set cpus");
                break;
        case HP_MEMORY:
                kv_error_wrap(err, "set memory");
                break;
        }
}

static int hp_kind_step(hp_op *o, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        switch (o->kind) {
        case HP_DISK_ADD:
                return disk_add_step(o, ret, qerr, n, err);
        case HP_NIC_ADD:
                return nic_add_step(o, ret, qerr, n, err);
        case HP_UNPLUG:
                return unplug_step(o, ret, qerr, n, err);
        case HP_CPUS:
                return cpus_step(o, ret, qerr, n, err);
        case HP_MEMORY:
                return memory_step(o, ret, qerr, n, err);
        }
        return kv_error_set(err, EINVAL, "unknown hot-plug operation");
}

/* A failure: the undo command first (its own failure ignored), then the error. */
static int hp_failed(hp_op *o, const kv_error *e, lo_next *n, kv_error *err)
{
        o->failed = true;
        o->err = *e;
        if (!o->undo_command) {
                *err = o->err;
                return -err->code;
        }
        *n = (lo_next){.command = o->undo_command, .args = TAKE_PTR(o->undo_args), .may_fail = true};
        o->undo_command = NULL;
        return LO_SEQ_NEXT;
}

int hp_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        hp_op *o = ctx;
        if (o->failed) { /* the undo ran */
                *err = o->err;
                return -err->code;
        }
        if (qerr && !o->tolerate) {
                kv_error e = *qerr;
                hp_wrap(o, &e);
                return hp_failed(o, &e, n, err);
        }
        o->tolerate = false;
        kv_error e = {0};
        int r = hp_kind_step(o, ret, qerr, n, &e);
        if (r < 0 && o->kind == HP_UNPLUG && !strstr(e.msg, "unplug "))
                hp_wrap(o, &e);
        if (r < 0)
                return hp_failed(o, &e, n, err);
        if (r == LO_SEQ_NEXT && n->command)
                n->may_fail = true;
        return r;
}
