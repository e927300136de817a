/* qemu-argv-devices: disks (-blockdev chains + virtio-blk/scsi/ahci devices), NICs (user netdev or
 * net_setup's), rng, balloon, inputs and the pcie-root-ports every PCI device and later hot-plug sit on. All
 * JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"
#include "macro.h"
#include "qemu-argv-internal.h"

#define AHCI_PORTS 6 /* q35's built-in ich9-ahci: ide.0 … ide.5 */
#define PORTS_PER_SLOT 8
#define FIRST_PORT_SLOT 2 /* 0: host bridge, 1: VGA, 0x1f: ICH9 functions */
#define MAX_ROOT_PORTS ((0x1f - FIRST_PORT_SLOT) * PORTS_PER_SLOT)

const char *builder_take_port(argv_builder *b, char buf[static 16])
{
        snprintf(buf, 16, "rp%d", b->next_port++);
        return buf;
}

static unsigned vcpus(const vmi *v)
{
        return v->sockets * v->cores * v->threads;
}

static cJSON *device(const char *driver, const char *id)
{
        return jstr(jstr(cJSON_CreateObject(), "driver", driver), "id", id);
}

/* A PCI device on its own root port, so it can be unplugged later like a hot-plugged one. */
static cJSON *pci_device(argv_builder *b, const char *driver, const char *id)
{
        char port[16];
        return jstr(device(driver, id), "bus", builder_take_port(b, port));
}

/* useVirtioTransitional: the models with a legacy (virtio 0.9) interface too, as libvirt picks for
 * model='virtio-transitional'; vsock and input devices have none and stay virtio 1.0. */
static const char *virtio_model(const argv_builder *b, const char *driver)
{
        static const char *const transitional[][2] = {
            {"virtio-blk-pci", "virtio-blk-pci-transitional"},
            {"virtio-scsi-pci", "virtio-scsi-pci-transitional"},
            {"virtio-net-pci", "virtio-net-pci-transitional"},
            {"virtio-serial-pci", "virtio-serial-pci-transitional"},
            {"virtio-balloon-pci", "virtio-balloon-pci-transitional"},
            {"virtio-rng-pci", "virtio-rng-pci-transitional"},
        };
        for (size_t i = 0; b->v->virtio_transitional && i < ARRAY_SIZE(transitional); i++)
                if (!strcmp(driver, transitional[i][0]))
                        return transitional[i][1];
        return driver;
}

static cJSON *virtio_device(argv_builder *b, const char *driver, const char *id)
{
        return pci_device(b, virtio_model(b, driver), id);
}

/* A pciAddress ("DDDD:BB:SS.F") as slot and function of the PCIe root complex (bus 00), where the slots
 * below ROOT_FIRST_FREE_SLOT hold the host bridge, VGA and our root ports; false outside the free ones. */
#define ROOT_FIRST_FREE_SLOT 0x10
static bool root_slot_fn(const char *pci, unsigned *slot, unsigned *fn)
{
        unsigned dom, bus;
        return pci && sscanf(pci, "%x:%x:%x.%x", &dom, &bus, slot, fn) == 4 && !dom && !bus &&
               *slot >= ROOT_FIRST_FREE_SLOT && *slot <= 0x1e && *fn < 8;
}

static void want_root_fn(argv_builder *b, const char *pci)
{
        unsigned slot, fn;
        if (root_slot_fn(pci, &slot, &fn))
                b->root_fns_wanted[slot] |= 1u << fn;
}

static void plan_root_fns(argv_builder *b)
{
        for (size_t i = 0; i < b->v->n_disks; i++)
                want_root_fn(b, b->v->disks[i].pci_address);
        want_root_fn(b, b->v->net.pci_address);
        for (size_t i = 0; i < b->v->net.n_secondary; i++)
                want_root_fn(b, b->v->net.secondary[i].pci_address);
        b->root_fns_planned = true;
}

/* A device at the pciAddress the spec field `field` gave (consumes dev; NULL with b->err set when that
 * slot and function is outside the free range or taken). Function 0 of a slot that other functions share
 * is multifunction, as the guest scans a slot's other functions only then. */
static cJSON *root_place(argv_builder *b, cJSON *dev, const char *pci, const char *field)
{
        unsigned slot, fn;
        char addr[16];
        if (!b->root_fns_planned)
                plan_root_fns(b);
        if (!root_slot_fn(pci, &slot, &fn) || b->root_fns_placed[slot] & (1u << fn)) {
                kv_error_set(
                    b->err, EINVAL,
                    "%s: \"%s\" is not free: a device may take 0000:00:10.0-0000:00:1e.7 (slots of the "
                    "PCIe root complex the launcher leaves free), each address once",
                    field, pci);
                cJSON_Delete(dev);
                return NULL;
        }
        b->root_fns_placed[slot] |= 1u << fn;
        snprintf(addr, sizeof(addr), "0x%x.%x", slot, fn);
        dev = jstr(jstr(dev, "bus", "pcie.0"), "addr", addr);
        return fn == 0 && b->root_fns_wanted[slot] != 1 ? jbool(dev, "multifunction", true) : dev;
}

static cJSON *with_cache(cJSON *node, disk_cache cache)
{
        if (cache == CACHE_DEFAULT)
                return node;
        cJSON *c = jbool(jbool(cJSON_CreateObject(), "direct", cache == CACHE_NONE), "no-flush", false);
        return jobj(node, "cache", c);
}

static cJSON *file_child(const char *filename, const vmi_disk *d, bool read_only, bool block)
{
        cJSON *f =
            jstr(jstr(cJSON_CreateObject(), "driver", block ? "host_device" : "file"), "filename", filename);
        if (d->reservation)
                f = jstr(f, "pr-manager", QEMU_PR_MANAGER_ID);
        if (d->io != DISK_IO_DEFAULT)
                f = jstr(f, "aio", d->io == DISK_IO_NATIVE ? "native" : "threads");
        return with_cache(read_only ? jbool(f, "read-only", true) : f, d->cache);
}

/* A format node over a file. qcow2 nodes get "backing": null unless the launcher made the chain (an
 * overlay over its base), so a backing file named in an untrusted header is never opened. */
static cJSON *format_node(image_format fmt, const char *filename, const vmi_disk *d, bool read_only,
                          bool block, cJSON *backing)
{
        cJSON *n = jstr(cJSON_CreateObject(), "driver", image_format_name(fmt));
        if (read_only)
                n = jbool(n, "read-only", true);
        n = with_cache(jobj(n, "file", file_child(filename, d, read_only, block)), d->cache);
        if (backing)
                return jobj(n, "backing", backing);
        return fmt == IMG_QCOW2 ? jnull(n, "backing") : n;
}

static int add_blockdev(argv_builder *b, const vmi_disk *d, const char *node)
{
        const volume_prep *p = &b->v->volumes[d->volume].prep;
        if (!p->path)
                return kv_error_set(b->err, EINVAL, "volume \"%s\" not prepared (vmi_prepare not run)",
                                    b->v->volumes[d->volume].name);
        bool ro = d->readonly || p->read_only;
        cJSON *backing = p->base ? format_node(p->base_format, p->base, d, true, false, NULL) : NULL;
        if (p->base && !backing)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        cJSON *n = format_node(p->format, p->path, d, ro, p->block_device && !p->base, backing);
        /* node-name first reads better in `ps`; cJSON keeps insertion order, so rebuild with it in front. */
        cJSON *top = jstr(cJSON_CreateObject(), "node-name", node);
        for (cJSON *c = n ? n->child : NULL; top && c;) {
                cJSON *next = c->next;
                cJSON_AddItemToObject(top, c->string, cJSON_DetachItemViaPointer(n, c));
                c = next;
        }
        if (!n) {
                cJSON_Delete(top);
                top = NULL;
        }
        cJSON_Delete(n);
        return push_json(&b->devs, "-blockdev", top, b->err);
}

/* errorPolicy as QEMU's werror/rerror (libvirt's mapping: enospace stops only when the host is full). */
static cJSON *with_error_policy(cJSON *dev, disk_error_policy p)
{
        static const char *const werror[] = {[ERROR_POLICY_STOP] = "stop",
                                             [ERROR_POLICY_IGNORE] = "ignore",
                                             [ERROR_POLICY_REPORT] = "report",
                                             [ERROR_POLICY_ENOSPACE] = "enospc"};
        if (p == ERROR_POLICY_DEFAULT)
                return dev;
        dev = jstr(dev, "werror", werror[p]);
        return p == ERROR_POLICY_ENOSPACE ? dev : jstr(dev, "rerror", werror[p]);
}

static cJSON *disk_device_props(const vmi *v, cJSON *dev, const vmi_disk *d, const char *node)
{
        dev = with_error_policy(jstr(dev, "drive", node), d->error_policy);
        if (d->shareable)
                dev = jbool(dev, "share-rw", true);
        if (d->rotation_rate)
                dev = jnum(dev, "rotation_rate", d->rotation_rate);
        /* blockSize; a passed-through LUN (scsi-block) has the device's own */
        bool own_sizes =
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(dev, "driver")) ?: "", "scsi-block");
        if (d->logical_block && !own_sizes)
                dev = jnum(dev, "logical_block_size", d->logical_block);
        if (d->physical_block && !own_sizes)
                dev = jnum(dev, "physical_block_size", d->physical_block);
        if (d->discard_granularity && !own_sizes)
                dev = jnum(dev, "discard_granularity", d->discard_granularity);
        if (d->bus == BUS_VIRTIO && v->block_multiqueue) /* one queue per vCPU, as KubeVirt */
                dev = jnum(dev, "num-queues", vcpus(v));
        if (d->iothread) {
                char id[32];
                snprintf(id, sizeof(id), "iothread%u", d->iothread);
                dev = jstr(dev, "iothread", id);
        }
        if (d->boot_order)
                dev = jnum(dev, "bootindex", d->boot_order);
        if (d->serial)
                dev = jstr(dev, "serial", d->serial);
        if (d->cache == CACHE_WRITETHROUGH || d->cache == CACHE_WRITEBACK)
                dev = jstr(dev, "write-cache", d->cache == CACHE_WRITEBACK ? "on" : "off");
        return dev;
}

/* A lun over a SCSI block device is passed through (scsi-block: the guest's SCSI commands reach the LUN,
 * as libvirt's device='lun'). Over a file, or a block device that takes no SCSI commands (loop, dm, rbd),
 * it is an emulated SCSI disk (scsi-hd): libvirt refuses a lun there, this launcher runs the nearest thing.
 */
static const char *scsi_driver(const argv_builder *b, const vmi_disk *d)
{
        const volume_prep *p = &b->v->volumes[d->volume].prep;
        if (d->kind == DISK_CDROM)
                return "scsi-cd";
        return d->kind == DISK_LUN && p->scsi_generic && !p->base ? "scsi-block" : "scsi-hd";
}

static int add_disk(argv_builder *b, const vmi_disk *d, size_t i, int *sata, int *scsi)
{
        char node[32], id[80];
        snprintf(node, sizeof(node), "disk%zu", i);
        snprintf(id, sizeof(id), "ua-%s", d->name);
        JF_TRY(add_blockdev(b, d, node));
        bool cd = d->kind == DISK_CDROM;
        cJSON *dev;
        switch (d->bus) {
        case BUS_VIRTIO: {
                char field[64];
                snprintf(field, sizeof(field), "spec.domain.devices.disks[%zu].disk.pciAddress", i);
                dev = d->pci_address[0] ? root_place(b, device(virtio_model(b, "virtio-blk-pci"), id),
                                                     d->pci_address, field)
                                        : virtio_device(b, "virtio-blk-pci", id);
                if (!dev)
                        return -EINVAL;
                break;
        }
        case BUS_SCSI:
                dev = jnum(jnum(jstr(device(scsi_driver(b, d), id), "bus", "scsi0.0"), "scsi-id", (*scsi)++),
                           "lun", 0);
                break;
        default: {
                char bus[16];
                if (*sata >= AHCI_PORTS)
                        return kv_error_set(b->err, EINVAL,
                                            "spec.domain.devices.disks[%zu]: more than %d sata disks", i,
                                            AHCI_PORTS);
                snprintf(bus, sizeof(bus), "ide.%d", (*sata)++);
                dev = jstr(device(cd ? "ide-cd" : "ide-hd", id), "bus", bus);
        }
        }
        return push_json(&b->devs, "-device", disk_device_props(b->v, dev, d, node), b->err);
}

/* lun.reservation: QEMU forwards PERSISTENT RESERVE commands to qemu-pr-helper (which holds the
 * privilege to issue them) over <run_dir>/pr-helper.sock; the launcher runs the helper. Reservations only
 * mean something on a real LUN, so the volume must be a SCSI block device. */
int qemu_check_reservation(const vmi *v, size_t i, kv_error *err)
{
        const vmi_disk *d = &v->disks[i];
        const volume_prep *p = &v->volumes[d->volume].prep;
        if (!p->scsi_generic || p->base)
                return kv_error_set(err, EINVAL,
                                    "spec.domain.devices.disks[%zu].lun.reservation: needs a SCSI "
                                    "block-device volume (persistent reservations go to a real LUN); "
                                    "\"%s\" is %s",
                                    i, v->volumes[d->volume].name,
                                    p->block_device && !p->base ? "a block device without SG_IO" : "a file");
        return 0;
}

static int add_pr_manager(argv_builder *b, size_t i)
{
        JF_TRY(qemu_check_reservation(b->v, i, b->err));
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", b->o->run_dir, QEMU_PR_HELPER_SOCKET) < 0)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        return push_json(
            &b->devs, "-object",
            jstr(jstr(jstr(cJSON_CreateObject(), "qom-type", "pr-manager-helper"), "id", QEMU_PR_MANAGER_ID),
                 "path", path),
            b->err);
}

int argv_add_disks(argv_builder *b)
{
        int sata = 0, scsi = 0;
        for (unsigned i = 1; i <= b->v->n_iothreads; i++) {
                char id[32];
                snprintf(id, sizeof(id), "iothread%u", i);
                JF_TRY(push_json(&b->devs, "-object",
                                 jstr(jstr(cJSON_CreateObject(), "qom-type", "iothread"), "id", id), b->err));
        }
        for (size_t i = 0; i < b->v->n_disks; i++) {
                if (!b->v->disks[i].reservation)
                        continue;
                JF_TRY(add_pr_manager(b, i));
                break;
        }
        for (size_t i = 0; i < b->v->n_disks; i++) {
                if (b->v->disks[i].bus != BUS_SCSI || vmi_disk_deferred(b->v, i))
                        continue;
                JF_TRY(push_json(&b->devs, "-device", virtio_device(b, "virtio-scsi-pci", "scsi0"), b->err));
                break;
        }
        for (size_t i = 0; i < b->v->n_disks; i++)
                if (!vmi_disk_deferred(b->v, i))
                        JF_TRY(add_disk(b, &b->v->disks[i], i, &sata, &scsi));
        return 0;
}

/* User-mode networking (slirp; masquerade and an implied bridge without a Pod netns). For `masquerade` the
 * addresses match KubeVirt's masquerade binding (guest 10.0.2.2/24, gateway 10.0.2.1), so a guest configured
 * for KubeVirt behaves the same; `slirp` keeps QEMU's defaults, as KubeVirt's slirp binding does. */
static cJSON *user_netdev(const vmi *v, const vmi_interface *nic, const char *id)
{
        cJSON *n = jstr(jstr(cJSON_CreateObject(), "type", "user"), "id", id);
        if (nic->binding != NET_BINDING_SLIRP)
                n = jstr(
                    jstr(jstr(jstr(n, "net", "10.0.2.0/24"), "host", "10.0.2.1"), "dhcpstart", "10.0.2.2"),
                    "dns", "10.0.2.3");
        return jstr(n, "hostname", v->hostname);
}

/* Where a NIC goes: its own root port, or with interfaces[].pciAddress that slot and function of the PCIe
 * root complex; interfaces[].acpiIndex as QEMU's acpi-index, as libvirt passes KubeVirt's. */
static cJSON *nic_place(argv_builder *b, cJSON *dev, const char *pci, unsigned acpi_index, int index)
{
        char port[16], field[64];
        if (!pci || !pci[0]) {
                dev = jstr(dev, "bus", builder_take_port(b, port));
        } else if (acpi_index) {
                /* QEMU 7.2 describes acpi-index only for slots of hot-plug capable bridges (our root
                 * ports): on the root complex the guest would never see it. */
                kv_error_set(
                    b->err, EINVAL,
                    "spec.domain.devices.interfaces[%d].acpiIndex: cannot be combined with "
                    "pciAddress \"%s\": QEMU 7.2 gives the guest an ACPI index only for a NIC behind "
                    "a PCIe root port, and pciAddress places it on the root complex",
                    index, pci);
                cJSON_Delete(dev);
                return NULL;
        } else {
                snprintf(field, sizeof(field), "spec.domain.devices.interfaces[%d].pciAddress", index);
                return root_place(b, dev, pci, field);
        }
        return acpi_index ? jnum(dev, "acpi-index", acpi_index) : dev;
}

/* A virtio NIC's model (useVirtioTransitional) and, with networkInterfaceMultiqueue, one queue pair per vCPU
 * as KubeVirt asks libvirt for (<driver queues='N'>): mq=on and 2N+2 MSI-X vectors (N rx, N tx, config,
 * control). The netdev brings the N host queues (a multi-queue tap; user networking has one). */
static cJSON *with_nic_virtio(argv_builder *b, cJSON *dev)
{
        const cJSON *driver = cJSON_GetObjectItemCaseSensitive(dev, "driver");
        if (!cJSON_IsString(driver) || strcmp(driver->valuestring, "virtio-net-pci"))
                return dev;
        cJSON_SetValuestring((cJSON *)driver, virtio_model(b, "virtio-net-pci"));
        unsigned n = vcpus(b->v);
        if (!b->v->net_multiqueue || n < 2)
                return dev;
        return jnum(jbool(dev, "mq", true), "vectors", 2 * n + 2);
}

/* An interface libkvnet wired: its netdev verbatim, its device on a root port of ours. */
static int add_wired(argv_builder *b, const char *netdev_json, const char *device_json, unsigned boot_order,
                     const char *pci, unsigned acpi_index, int index)
{
        cJSON *dev = cJSON_Parse(device_json);
        if (!dev || !cJSON_IsObject(dev)) {
                cJSON_Delete(dev);
                return kv_error_set(b->err, EINVAL, "net_device_json is not a JSON object");
        }
        if (!(dev = nic_place(b, dev, pci, acpi_index, index)))
                return -EINVAL;
        dev = with_nic_virtio(b, dev);
        if (boot_order)
                dev = jnum(dev, "bootindex", boot_order);
        if (strv_push(&b->devs, "-netdev") < 0 || strv_push(&b->devs, netdev_json) < 0) {
                cJSON_Delete(dev);
                return kv_error_set(b->err, ENOMEM, "out of memory building the QEMU command line");
        }
        return push_json(&b->devs, "-device", dev, b->err);
}

static int add_user_interface(argv_builder *b, const vmi_interface *nic, size_t i)
{
        static const char *const drivers[] = {[NIC_VIRTIO] = "virtio-net-pci",
                                              [NIC_E1000E] = "e1000e",
                                              [NIC_E1000] = "e1000",
                                              [NIC_RTL8139] = "rtl8139"};
        if (nic->binding == NET_BINDING_PASST ||
            (nic->binding == NET_BINDING_BRIDGE && !nic->binding_implied))
                return kv_error_set(b->err, EINVAL,
                                    "spec.domain.devices.interfaces[%zu].%s: needs the launcher's network "
                                    "setup (net_setup), which produced no netdev",
                                    i, net_binding_name(nic->binding));
        char id[80], netdev[80];
        snprintf(id, sizeof(id), "ua-%s", nic->name);
        snprintf(netdev, sizeof(netdev), "hostua-%s", nic->name);
        JF_TRY(push_json(&b->devs, "-netdev", user_netdev(b->v, nic, netdev), b->err));
        cJSON *dev = nic_place(b, device(drivers[nic->model], id), b->v->net.pci_address,
                               b->v->net.acpi_index, b->v->net.iface_index);
        if (!dev)
                return -EINVAL;
        dev = with_nic_virtio(b, jstr(dev, "netdev", netdev));
        if (nic->mac)
                dev = jstr(dev, "mac", nic->mac);
        if (nic->boot_order)
                dev = jnum(dev, "bootindex", nic->boot_order);
        return push_json(&b->devs, "-device", dev, b->err);
}

int argv_add_interfaces(argv_builder *b)
{
        for (size_t i = 0; i < b->v->n_interfaces; i++) {
                const vmi_interface *nic = &b->v->interfaces[i];
                bool wired =
                    b->o->net_netdev_json && b->o->net_device_json && nic->binding != NET_BINDING_SLIRP;
                const net_request *n = &b->v->net;
                JF_TRY(wired ? add_wired(b, b->o->net_netdev_json, b->o->net_device_json, nic->boot_order,
                                         n->pci_address, n->acpi_index, n->iface_index)
                             : add_user_interface(b, nic, i));
        }
        for (size_t i = 0; i < b->o->n_net_secondary; i++) {
                const net_secondary *s = i < b->v->net.n_secondary ? &b->v->net.secondary[i] : NULL;
                JF_TRY(add_wired(b, b->o->net_secondary_netdev_json[i], b->o->net_secondary_device_json[i],
                                 b->o->net_secondary_boot_order[i], s ? s->pci_address : NULL,
                                 s ? s->acpi_index : 0, s ? s->iface_index : (int)i));
        }
        return 0;
}

static int add_inputs(argv_builder *b)
{
        bool usb = false;
        for (size_t i = 0; i < b->v->n_inputs; i++)
                usb |= b->v->inputs[i].bus == INPUT_BUS_USB;
        if (usb)
                JF_TRY(push_json(&b->devs, "-device", pci_device(b, "qemu-xhci", "usb"), b->err));
        for (size_t i = 0; i < b->v->n_inputs; i++) {
                const vmi_input *in = &b->v->inputs[i];
                bool tablet = in->type == INPUT_TABLET;
                char id[80];
                snprintf(id, sizeof(id), "ua-%s", in->name);
                cJSON *dev = in->bus == INPUT_BUS_USB
                                 ? jstr(device(tablet ? "usb-tablet" : "usb-kbd", id), "bus", "usb.0")
                                 : pci_device(b, tablet ? "virtio-tablet-pci" : "virtio-keyboard-pci", id);
                JF_TRY(push_json(&b->devs, "-device", dev, b->err));
        }
        return 0;
}

/* devices.sound as libvirt renders <sound model='ich9'|'ac97'> with no host audio: the controller where
 * q35's ICH9 has it (00:1b.0, a conventional PCI function on the root complex), a duplex codec for ich9. */
static int add_sound(argv_builder *b)
{
        if (b->v->sound == SOUND_NONE)
                return 0;
        char id[80];
        snprintf(id, sizeof(id), "ua-%s", b->v->sound_name);
        JF_TRY(push_json(&b->devs, "-audiodev",
                         jstr(jstr(cJSON_CreateObject(), "driver", "none"), "id", "audio1"), b->err));
        bool hda = b->v->sound == SOUND_ICH9;
        cJSON *ctl = jstr(jstr(device(hda ? "ich9-intel-hda" : "AC97", id), "bus", "pcie.0"), "addr", "0x1b");
        JF_TRY(push_json(&b->devs, "-device", hda ? ctl : jstr(ctl, "audiodev", "audio1"), b->err));
        if (!hda)
                return 0;
        char bus[96], codec[96];
        snprintf(bus, sizeof(bus), "%s.0", id);
        snprintf(codec, sizeof(codec), "%s-codec0", id);
        cJSON *dev =
            jnum(jstr(jstr(device("hda-duplex", codec), "bus", bus), "audiodev", "audio1"), "cad", 0);
        return push_json(&b->devs, "-device", dev, b->err);
}

/* devices.tpm: a TPM 2.0 CRB interface (libvirt's x86 default model for TPM 2.0) over swtpm's socket,
 * which the launcher started in the run dir (tpm.c in launcher/supervisor). */
static int add_tpm(argv_builder *b)
{
        if (!b->v->tpm)
                return 0;
        _cleanup_free_ char *path = NULL, *e = NULL;
        if (asprintf(&path, "%s/%s", b->o->run_dir, QEMU_TPM_SOCKET) < 0 || !(e = qemu_opt_escape(path)))
                return kv_error_set(b->err, ENOMEM, "out of memory");
        JF_TRY(push_optf(&b->devs, "-chardev", b->err, "socket,id=chrtpm,path=%s", e));
        JF_TRY(push_optf(&b->devs, "-tpmdev", b->err, "emulator,id=tpm-tpm0,chardev=chrtpm"));
        return push_json(&b->devs, "-device", jstr(device("tpm-crb", "tpm0"), "tpmdev", "tpm-tpm0"), b->err);
}

/* devices.downwardMetrics: KubeVirt's vhostmd channel, a virtio-serial port named org.github.vhostmd.1 on
 * which the guest's vm-dump-metrics asks for the metrics XML; the launcher (metrics.c in
 * launcher/supervisor) listens in the run dir and answers. QEMU connects as it starts, so the port is
 * connected from the start like the guest agent's (with QEMU listening and the launcher connecting later,
 * 2 test boots in 6 ended in an early QEMU SIGSEGV; not root-caused). */
static int add_downward_metrics(argv_builder *b)
{
        if (!b->v->downward_metrics)
                return 0;
        _cleanup_free_ char *path = NULL, *e = NULL;
        if (asprintf(&path, "%s/%s", b->o->run_dir, QEMU_METRICS_SOCKET) < 0 || !(e = qemu_opt_escape(path)))
                return kv_error_set(b->err, ENOMEM, "out of memory");
        JF_TRY(push_optf(&b->devs, "-chardev", b->err, "socket,id=charvhostmd,path=%s,server=off", e));
        cJSON *port = jstr(jstr(jstr(device("virtserialport", "channel1"), "bus", "virtio-serial0.0"),
                                "chardev", "charvhostmd"),
                           "name", "org.github.vhostmd.1");
        return push_json(&b->devs, "-device", jnum(port, "nr", 2), b->err);
}

int argv_add_misc_devices(argv_builder *b)
{
        if (b->v->rng) {
                cJSON *backend =
                    jstr(jstr(jstr(cJSON_CreateObject(), "qom-type", "rng-random"), "id", "rng0"), "filename",
                         "/dev/urandom");
                JF_TRY(push_json(&b->devs, "-object", backend, b->err));
                JF_TRY(push_json(&b->devs, "-device",
                                 jstr(virtio_device(b, "virtio-rng-pci", "rng"), "rng", "rng0"), b->err));
        }
        if (b->v->watchdog != WATCHDOG_NONE) {
                static const char *const actions[] = {[WATCHDOG_POWEROFF] = "poweroff",
                                                      [WATCHDOG_RESET] = "reset",
                                                      [WATCHDOG_SHUTDOWN] = "shutdown"};
                char id[80];
                snprintf(id, sizeof(id), "ua-%s", b->v->watchdog_name);
                JF_TRY(push_json(&b->devs, "-device", pci_device(b, "i6300esb", id), b->err));
                JF_TRY(push_optf(&b->devs, "-watchdog-action", b->err, "%s", actions[b->v->watchdog]));
        }
        if (b->v->vsock) {
                if (!b->v->vsock_cid)
                        return kv_error_set(b->err, EINVAL,
                                            "autoattachVSOCK: no guest CID (vmi_prepare not run)");
                JF_TRY(push_json(
                    &b->devs, "-device",
                    jnum(pci_device(b, "vhost-vsock-pci", "vsock"), "guest-cid", b->v->vsock_cid), b->err));
        }
        JF_TRY(add_sound(b));
        JF_TRY(add_tpm(b));
        if (b->v->panic != PANIC_NONE) /* libvirt's <panic model='isa'> / 'pvpanic' */
                JF_TRY(push_json(&b->devs, "-device",
                                 b->v->panic == PANIC_ISA ? device("pvpanic", "panic0")
                                                          : pci_device(b, "pvpanic-pci", "panic0"),
                                 b->err));
        if (b->v->mem_balloon)
                JF_TRY(push_json(&b->devs, "-device", virtio_device(b, "virtio-balloon-pci", "balloon0"),
                                 b->err));
        /* KubeVirt always adds the guest agent channel: the port the agent opens in the guest, on the
         * chardev add_consoles declared. */
        JF_TRY(
            push_json(&b->devs, "-device", virtio_device(b, "virtio-serial-pci", "virtio-serial0"), b->err));
        cJSON *port = jstr(jstr(jstr(device("virtserialport", "channel0"), "bus", "virtio-serial0.0"),
                                "chardev", "charchannel0"),
                           "name", "org.qemu.guest_agent.0");
        JF_TRY(push_json(&b->devs, "-device", jnum(port, "nr", 1), b->err));
        JF_TRY(add_downward_metrics(b));
        return add_inputs(b);
}

/* Ports packed 8 per slot as functions of one multifunction device (notes §2: 30 single ports fill q35). */
int argv_add_root_ports(argv_builder *b)
{
        int extra = b->o->hotplug_ports < 0 ? QEMU_ARGV_DEFAULT_HOTPLUG_PORTS : b->o->hotplug_ports;
        int total = b->next_port + extra;
        if (total > MAX_ROOT_PORTS)
                return kv_error_set(b->err, EINVAL, "%d PCIe root ports needed, at most %d fit", total,
                                    MAX_ROOT_PORTS);
        bool placed = false;
        for (size_t s = 0; s < ARRAY_SIZE(b->root_fns_placed); s++)
                placed = placed || b->root_fns_placed[s];
        if (placed && FIRST_PORT_SLOT + (total - 1) / PORTS_PER_SLOT >= ROOT_FIRST_FREE_SLOT)
                return kv_error_set(b->err, EINVAL,
                                    "spec.domain.devices: %d PCIe root ports reach slot 0x10, where a "
                                    "pciAddress put a device",
                                    total);
        for (int k = 0; k < total; k++) {
                char id[16], addr[16];
                snprintf(id, sizeof(id), "rp%d", k);
                snprintf(addr, sizeof(addr), "0x%x.%x", FIRST_PORT_SLOT + k / PORTS_PER_SLOT,
                         k % PORTS_PER_SLOT);
                cJSON *p = jnum(jnum(jstr(device("pcie-root-port", id), "bus", "pcie.0"), "chassis", k + 1),
                                "port", k);
                p = jstr(p, "addr", addr);
                if (k % PORTS_PER_SLOT == 0)
                        p = jbool(p, "multifunction", true);
                JF_TRY(push_json(b->argv, "-device", p, b->err));
        }
        return 0;
}
