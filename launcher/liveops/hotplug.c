/* hotplug: disk, NIC, vCPU and memory hot-plug over QMP, in the orders verified in the notes (§2–4). */
#include "hotplug.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
        cJSON *n = jstr(jstr(cJSON_CreateObject(), "node-name", node), "driver",
                              image_format_name(d->format));
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

static int ensure_scsi_controller(qmp *q, kv_error *err)
{
        int r = lo_device_exists(q, "scsi0", err);
        if (r != 0)
                return r < 0 ? r : 0;
        char port[32];
        r = lo_free_root_port(q, port, sizeof(port), err);
        if (r < 0)
                return r;
        cJSON *dev = jstr(
            jstr(jstr(cJSON_CreateObject(), "driver", "virtio-scsi-pci"), "id", "scsi0"), "bus",
            port);
        return lo_exec(q, "device_add", dev, NULL, err);
}

static int disk_device_add(qmp *q, const hp_disk *d, const char *node, const char *id, kv_error *err)
{
        cJSON *dev = jstr(jstr(cJSON_CreateObject(), "id", id), "drive", node);
        if (d->serial)
                dev = jstr(dev, "serial", d->serial);
        int r;
        if (d->bus == BUS_SCSI) {
                r = ensure_scsi_controller(q, err);
                /* scsi-id left out: QEMU picks a free one on the bus. */
                dev = jstr(jstr(dev, "driver", "scsi-hd"), "bus", "scsi0.0");
        } else {
                char port[32];
                r = lo_free_root_port(q, port, sizeof(port), err);
                dev = jstr(jstr(dev, "driver", "virtio-blk-pci"), "bus", port);
        }
        if (r < 0) {
                cJSON_Delete(dev);
                return r;
        }
        return lo_exec(q, "device_add", dev, NULL, err);
}

int hotplug_disk_add(qmp *q, const hp_disk *d, kv_error *err)
{
        if (d->bus != BUS_VIRTIO && d->bus != BUS_SCSI)
                return kv_error_set(err, EINVAL, "disk %s: only virtio and scsi disks can be hot-plugged",
                                    d->name);
        if (!d->path)
                return kv_error_set(err, EINVAL, "disk %s: its volume is not prepared (no image path)",
                                    d->name);
        char node[128], id[128];
        snprintf(node, sizeof(node), "hp-%s", d->name);
        snprintf(id, sizeof(id), "ua-%s", d->name);
        int r = lo_exec(q, "blockdev-add", disk_node(d, node), NULL, err);
        if (r < 0)
                return kv_error_wrap(err, "hot-plug disk %s", d->name);
        r = disk_device_add(q, d, node, id, err);
        if (r < 0) {
                kv_error ignored = {0};
                lo_exec(q, "blockdev-del", jstr(cJSON_CreateObject(), "node-name", node), NULL,
                        &ignored);
                return kv_error_wrap(err, "hot-plug disk %s", d->name);
        }
        return 0;
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

void hotplug_unplug_ids(bool disk, const char *name, hp_unplug *u)
{
        *u = (hp_unplug){.disk = disk};
        snprintf(u->name, sizeof(u->name), "%s", name);
        snprintf(u->id, sizeof(u->id), "ua-%s", name);
        if (!disk)
                snprintf(u->backend, sizeof(u->backend), "hostua-%s", name);
}

/* The node behind device ua-<name>: query-block's qdev is "/machine/peripheral/<id>[/virtio-backend]"
 * for -blockdev disks. */
int hotplug_disk_node_from(const cJSON *query_block, hp_unplug *u)
{
        struct node_of n = {.id = u->id, .node = u->backend, .size = sizeof(u->backend)};
        n.plen = (size_t)snprintf(n.prefix, sizeof(n.prefix), "/machine/peripheral/%s", u->id);
        return lo_walk_block_nodes(query_block, match_device, &n, NULL);
}

const char *hotplug_backend_del(const hp_unplug *u, cJSON **args)
{
        *args = jstr(cJSON_CreateObject(), u->disk ? "node-name" : "id", u->backend);
        return u->disk ? "blockdev-del" : "netdev_del";
}

/* device_del + wait, then the backend; the disk's node comes from query-block first. */
static int unplug(qmp *q, bool disk, const char *name, int timeout_ms, kv_error *err)
{
        hp_unplug u;
        hotplug_unplug_ids(disk, name, &u);
        int r = 0;
        if (disk) {
                _cleanup_json_ cJSON *blocks = NULL;
                r = lo_exec(q, "query-block", NULL, &blocks, err);
                if (r >= 0 && hotplug_disk_node_from(blocks, &u) == 0)
                        return kv_error_set(err, ENOENT, "unplug disk %s: no such disk attached", name);
        }
        if (r >= 0)
                r = lo_device_del_wait(q, u.id, timeout_ms, err);
        if (r >= 0) {
                cJSON *args;
                const char *command = hotplug_backend_del(&u, &args);
                r = lo_exec(q, command, args, NULL, err);
        }
        return r < 0 ? kv_error_wrap(err, "unplug %s %s", disk ? "disk" : "interface", name) : 0;
}

int hotplug_disk_remove(qmp *q, const char *name, int timeout_ms, kv_error *err)
{
        return unplug(q, true, name, timeout_ms, err);
}

int hotplug_nic_add(qmp *q, const hp_nic *n, kv_error *err)
{
        char id[128], netdev[128], port[32];
        snprintf(id, sizeof(id), "ua-%s", n->name);
        snprintf(netdev, sizeof(netdev), "hostua-%s", n->name);
        int r = lo_free_root_port(q, port, sizeof(port), err);
        if (r < 0)
                return kv_error_wrap(err, "hot-plug interface %s", n->name);
        cJSON *nd = jstr(jstr(cJSON_CreateObject(), "type", "user"), "id", netdev);
        if (n->hostname)
                nd = jstr(nd, "hostname", n->hostname);
        r = lo_exec(q, "netdev_add", nd, NULL, err);
        if (r < 0)
                return kv_error_wrap(err, "hot-plug interface %s", n->name);
        cJSON *dev = jstr(
            jstr(
                jstr(jstr(cJSON_CreateObject(), "driver", nic_drivers[n->model]), "id", id),
                "netdev", netdev),
            "bus", port);
        if (n->mac)
                dev = jstr(dev, "mac", n->mac);
        r = lo_exec(q, "device_add", dev, NULL, err);
        if (r < 0) {
                kv_error ignored = {0};
                lo_exec(q, "netdev_del", jstr(cJSON_CreateObject(), "id", netdev), NULL, &ignored);
                return kv_error_wrap(err, "hot-plug interface %s", n->name);
        }
        return 0;
}

int hotplug_nic_remove(qmp *q, const char *name, int timeout_ms, kv_error *err)
{
        /* Device first: netdev_del under an attached NIC is accepted and leaves it without a backend. */
        return unplug(q, false, name, timeout_ms, err);
}

static int prop_int(const cJSON *props, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(props, key);
        return cJSON_IsNumber(v) ? v->valueint : 0;
}

static int cpu_plug(qmp *q, const cJSON *slot, kv_error *err)
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
        dev = jstr(jstr(dev, "driver", type->valuestring), "id", id);
        return lo_exec(q, "device_add", dev, NULL, err);
}

int hotplug_set_cpus(qmp *q, unsigned sockets, kv_error *err)
{
        _cleanup_json_ cJSON *slots = NULL;
        int r = lo_exec(q, "query-hotpluggable-cpus", NULL, &slots, err);
        if (r < 0)
                return r;
        unsigned max_socket = 0, plugged_above = 0;
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
        cJSON_ArrayForEach(s, slots)
        {
                unsigned sock = (unsigned)prop_int(cJSON_GetObjectItem(s, "props"), "socket-id");
                if (cJSON_GetObjectItem(s, "qom-path") || sock >= sockets)
                        continue;
                r = cpu_plug(q, s, err);
                if (r < 0)
                        return kv_error_wrap(err, "set cpus");
        }
        return 0;
}

typedef struct mem_view {
        uint64_t base, dimms;
        bool vmem;
        uint64_t vmem_max;
        unsigned n_dimms;
} mem_view;

static uint64_t num_u64(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(o, key);
        return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static int mem_view_read(qmp *q, mem_view *m, kv_error *err)
{
        _cleanup_json_ cJSON *sum = NULL, *devs = NULL;
        int r = lo_exec(q, "query-memory-size-summary", NULL, &sum, err);
        if (r >= 0)
                r = lo_exec(q, "query-memory-devices", NULL, &devs, err);
        if (r < 0)
                return r;
        *m = (mem_view){.base = num_u64(sum, "base-memory")};
        const cJSON *d;
        cJSON_ArrayForEach(d, devs)
        {
                const cJSON *type = cJSON_GetObjectItem(d, "type"), *data = cJSON_GetObjectItem(d, "data");
                const cJSON *id = cJSON_GetObjectItem(data, "id");
                if (!cJSON_IsString(type))
                        continue;
                if (!strcmp(type->valuestring, "dimm")) {
                        m->dimms += num_u64(data, "size");
                        m->n_dimms++;
                } else if (!strcmp(type->valuestring, "virtio-mem") && cJSON_IsString(id) &&
                           !strcmp(id->valuestring, VMEM_ID)) {
                        m->vmem = true;
                        m->vmem_max = num_u64(data, "max-size");
                }
        }
        return 0;
}

cJSON *hotplug_vmem_size_query(void)
{
        return jstr(jstr(cJSON_CreateObject(), "path", "/machine/peripheral/" VMEM_ID), "property", "size");
}

uint64_t hotplug_vmem_size_of(const cJSON *ret)
{
        return cJSON_IsNumber(ret) ? (uint64_t)ret->valuedouble : 0;
}

int hotplug_vmem_timeout(uint64_t size, uint64_t want, int timeout_ms, kv_error *err)
{
        return kv_error_set(err, ETIMEDOUT,
                            "set memory: the guest plugged %" PRIu64 " of %" PRIu64
                            " MiB requested within %d ms (it needs "
                            "virtio_mem and memory onlining); the request stays in place",
                            size >> 20, want >> 20, timeout_ms);
}

/* The blocking wait of liveops-driver and `apply`; the launcher's set-memory polls from its loop. */
static int vmem_wait(qmp *q, uint64_t want, int timeout_ms, kv_error *err)
{
        int64_t deadline = kv_now_ms() + timeout_ms;
        uint64_t size = 0;
        for (;;) {
                _cleanup_json_ cJSON *ret = NULL;
                int r = lo_exec(q, "qom-get", hotplug_vmem_size_query(), &ret, err);
                if (r < 0)
                        return r;
                size = hotplug_vmem_size_of(ret);
                if (size == want)
                        return 0;
                if (kv_now_ms() >= deadline)
                        break;
                _cleanup_json_ cJSON *ev = NULL;
                kv_error ignored = {0};
                qmp_wait_event(q, "MEMORY_DEVICE_SIZE_CHANGE", "id", VMEM_ID, 100, &ev, &ignored);
        }
        return hotplug_vmem_timeout(size, want, timeout_ms, err);
}

static int vmem_request(qmp *q, uint64_t extra, kv_error *err)
{
        cJSON *a =
            jnum(jstr(jstr(cJSON_CreateObject(), "path", "/machine/peripheral/" VMEM_ID),
                                  "property", "requested-size"),
                       "value", (double)extra);
        return lo_exec(q, "qom-set", a, NULL, err);
}

static int vmem_plug(qmp *q, uint64_t capacity, uint64_t extra, kv_error *err)
{
        char port[32];
        int r = lo_free_root_port(q, port, sizeof(port), err);
        if (r < 0)
                return r;
        cJSON *obj = jnum(jstr(jstr(cJSON_CreateObject(), "qom-type", "memory-backend-ram"),
                                           "id", VMEM_BACKEND),
                                "size", (double)capacity);
        r = lo_exec(q, "object-add", obj, NULL, err);
        if (r < 0)
                return r;
        cJSON *dev =
            jstr(jstr(jstr(jstr(cJSON_CreateObject(), "driver", "virtio-mem-pci"),
                                             "id", VMEM_ID),
                                  "memdev", VMEM_BACKEND),
                       "bus", port);
        dev = jnum(jnum(dev, "block-size", VMEM_BLOCK), "requested-size", (double)extra);
        r = lo_exec(q, "device_add", dev, NULL, err);
        if (r < 0) {
                kv_error ignored = {0};
                lo_exec(q, "object-del", jstr(cJSON_CreateObject(), "id", VMEM_BACKEND), NULL,
                        &ignored);
        }
        return r;
}

static int dimm_plug(qmp *q, unsigned n, uint64_t size, kv_error *err)
{
        char id[32], mem[40];
        snprintf(id, sizeof(id), "kv-dimm%u", n);
        snprintf(mem, sizeof(mem), "kv-dimm%u-mem", n);
        cJSON *obj = jnum(
            jstr(jstr(cJSON_CreateObject(), "qom-type", "memory-backend-ram"), "id", mem), "size",
            (double)size);
        int r = lo_exec(q, "object-add", obj, NULL, err);
        if (r < 0)
                return r;
        cJSON *dev = jstr(jstr(jstr(cJSON_CreateObject(), "driver", "pc-dimm"), "id", id),
                                "memdev", mem);
        return lo_exec(q, "device_add", dev, NULL, err);
}

/* -m maxmem from the machine's "memory" property ({"size","slots","max-size"}, QEMU >= 7.1). */
static uint64_t machine_max_memory(qmp *q)
{
        _cleanup_json_ cJSON *ret = NULL;
        kv_error ignored = {0};
        cJSON *a = jstr(jstr(cJSON_CreateObject(), "path", "/machine"), "property", "memory");
        if (lo_exec(q, "qom-get", a, &ret, &ignored) < 0)
                return 0;
        return num_u64(ret, "max-size");
}

int hotplug_set_memory(qmp *q, uint64_t bytes, uint64_t max_bytes, int timeout_ms, kv_error *err)
{
        hp_mem_wait w;
        int r = hotplug_memory_request(q, bytes, max_bytes, &w, err);
        if (r < 0 || !w.needed)
                return r;
        return vmem_wait(q, w.want, timeout_ms, err);
}

int hotplug_memory_request(qmp *q, uint64_t bytes, uint64_t max_bytes, hp_mem_wait *w, kv_error *err)
{
        *w = (hp_mem_wait){0};
        mem_view m;
        if (!max_bytes)
                max_bytes = machine_max_memory(q);
        int r = mem_view_read(q, &m, err);
        if (r < 0)
                return kv_error_wrap(err, "set memory");
        if (bytes < m.base + m.dimms)
                return kv_error_set(err, EINVAL,
                                    "set memory: %" PRIu64 " MiB is below the boot memory (%" PRIu64
                                    " MiB) plus plugged DIMMs (%" PRIu64 " MiB)",
                                    bytes >> 20, m.base >> 20, m.dimms >> 20);
        if (max_bytes <= m.base)
                max_bytes = 0; /* maxmem == boot memory: no room for hot-plug */
        if (max_bytes && bytes > max_bytes)
                return kv_error_set(err, EINVAL,
                                    "set memory: %" PRIu64 " MiB is above maxGuest (%" PRIu64 " MiB)",
                                    bytes >> 20, max_bytes >> 20);
        uint64_t extra = (bytes - m.base - m.dimms + VMEM_BLOCK - 1) / VMEM_BLOCK * VMEM_BLOCK;
        if (m.vmem)
                r = extra > m.vmem_max
                        ? kv_error_set(err, EINVAL, "set memory: above the virtio-mem capacity")
                        : vmem_request(q, extra, err);
        if (m.vmem && r >= 0)
                *w = (hp_mem_wait){.needed = true, .want = extra};
        else if (extra == 0)
                return 0;
        else if (!max_bytes)
                r = kv_error_set(err, EINVAL, "set memory: the VM has no maxGuest, memory cannot grow");
        else {
                uint64_t cap = (max_bytes - m.base - m.dimms) / VMEM_BLOCK * VMEM_BLOCK;
                kv_error vmem_err = {0};
                /* virtio-mem is preferred: it can also shrink; pc-dimm only when it cannot be plugged. */
                if (vmem_plug(q, cap, extra, &vmem_err) >= 0)
                        *w = (hp_mem_wait){.needed = true, .want = extra};
                else
                        r = dimm_plug(q, m.n_dimms, extra, err);
        }
        return r < 0 ? kv_error_wrap(err, "set memory") : 0;
}
