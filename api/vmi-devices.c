/* vmi-devices: spec.domain.devices (disks, interfaces, inputs, rng, autoattach*), spec.volumes and
 * spec.networks, and the checks that tie them together (every disk has a volume, unique names). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "macro.h"
#include "quantity.h"
#include "vmi-parse.h"

#define OOM(err) kv_error_set(err, ENOMEM, "out of memory")

/* An optional object member that must be {} (rng: {}, masquerade: {}). Returns 1 when present. */
static int empty_object(const cJSON *parent, const char *path, const char *key, kv_error *err)
{
        const cJSON *o = NULL;
        char p[JPATH_MAX];
        JF_TRY(jf_object(parent, path, key, &o, err));
        if (!o)
                return 0;
        JF_TRY(jf_check_keys(o, jpath_key(p, path, key), NULL, NULL, err));
        return 1;
}

/* A boolean KubeVirt feature this launcher only supports when off. */
static int must_be_false(const cJSON *parent, const char *path, const char *key, kv_error *err)
{
        bool b = false;
        char p[JPATH_MAX];
        JF_TRY(jf_bool(parent, path, key, &b, err));
        return b ? jf_error(err, jpath_key(p, path, key), "true is not supported") : 0;
}

/* The "name" member of list element `item` at `path`: a DNS label, unique within its list. */
static int element_name(const cJSON *item, const char *path, const char *seen_list, size_t seen,
                        size_t stride, const void *array, char **out, kv_error *err)
{
        char p[JPATH_MAX];
        JF_TRY(jf_string(item, path, "name", true, out, err));
        if (!jf_is_dns_label(*out))
                return jf_error(err, jpath_key(p, path, "name"), "\"%.64s\" is not a valid name (DNS label)",
                                *out);
        for (size_t i = 0; i < seen; i++) {
                char *const *other = (char *const *)((const char *)array + i * stride);
                if (!strcmp(*other, *out))
                        return jf_error(err, jpath_key(p, path, "name"),
                                        "duplicate name \"%s\" (also %s[%zu])", *out, seen_list, i);
        }
        return 0;
}

static bool valid_disk_serial(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n <= 20 &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-") == n;
}

/* lun: {bus, readonly, reservation}: a SCSI LUN on the virtio-scsi controller (scsi-block over a block
 * device, scsi-hd over a file). QEMU 7.2 has no other SCSI passthrough, so the bus is scsi whatever the
 * architecture's default bus is; virtio and sata are refused. */
static int parse_lun_target(vmi_disk *d, const cJSON *lun, const char *p, kv_error *err)
{
        static const char *const lun_keys[] = {"bus", "readonly", "reservation", NULL};
        static const char *const buses[] = {"virtio", "sata", "scsi", NULL};
        char bp[JPATH_MAX];
        JF_TRY(jf_check_keys(lun, p, lun_keys, NULL, err));
        int bus = BUS_SCSI;
        JF_TRY(jf_enum(lun, p, "bus", buses, &bus, err));
        if (bus != BUS_SCSI)
                return jf_error(err, jpath_key(bp, p, "bus"),
                                "\"%s\" is not supported for a lun (a SCSI LUN sits on the scsi bus)",
                                buses[bus]);
        d->kind = DISK_LUN, d->bus = BUS_SCSI;
        JF_TRY(jf_bool(lun, p, "readonly", &d->readonly, err));
        return jf_bool(lun, p, "reservation", &d->reservation, err);
}

/* disk.pciAddress: where the virtio disk sits in the guest (the argv builder checks the slot is free). */
static int parse_disk_pci(vmi_disk *d, const cJSON *t, const char *p, kv_error *err)
{
        _cleanup_free_ char *pci = NULL;
        char pp[JPATH_MAX];
        JF_TRY(jf_string(t, p, "pciAddress", false, &pci, err));
        if (!pci)
                return 0;
        if (!jf_is_pci_address(pci))
                return jf_error(err, jpath_key(pp, p, "pciAddress"),
                                "must be a PCI address \"DDDD:BB:SS.F\" (hexadecimal, function 0-7)");
        if (d->bus != BUS_VIRTIO)
                return jf_error(err, jpath_key(pp, p, "pciAddress"), "needs bus virtio");
        snprintf(d->pci_address, sizeof(d->pci_address), "%s", pci);
        return 0;
}

/* disk: {bus, readonly, rotationRate, pciAddress}, cdrom: {bus, readonly, tray} or lun: {bus, readonly,
 * reservation}. */
static int parse_disk_target(vmi_disk *d, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const buses[] = {"virtio", "sata", "scsi", NULL};
        static const char *const disk_keys[] = {"bus", "readonly", "rotationRate", "pciAddress", NULL};
        static const char *const cdrom_keys[] = {"bus", "readonly", "tray", NULL};
        static const char *const trays[] = {"closed", NULL};
        const cJSON *disk = NULL, *cdrom = NULL, *lun = NULL, *t;
        char p[JPATH_MAX];
        JF_TRY(jf_object(item, path, "disk", &disk, err));
        JF_TRY(jf_object(item, path, "cdrom", &cdrom, err));
        JF_TRY(jf_object(item, path, "lun", &lun, err));
        if (!!disk + !!cdrom + !!lun > 1)
                return jf_error(err, path, "only one of disk, cdrom and lun may be set");
        if (lun)
                return parse_lun_target(d, lun, jpath_key(p, path, "lun"), err);
        d->kind = cdrom ? DISK_CDROM : DISK_DISK;
        d->bus = cdrom ? BUS_SATA : BUS_VIRTIO; /* KubeVirt's defaults */
        d->readonly = cdrom != NULL;
        if (!(t = cdrom ? cdrom : disk))
                return 0;
        jpath_key(p, path, cdrom ? "cdrom" : "disk");
        JF_TRY(jf_check_keys(t, p, cdrom ? cdrom_keys : disk_keys, NULL, err));
        int bus = d->bus, tray = 0;
        JF_TRY(jf_enum(t, p, "bus", buses, &bus, err));
        JF_TRY(jf_bool(t, p, "readonly", &d->readonly, err));
        JF_TRY(jf_enum(t, p, "tray", trays, &tray, err));
        d->bus = bus;
        int64_t rate = 0;
        bool rate_given = false;
        JF_TRY(jf_int(t, p, "rotationRate", 1, 65534, &rate, &rate_given, err));
        d->rotation_rate = rate;
        if (rate_given && d->bus == BUS_VIRTIO) {
                char rp[JPATH_MAX];
                return jf_error(err, jpath_key(rp, p, "rotationRate"), "needs bus scsi or sata");
        }
        JF_TRY(parse_disk_pci(d, t, p, err));
        if (cdrom && d->bus == BUS_VIRTIO) {
                char bp[JPATH_MAX];
                return jf_error(err, jpath_key(bp, p, "bus"),
                                "\"virtio\" is not supported for a cdrom (use sata or scsi)");
        }
        char rp[JPATH_MAX];
        if (!cdrom && d->bus == BUS_SATA && d->readonly)
                return jf_error(err, jpath_key(rp, p, "readonly"),
                                "a read-only disk on the sata bus is not supported "
                                "(QEMU's ide-hd needs a writable image; use virtio or scsi)");
        if (cdrom && !d->readonly)
                return jf_error(err, jpath_key(rp, p, "readonly"), "a cdrom is always read-only");
        return 0;
}

/* A block size QEMU takes: a power of 2 from 512 bytes to 2 MiB. */
static int block_size(const cJSON *o, const char *path, const char *key, unsigned *out, kv_error *err)
{
        int64_t n = 0;
        bool given = false;
        char p[JPATH_MAX];
        JF_TRY(jf_int(o, path, key, 0, INT32_MAX, &n, &given, err));
        if (given && (n < 512 || n > (2 << 20) || (n & (n - 1))))
                return jf_error(err, jpath_key(p, path, key),
                                "%lld is not a power of 2 from 512 to 2097152 bytes", (long long)n);
        *out = (unsigned)n;
        return 0;
}

/* disk.blockSize: custom {logical, physical, discardGranularity} or matchVolume {enabled}, not both. */
static int parse_block_size(vmi_disk *d, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const keys[] = {"custom", "matchVolume", NULL};
        static const char *const custom_keys[] = {"logical", "physical", "discardGranularity", NULL};
        static const char *const match_keys[] = {"enabled", NULL};
        const cJSON *bs = NULL, *custom = NULL, *match = NULL;
        char p[JPATH_MAX], q[JPATH_MAX];
        JF_TRY(jf_object(item, path, "blockSize", &bs, err));
        if (!bs)
                return 0;
        jpath_key(p, path, "blockSize");
        JF_TRY(jf_check_keys(bs, p, keys, NULL, err));
        JF_TRY(jf_object(bs, p, "custom", &custom, err));
        JF_TRY(jf_object(bs, p, "matchVolume", &match, err));
        if (custom && match)
                return jf_error(err, p, "only one of custom and matchVolume may be set");
        if (match) {
                jpath_key(q, p, "matchVolume");
                JF_TRY(jf_check_keys(match, q, match_keys, NULL, err));
                JF_TRY(jf_bool(match, q, "enabled", &d->block_size_match_volume, err));
                return 0;
        }
        if (!custom)
                return 0;
        jpath_key(q, p, "custom");
        JF_TRY(jf_check_keys(custom, q, custom_keys, NULL, err));
        JF_TRY(block_size(custom, q, "logical", &d->logical_block, err));
        JF_TRY(block_size(custom, q, "physical", &d->physical_block, err));
        int64_t dg = 0;
        JF_TRY(jf_int(custom, q, "discardGranularity", 0, INT32_MAX, &dg, NULL, err));
        d->discard_granularity = (unsigned)dg;
        if (d->logical_block && d->physical_block && d->logical_block > d->physical_block)
                return jf_error(err, jpath_key(p, q, "logical"),
                                "logical size %u must be the same or less than the physical size of %u",
                                d->logical_block, d->physical_block);
        if (dg && d->logical_block && dg % d->logical_block)
                return jf_error(err, jpath_key(p, q, "discardGranularity"),
                                "%lld must be a multiple of the logical size %u", (long long)dg,
                                d->logical_block);
        return 0;
}

static int parse_disk(vmi *v, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const allowed[] = {
            "name",  "disk", "cdrom",       "lun",       "bootOrder",         "serial",
            "cache", "io",   "errorPolicy", "shareable", "dedicatedIOThread", "blockSize",
            NULL};
        static const char *const policies[] = {"", "stop", "ignore", "report", "enospace", NULL};
        static const char *const ignored[] = {"tag", NULL};
        static const char *const caches[] = {"", "none", "writethrough", "writeback", NULL};
        static const char *const ios[] = {"", "native", "threads", NULL};
        char p[JPATH_MAX];
        if (!cJSON_IsObject(item))
                return jf_error(err, path, "expected an object");
        JF_TRY(jf_check_keys(item, path, allowed, ignored, err));
        vmi_disk *d = vmi_grow((void **)&v->disks, &v->n_disks, sizeof(*d));
        if (!d)
                return OOM(err);
        JF_TRY(element_name(item, path, "spec.domain.devices.disks", v->n_disks - 1, sizeof(*d), v->disks,
                            &d->name, err));
        JF_TRY(parse_disk_target(d, item, path, err));
        int64_t boot = 0;
        JF_TRY(jf_int(item, path, "bootOrder", 1, 65535, &boot, NULL, err));
        d->boot_order = boot;
        JF_TRY(jf_string(item, path, "serial", false, &d->serial, err));
        if (d->serial && !valid_disk_serial(d->serial))
                return jf_error(err, jpath_key(p, path, "serial"),
                                "must be 1-20 characters of [A-Za-z0-9_.+-]");
        int cache = 0, io = 0;
        JF_TRY(jf_enum(item, path, "cache", caches, &cache, err));
        JF_TRY(jf_enum(item, path, "io", ios, &io, err));
        d->cache = cache, d->io = io;
        int policy = 0;
        JF_TRY(jf_enum(item, path, "errorPolicy", policies, &policy, err));
        d->error_policy = policy;
        JF_TRY(jf_bool(item, path, "shareable", &d->shareable, err));
        if (d->shareable && d->cache == CACHE_DEFAULT) /* KubeVirt: a shared image is opened without cache */
                d->cache = CACHE_NONE;
        if (d->shareable && d->cache != CACHE_NONE)
                return jf_error(err, jpath_key(p, path, "cache"), "a shareable disk needs cache: none");
        JF_TRY(parse_block_size(d, item, path, err));
        JF_TRY(jf_bool(item, path, "dedicatedIOThread", &d->dedicated_iothread, err));
        if (d->dedicated_iothread && d->bus != BUS_VIRTIO)
                return jf_error(err, jpath_key(p, path, "dedicatedIOThread"), "needs bus virtio");
        if (d->io == DISK_IO_NATIVE && d->cache != CACHE_NONE)
                return jf_error(err, jpath_key(p, path, "io"), "\"native\" requires cache: none");
        return 0;
}

static int parse_input(vmi *v, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "type", "bus", NULL};
        static const char *const types[] = {"tablet", "keyboard", NULL};
        static const char *const buses[] = {"usb", "virtio", NULL};
        if (!cJSON_IsObject(item))
                return jf_error(err, path, "expected an object");
        JF_TRY(jf_check_keys(item, path, allowed, NULL, err));
        vmi_input *in = vmi_grow((void **)&v->inputs, &v->n_inputs, sizeof(*in));
        if (!in)
                return OOM(err);
        JF_TRY(element_name(item, path, "spec.domain.devices.inputs", v->n_inputs - 1, sizeof(*in), v->inputs,
                            &in->name, err));
        int type = -1, bus = 0;
        JF_TRY(jf_enum(item, path, "type", types, &type, err));
        if (type < 0) {
                char p[JPATH_MAX];
                return jf_error(err, jpath_key(p, path, "type"), "is required");
        }
        JF_TRY(jf_enum(item, path, "bus", buses, &bus, err));
        in->type = type, in->bus = bus;
        return 0;
}

/* devices.video: {type} (KubeVirt's names); the graphics device it replaces must be attached. */
static int parse_video(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"type", NULL};
        static const char *const types[] = {[VIDEO_VGA] = "vga",
                                            [VIDEO_VIRTIO] = "virtio",
                                            [VIDEO_BOCHS] = "bochs",
                                            [VIDEO_CIRRUS] = "cirrus",
                                            NULL};
        const cJSON *o = NULL;
        char p[JPATH_MAX];
        JF_TRY(jf_object(devices, path, "video", &o, err));
        if (!o)
                return 0;
        jpath_key(p, path, "video");
        JF_TRY(jf_check_keys(o, p, allowed, NULL, err));
        int type = VIDEO_VGA;
        JF_TRY(jf_enum(o, p, "type", types, &type, err));
        if (!v->graphics)
                return jf_error(err, p,
                                "needs autoattachGraphicsDevice (a video device is a graphics device)");
        v->video = type;
        return 0;
}

/* devices.watchdog: {name, i6300esb: {action}}: Intel's 6300ESB and what QEMU does when it fires. */
static int parse_watchdog(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "i6300esb", NULL};
        static const char *const esb_keys[] = {"action", NULL};
        static const char *const actions[] = {"poweroff", "reset", "shutdown", NULL};
        const cJSON *o = NULL, *esb = NULL;
        char p[JPATH_MAX], ep[JPATH_MAX];
        JF_TRY(jf_object(devices, path, "watchdog", &o, err));
        if (!o)
                return 0;
        jpath_key(p, path, "watchdog");
        JF_TRY(jf_check_keys(o, p, allowed, NULL, err));
        JF_TRY(element_name(o, p, p, 0, sizeof(char *), NULL, &v->watchdog_name, err));
        JF_TRY(jf_object(o, p, "i6300esb", &esb, err));
        if (!esb)
                return jf_error(err, jpath_key(ep, p, "i6300esb"), "is required (the only watchdog model)");
        jpath_key(ep, p, "i6300esb");
        JF_TRY(jf_check_keys(esb, ep, esb_keys, NULL, err));
        int action = 1; /* KubeVirt's default: reset */
        JF_TRY(jf_enum(esb, ep, "action", actions, &action, err));
        v->watchdog = WATCHDOG_POWEROFF + action;
        return 0;
}

/* devices.sound: {name, model}: ich9 (the default) or ac97, with no host audio (audiodev none). */
static int parse_sound(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "model", NULL};
        static const char *const models[] = {"ich9", "ac97", NULL};
        const cJSON *o = NULL;
        char p[JPATH_MAX];
        JF_TRY(jf_object(devices, path, "sound", &o, err));
        if (!o)
                return 0;
        jpath_key(p, path, "sound");
        JF_TRY(jf_check_keys(o, p, allowed, NULL, err));
        JF_TRY(element_name(o, p, p, 0, sizeof(char *), NULL, &v->sound_name, err));
        int model = 0;
        JF_TRY(jf_enum(o, p, "model", models, &model, err));
        v->sound = SOUND_ICH9 + model;
        return 0;
}

/* devices.tpm: {enabled, persistent}: a TPM 2.0 (tpm-crb) backed by swtpm, which the launcher runs. */
static int parse_tpm(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"enabled", "persistent", NULL};
        const cJSON *o = NULL;
        char p[JPATH_MAX];
        JF_TRY(jf_object(devices, path, "tpm", &o, err));
        if (!o)
                return 0;
        jpath_key(p, path, "tpm");
        JF_TRY(jf_check_keys(o, p, allowed, NULL, err));
        bool enabled = true; /* KubeVirt: enabled defaults to true; false turns a preference's TPM off */
        JF_TRY(jf_bool(o, p, "enabled", &enabled, err));
        JF_TRY(jf_bool(o, p, "persistent", &v->tpm_persistent, err));
        v->tpm = enabled;
        v->tpm_persistent &= enabled;
        return 0;
}

/* devices.panicDevices[]: {model}: isa (libvirt's x86 default: QEMU's ISA pvpanic) or pvpanic (the PCI
 * one); hyperv is a Hyper-V enlightenment (features.hyperv), not a device. */
static int parse_panic(vmi *v, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"model", NULL};
        static const char *const models[] = {"isa", "pvpanic", "hyperv", NULL};
        char p[JPATH_MAX];
        if (!cJSON_IsObject(item))
                return jf_error(err, path, "expected an object");
        JF_TRY(jf_check_keys(item, path, allowed, NULL, err));
        int model = 0;
        JF_TRY(jf_enum(item, path, "model", models, &model, err));
        if (model == 2)
                return jf_error(err, jpath_key(p, path, "model"),
                                "\"hyperv\" is not supported (a Hyper-V crash MSR, not a device; isa or "
                                "pvpanic are)");
        if (v->panic != PANIC_NONE)
                return jf_error(err, path, "only one panic device is supported");
        v->panic = PANIC_ISA + model;
        return 0;
}

/* autoattachInputDevice with no inputs: KubeVirt adds a USB tablet named default-0. */
static int add_default_input(vmi *v, kv_error *err)
{
        vmi_input *in = vmi_grow((void **)&v->inputs, &v->n_inputs, sizeof(*in));
        if (!in || !(in->name = strdup("default-0")))
                return OOM(err);
        in->type = INPUT_TABLET, in->bus = INPUT_BUS_USB;
        return 0;
}

/* devices.ioThreadsPolicy: shared (one iothread for the virtio disks) or auto (a pool of up to twice the
 * vCPUs, round robin); a disk with dedicatedIOThread gets its own. Sets disks' iothread numbers. */
static int assign_iothreads(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const policies[] = {"shared", "auto", NULL};
        int policy = -1;
        JF_TRY(jf_enum(devices, path, "ioThreadsPolicy", policies, &policy, err));
        bool dedicated = false;
        size_t shared_disks = 0;
        for (size_t i = 0; i < v->n_disks; i++) {
                dedicated |= v->disks[i].dedicated_iothread;
                shared_disks += v->disks[i].bus == BUS_VIRTIO && !v->disks[i].dedicated_iothread;
        }
        if (policy < 0 && !dedicated)
                return 0;
        v->iothreads = policy == 1 ? IOTHREADS_AUTO : IOTHREADS_SHARED; /* dedicated alone: shared */
        unsigned vcpus = v->sockets * v->cores * v->threads;
        unsigned pool = v->iothreads == IOTHREADS_AUTO ? 2 * vcpus : 1;
        if (pool > shared_disks)
                pool = shared_disks;
        unsigned own = 0, shared = 0;
        for (size_t i = 0; i < v->n_disks; i++) {
                vmi_disk *d = &v->disks[i];
                if (d->bus == BUS_VIRTIO)
                        d->iothread = d->dedicated_iothread ? pool + 1 + own++ : 1 + shared++ % pool;
        }
        v->n_iothreads = pool + own;
        return 0;
}

/* filesystems[]: {name, virtiofs: {}} (virtiofs is the only kind); the volume is linked in
 * vmi_parse_volumes. */
static int parse_filesystem(vmi *v, const cJSON *item, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "virtiofs", NULL};
        char p[JPATH_MAX];
        if (!cJSON_IsObject(item))
                return jf_error(err, path, "expected an object");
        JF_TRY(jf_check_keys(item, path, allowed, NULL, err));
        vmi_filesystem *fs = vmi_grow((void **)&v->filesystems, &v->n_filesystems, sizeof(*fs));
        if (!fs)
                return OOM(err);
        JF_TRY(element_name(item, path, "spec.domain.devices.filesystems", v->n_filesystems - 1, sizeof(*fs),
                            v->filesystems, &fs->name, err));
        int r = empty_object(item, path, "virtiofs", err);
        JF_TRY(r);
        return r ? 0
                 : jf_error(err, jpath_key(p, path, "virtiofs"), "is required (the only filesystem type)");
}

typedef int (*element_parser)(vmi *v, const cJSON *item, const char *path, kv_error *err);

static int parse_list(vmi *v, const cJSON *parent, const char *path, const char *key, element_parser fn,
                      kv_error *err)
{
        const cJSON *list = NULL, *item;
        char lp[JPATH_MAX], p[JPATH_MAX];
        size_t i = 0;
        JF_TRY(jf_array(parent, path, key, &list, err));
        jpath_key(lp, path, key);
        cJSON_ArrayForEach(item, list)
        {
                if (i >= 256)
                        return jf_error(err, lp, "more than 256 entries");
                JF_TRY(fn(v, item, jpath_index(p, lp, i++), err));
        }
        return 0;
}

int vmi_parse_devices(vmi *v, const cJSON *devices, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"disks",
                                              "interfaces",
                                              "inputs",
                                              "rng",
                                              "autoattachSerialConsole",
                                              "autoattachGraphicsDevice",
                                              "autoattachMemBalloon",
                                              "autoattachPodInterface",
                                              "disableHotplug",
                                              "logSerialConsole",
                                              "useVirtioTransitional",
                                              "blockMultiQueue",
                                              "networkInterfaceMultiqueue",
                                              "autoattachVSOCK",
                                              "autoattachInputDevice",
                                              "video",
                                              "watchdog",
                                              "ioThreadsPolicy",
                                              "filesystems",
                                              "tpm",
                                              "sound",
                                              "panicDevices",
                                              "downwardMetrics",
                                              NULL};
        /* Devices that pass host hardware through: refused with what is missing rather than "not supported".
         */
        static const char *const host_hardware[][2] = {
            {"gpus", "needs a GPU (a device plugin's resource) passed through from the host"},
            {"hostDevices", "needs PCI or USB host devices passed through from the host"},
            {"clientPassthrough", "needs a USB client redirecting its devices (virtctl usbredir), a "
                                  "usbredir channel"},
        };
        /* KubeVirt fields this launcher has no backend for, with what is missing. */
        static const char *const unsupported[][2] = {
            {"vsock", "is not a KubeVirt field (KubeVirt's VSOCK device is devices.autoattachVSOCK: true)"},
        };
        if (!devices)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(host_hardware); i++) {
                char p[JPATH_MAX];
                if (cJSON_GetObjectItemCaseSensitive(devices, host_hardware[i][0]))
                        return jf_error(err, jpath_key(p, path, host_hardware[i][0]),
                                        "%s, which this host lacks", host_hardware[i][1]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++) {
                char p[JPATH_MAX];
                if (cJSON_GetObjectItemCaseSensitive(devices, unsupported[i][0]))
                        return jf_error(err, jpath_key(p, path, unsupported[i][0]), "%s", unsupported[i][1]);
        }
        JF_TRY(jf_check_keys(devices, path, allowed, NULL, err));
        bool ignored = false, input = false;
        JF_TRY(jf_bool(devices, path, "disableHotplug", &ignored, err));
        JF_TRY(jf_bool(devices, path, "logSerialConsole", &ignored, err));
        JF_TRY(jf_bool(devices, path, "autoattachPodInterface", &ignored, err));
        JF_TRY(jf_bool(devices, path, "autoattachSerialConsole", &v->serial_console, err));
        JF_TRY(jf_bool(devices, path, "autoattachGraphicsDevice", &v->graphics, err));
        JF_TRY(jf_bool(devices, path, "autoattachMemBalloon", &v->mem_balloon, err));
        JF_TRY(jf_bool(devices, path, "autoattachVSOCK", &v->vsock, err));
        JF_TRY(jf_bool(devices, path, "blockMultiQueue", &v->block_multiqueue, err));
        JF_TRY(jf_bool(devices, path, "networkInterfaceMultiqueue", &v->net_multiqueue, err));
        JF_TRY(jf_bool(devices, path, "useVirtioTransitional", &v->virtio_transitional, err));
        JF_TRY(jf_bool(devices, path, "autoattachInputDevice", &input, err));
        JF_TRY(parse_video(v, devices, path, err));
        JF_TRY(parse_watchdog(v, devices, path, err));
        JF_TRY(parse_sound(v, devices, path, err));
        JF_TRY(parse_tpm(v, devices, path, err));
        JF_TRY(parse_list(v, devices, path, "panicDevices", parse_panic, err));
        int rng = empty_object(devices, path, "rng", err);
        JF_TRY(rng);
        v->rng = rng;
        /* downwardMetrics: {}: the virtio-serial port org.github.vhostmd.1 the launcher answers on */
        int metrics = empty_object(devices, path, "downwardMetrics", err);
        JF_TRY(metrics);
        v->downward_metrics = metrics;
        JF_TRY(parse_list(v, devices, path, "disks", parse_disk, err));
        JF_TRY(parse_list(v, devices, path, "filesystems", parse_filesystem, err));
        /* interfaces: with spec.networks in vmi_parse_networks (libkvnet's rules) */
        JF_TRY(parse_list(v, devices, path, "inputs", parse_input, err));
        return input && !v->n_inputs ? add_default_input(v, err) : 0;
}

/* ---- volumes ---------------------------------------------------------------------------------------- */

/* userData / userDataBase64 (and networkData*) into one decoded string. */
static int cloud_init_text(const cJSON *o, const char *path, const char *key, char **out, kv_error *err)
{
        char b64key[64], p[JPATH_MAX];
        _cleanup_free_ char *b64 = NULL;
        snprintf(b64key, sizeof(b64key), "%sBase64", key);
        JF_TRY(jf_string(o, path, key, false, out, err));
        JF_TRY(jf_string(o, path, b64key, false, &b64, err));
        if (*out && b64)
                return jf_error(err, jpath_key(p, path, b64key), "only one of %s and %s may be set", key,
                                b64key);
        if (b64 && base64_decode(b64, BASE64_TEXT, out, NULL) < 0)
                return jf_error(err, jpath_key(p, path, b64key), "is not valid base64 text");
        return 0;
}

/* A reference to a Kubernetes object by name (a Secret, ConfigMap or ServiceAccount in the VMI's namespace).
 */
static int object_name(const cJSON *o, const char *path, const char *key, const char *what, char **out,
                       kv_error *err)
{
        char p[JPATH_MAX];
        JF_TRY(jf_string(o, path, key, true, out, err));
        if (!**out || strlen(*out) > 253 || jf_has_control_chars(*out) || strchr(*out, '/'))
                return jf_error(err, jpath_key(p, path, key), "is not a valid %s name", what);
        return 0;
}

/* secretRef (KubeVirt's JSON name of UserDataSecretRef; userDataSecretRef is accepted too) and
 * networkDataSecretRef: {name}; exclusive with the inline forms of the same data. */
static int cloud_init_secret(const cJSON *o, const char *path, const char *key, const char *ref,
                             const char *text, char **out, kv_error *err)
{
        static const char *const allowed[] = {"name", NULL};
        char p[JPATH_MAX];
        const cJSON *r = NULL;
        JF_TRY(jf_object(o, path, ref, &r, err));
        if (!r)
                return 0;
        jpath_key(p, path, ref);
        if (text || *out)
                return jf_error(err, p, "only one of %s, %sBase64 and %s may be set", key, key, ref);
        JF_TRY(jf_check_keys(r, p, allowed, NULL, err));
        return object_name(r, p, "name", "Secret", out, err);
}

/* cloudInitNoCloud and cloudInitConfigDrive share their fields. */
static int parse_cloud_init_fields(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {
            "userData",          "userDataBase64",       "secretRef", "userDataSecretRef", "networkData",
            "networkDataBase64", "networkDataSecretRef", NULL};
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(cloud_init_text(o, path, "userData", &vol->user_data, err));
        JF_TRY(cloud_init_text(o, path, "networkData", &vol->network_data, err));
        JF_TRY(
            cloud_init_secret(o, path, "userData", "secretRef", vol->user_data, &vol->user_data_secret, err));
        vol->user_data_secret_short = vol->user_data_secret != NULL;
        JF_TRY(cloud_init_secret(o, path, "userData", "userDataSecretRef", vol->user_data,
                                 &vol->user_data_secret, err));
        JF_TRY(cloud_init_secret(o, path, "networkData", "networkDataSecretRef", vol->network_data,
                                 &vol->network_data_secret, err));
        if (!vol->user_data && !vol->network_data && !vol->user_data_secret && !vol->network_data_secret)
                return jf_error(err, path,
                                "userData or networkData (inline, Base64 or SecretRef) is required");
        return 0;
}

static int parse_cloud_init(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        vol->kind = VOL_CLOUD_INIT_NOCLOUD;
        return parse_cloud_init_fields(vol, o, path, err);
}

static int parse_config_drive(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        vol->kind = VOL_CLOUD_INIT_CONFIG_DRIVE;
        return parse_cloud_init_fields(vol, o, path, err);
}

/* volumeLabel: an ISO9660 volume identifier (at most 32 characters). */
static int volume_label(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        char p[JPATH_MAX];
        JF_TRY(jf_string(o, path, "volumeLabel", false, &vol->volume_label, err));
        if (vol->volume_label && (strlen(vol->volume_label) > 32 || jf_has_control_chars(vol->volume_label)))
                return jf_error(err, jpath_key(p, path, "volumeLabel"),
                                "must be at most 32 characters without control characters");
        return 0;
}

/* items and defaultMode belong to Kubernetes' Pod volume of the same name, not to KubeVirt's
 * ConfigMapVolumeSource/SecretVolumeSource (name or secretName, optional, volumeLabel): the API server's
 * strict field validation refuses them, so they are refused here with that reason rather than ignored. */
static int pod_volume_only_keys(const cJSON *o, const char *path, kv_error *err)
{
        static const char *const keys[] = {"items", "defaultMode"};
        char p[JPATH_MAX];
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (cJSON_GetObjectItemCaseSensitive(o, keys[i]))
                        return jf_error(err, jpath_key(p, path, keys[i]),
                                        "is not a KubeVirt field (Kubernetes' Pod volume has it, KubeVirt's "
                                        "volume does not: every key becomes a file named after it)");
        return 0;
}

static int parse_config_map(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "optional", "volumeLabel", NULL};
        vol->kind = VOL_CONFIG_MAP;
        JF_TRY(pod_volume_only_keys(o, path, err));
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(object_name(o, path, "name", "ConfigMap", &vol->source_name, err));
        JF_TRY(jf_bool(o, path, "optional", &vol->source_optional, err));
        return volume_label(vol, o, path, err);
}

static int parse_secret(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"secretName", "optional", "volumeLabel", NULL};
        vol->kind = VOL_SECRET;
        JF_TRY(pod_volume_only_keys(o, path, err));
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(object_name(o, path, "secretName", "Secret", &vol->source_name, err));
        JF_TRY(jf_bool(o, path, "optional", &vol->source_optional, err));
        return volume_label(vol, o, path, err);
}

static int parse_service_account(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"serviceAccountName", NULL};
        vol->kind = VOL_SERVICE_ACCOUNT;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        return object_name(o, path, "serviceAccountName", "ServiceAccount", &vol->source_name, err);
}

/* downwardAPI.fields[]: Kubernetes' DownwardAPIVolumeFile {path, fieldRef | resourceFieldRef, mode}; the
 * kubelet resolves them, the launcher only needs a relative file path for each. */
static int parse_downward_field(const cJSON *f, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"path", "fieldRef", "resourceFieldRef", "mode", NULL};
        _cleanup_free_ char *file = NULL;
        const cJSON *field = NULL, *res = NULL;
        char p[JPATH_MAX];
        if (!cJSON_IsObject(f))
                return jf_error(err, path, "expected an object");
        JF_TRY(jf_check_keys(f, path, allowed, NULL, err));
        JF_TRY(jf_string(f, path, "path", true, &file, err));
        if (file[0] == '/' || jf_check_image_path(file, jpath_key(p, path, "path"), err) < 0)
                return jf_error(err, jpath_key(p, path, "path"), "must be a relative path without \"..\"");
        JF_TRY(jf_object(f, path, "fieldRef", &field, err));
        JF_TRY(jf_object(f, path, "resourceFieldRef", &res, err));
        if (!field == !res)
                return jf_error(err, path, "exactly one of fieldRef and resourceFieldRef is required");
        return 0;
}

static int parse_downward_api(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"fields", "volumeLabel", NULL};
        const cJSON *fields = NULL, *f;
        char lp[JPATH_MAX], p[JPATH_MAX];
        size_t i = 0;
        vol->kind = VOL_DOWNWARD_API;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_array(o, path, "fields", &fields, err));
        jpath_key(lp, path, "fields");
        cJSON_ArrayForEach(f, fields)
        {
                if (i >= 256)
                        return jf_error(err, lp, "more than 256 entries");
                JF_TRY(parse_downward_field(f, jpath_index(p, lp, i++), err));
        }
        if (fields && !(vol->downward_fields = cJSON_Duplicate(fields, true)))
                return OOM(err);
        return volume_label(vol, o, path, err);
}

/* sysprep: {configMap: {name}} or {secret: {name}} holding autounattend.xml or unattend.xml. */
static int parse_sysprep(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"configMap", "secret", NULL};
        static const char *const ref_keys[] = {"name", NULL};
        const cJSON *cm = NULL, *sec = NULL;
        char p[JPATH_MAX];
        vol->kind = VOL_SYSPREP;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_object(o, path, "configMap", &cm, err));
        JF_TRY(jf_object(o, path, "secret", &sec, err));
        if (!cm == !sec)
                return jf_error(err, path, "exactly one of configMap and secret is required");
        vol->source_is_secret = sec != NULL;
        jpath_key(p, path, sec ? "secret" : "configMap");
        JF_TRY(jf_check_keys(sec ? sec : cm, p, ref_keys, NULL, err));
        return object_name(sec ? sec : cm, p, "name", sec ? "Secret" : "ConfigMap", &vol->source_name, err);
}

/* downwardMetrics: {}: a disk in vhostmd's format (launcher/supervisor/metrics.c writes it). */
static int parse_downward_metrics(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        vol->kind = VOL_DOWNWARD_METRICS;
        return jf_check_keys(o, path, NULL, NULL, err);
}

bool vmi_volume_is_data(volume_kind k)
{
        return k == VOL_CONFIG_MAP || k == VOL_SECRET || k == VOL_SERVICE_ACCOUNT || k == VOL_DOWNWARD_API ||
               k == VOL_SYSPREP;
}

const char *vmi_volume_label(const vmi_volume *vol)
{
        if (vol->volume_label && *vol->volume_label)
                return vol->volume_label;
        switch (vol->kind) {
        case VOL_CLOUD_INIT_NOCLOUD:
                return "cidata";
        case VOL_CLOUD_INIT_CONFIG_DRIVE:
                return "config-2";
        case VOL_SYSPREP:
                return "unattendCD";
        default:
                return "cfgdata"; /* KubeVirt's label for configMap, secret, serviceAccount, downwardAPI */
        }
}

static int parse_claim(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"claimName", "readOnly", "hotpluggable", NULL};
        char p[JPATH_MAX];
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_string(o, path, "claimName", true, &vol->claim_name, err));
        if (!*vol->claim_name || strlen(vol->claim_name) > 253 || jf_has_control_chars(vol->claim_name) ||
            strchr(vol->claim_name, '/'))
                return jf_error(err, jpath_key(p, path, "claimName"), "is not a valid claim name");
        JF_TRY(jf_bool(o, path, "hotpluggable", &vol->hotpluggable, err));
        return jf_bool(o, path, "readOnly", &vol->claim_readonly, err);
}

static int parse_ephemeral(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"persistentVolumeClaim", NULL};
        const cJSON *pvc = NULL;
        char p[JPATH_MAX];
        vol->kind = VOL_EPHEMERAL;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_object(o, path, "persistentVolumeClaim", &pvc, err));
        if (!pvc)
                return jf_error(err, jpath_key(p, path, "persistentVolumeClaim"), "is required");
        return parse_claim(vol, pvc, jpath_key(p, path, "persistentVolumeClaim"), err);
}

static int parse_capacity(vmi_volume *vol, const cJSON *o, const char *path, bool required, kv_error *err)
{
        const cJSON *cap = cJSON_GetObjectItemCaseSensitive(o, "capacity");
        char p[JPATH_MAX];
        jpath_key(p, path, "capacity");
        if (!cap || cJSON_IsNull(cap))
                return required ? jf_error(err, p, "is required") : 0;
        JF_TRY(quantity_bytes(cap, p, &vol->capacity, err));
        if (vol->capacity < 512)
                return jf_error(err, p, "must be at least 512 bytes");
        return 0;
}

static int parse_host_disk(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"path", "type", "capacity", "shared", NULL};
        static const char *const types[] = {"Disk", "DiskOrCreate", NULL};
        char p[JPATH_MAX];
        int type = -1;
        vol->kind = VOL_HOST_DISK;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(must_be_false(o, path, "shared", err));
        JF_TRY(jf_string(o, path, "path", true, &vol->host_path, err));
        JF_TRY(jf_check_abs_path(vol->host_path, jpath_key(p, path, "path"), err));
        JF_TRY(jf_enum(o, path, "type", types, &type, err));
        if (type < 0)
                return jf_error(err, jpath_key(p, path, "type"), "is required (Disk or DiskOrCreate)");
        vol->host_create = type == 1;
        return parse_capacity(vol, o, path, vol->host_create, err);
}

static int parse_container_disk(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"image", "path", NULL};
        static const char *const ignored[] = {"imagePullPolicy", "imagePullSecret", NULL};
        char p[JPATH_MAX];
        vol->kind = VOL_CONTAINER_DISK;
        JF_TRY(jf_check_keys(o, path, allowed, ignored, err));
        JF_TRY(jf_string(o, path, "image", true, &vol->image, err));
        if (!*vol->image || jf_has_control_chars(vol->image))
                return jf_error(err, jpath_key(p, path, "image"), "is not a valid image reference");
        JF_TRY(jf_string(o, path, "path", false, &vol->image_path, err));
        return vol->image_path ? jf_check_image_path(vol->image_path, jpath_key(p, path, "path"), err) : 0;
}

static int parse_empty_disk(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"capacity", NULL};
        vol->kind = VOL_EMPTY_DISK;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        return parse_capacity(vol, o, path, true, err);
}

static int parse_pvc(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        vol->kind = VOL_PVC;
        return parse_claim(vol, o, path, err);
}

/* KubeVirt mounts a DataVolume's claim, which has the DataVolume's name: the volume is that claim. */
static int parse_data_volume(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"name", "hotpluggable", NULL};
        char p[JPATH_MAX];
        vol->kind = VOL_PVC;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_string(o, path, "name", true, &vol->claim_name, err));
        if (!*vol->claim_name || strlen(vol->claim_name) > 253 || jf_has_control_chars(vol->claim_name) ||
            strchr(vol->claim_name, '/'))
                return jf_error(err, jpath_key(p, path, "name"), "is not a valid DataVolume name");
        return jf_bool(o, path, "hotpluggable", &vol->hotpluggable, err);
}

/* containerPath: {path, readOnly} (KubeVirt's ContainerPathVolumeSource): a directory of the launcher's
 * container shared over virtiofs. KubeVirt's CRD rules: path absolute, without "..", at most 4096 bytes;
 * readOnly defaults to true and must be true (write access is not supported). */
static int parse_container_path(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err)
{
        static const char *const allowed[] = {"path", "readOnly", NULL};
        bool read_only = true;
        char p[JPATH_MAX];
        vol->kind = VOL_CONTAINER_PATH;
        JF_TRY(jf_check_keys(o, path, allowed, NULL, err));
        JF_TRY(jf_string(o, path, "path", true, &vol->host_path, err));
        jpath_key(p, path, "path");
        if (strlen(vol->host_path) > 4096)
                return jf_error(err, p, "must be at most 4096 characters");
        if (strstr(vol->host_path, ".."))
                return jf_error(err, p, "\"%.100s\" must not contain \"..\"", vol->host_path);
        if (!strcmp(vol->host_path, "/"))
                return jf_error(err, p, "\"/\" is not a volumeMount of the launcher's container");
        JF_TRY(jf_check_abs_path(vol->host_path, p, err));
        JF_TRY(jf_bool(o, path, "readOnly", &read_only, err));
        if (!read_only)
                return jf_error(err, jpath_key(p, path, "readOnly"),
                                "must be true, write access is not supported (as KubeVirt)");
        return 0;
}

static const struct {
        const char *key;
        int (*parse)(vmi_volume *vol, const cJSON *o, const char *path, kv_error *err);
} volume_sources[] = {
    {"containerDisk", parse_container_disk},
    {"persistentVolumeClaim", parse_pvc},
    {"dataVolume", parse_data_volume},
    {"hostDisk", parse_host_disk},
    {"emptyDisk", parse_empty_disk},
    {"ephemeral", parse_ephemeral},
    {"cloudInitNoCloud", parse_cloud_init},
    {"cloudInitConfigDrive", parse_config_drive},
    {"configMap", parse_config_map},
    {"secret", parse_secret},
    {"serviceAccount", parse_service_account},
    {"downwardAPI", parse_downward_api},
    {"sysprep", parse_sysprep},
    {"downwardMetrics", parse_downward_metrics},
    {"containerPath", parse_container_path},
};

static int parse_volume(vmi *v, const cJSON *item, const char *path, kv_error *err)
{
        if (!cJSON_IsObject(item))
                return jf_error(err, path, "expected an object");
        vmi_volume *vol = vmi_grow((void **)&v->volumes, &v->n_volumes, sizeof(*vol));
        if (!vol)
                return OOM(err);
        JF_TRY(element_name(item, path, "spec.volumes", v->n_volumes - 1, sizeof(*vol), v->volumes,
                            &vol->name, err));
        const cJSON *c, *source = NULL;
        size_t which = 0;
        cJSON_ArrayForEach(c, item)
        {
                char p[JPATH_MAX];
                if (!strcmp(c->string, "name"))
                        continue;
                jpath_key(p, path, c->string);
                for (which = 0; which < ARRAY_SIZE(volume_sources); which++)
                        if (!strcmp(c->string, volume_sources[which].key))
                                break;
                if (which == ARRAY_SIZE(volume_sources) && !strcmp(c->string, "memoryDump"))
                        return jf_error(err, p,
                                        "is not supported: KubeVirt's virt-controller adds this volume for "
                                        "`virtctl memory-dump` (a claim QEMU's dump-guest-memory writes "
                                        "into), which kvlite does not implement");
                if (which == ARRAY_SIZE(volume_sources))
                        return jf_error(
                            err, p,
                            "volume type is not supported (supported: "
                            "containerDisk, persistentVolumeClaim, dataVolume, hostDisk, emptyDisk, "
                            "ephemeral, cloudInitNoCloud, cloudInitConfigDrive, configMap, secret, "
                            "serviceAccount, downwardAPI, sysprep, downwardMetrics, containerPath)");
                if (source)
                        return jf_error(err, path, "only one volume source may be set");
                if (!cJSON_IsObject(c))
                        return jf_error(err, p, "expected an object");
                source = c;
                JF_TRY(volume_sources[which].parse(vol, c, p, err));
        }
        return source ? 0 : jf_error(err, path, "a volume source is required");
}

/* Boot orders must be unique across disks and interfaces (QEMU refuses duplicate bootindex). */
static int check_boot_orders(const vmi *v, kv_error *err)
{
        for (size_t i = 0; i < v->n_disks + v->n_interfaces; i++) {
                unsigned a =
                    i < v->n_disks ? v->disks[i].boot_order : v->interfaces[i - v->n_disks].boot_order;
                for (size_t j = 0; a && j < i; j++) {
                        unsigned b = j < v->n_disks ? v->disks[j].boot_order
                                                    : v->interfaces[j - v->n_disks].boot_order;
                        if (a != b)
                                continue;
                        char p[JPATH_MAX];
                        if (i < v->n_disks)
                                snprintf(p, sizeof(p), "spec.domain.devices.disks[%zu].bootOrder", i);
                        else
                                snprintf(p, sizeof(p), "spec.domain.devices.interfaces[%zu].bootOrder",
                                         i - v->n_disks);
                        return jf_error(err, p, "%u is already used by another device", a);
                }
        }
        return 0;
}

/* Each filesystem shares the volume of its name (a directory: data volumes and claims), which then gets
 * no disk. */
static int link_filesystems(vmi *v, bool *used, kv_error *err)
{
        for (size_t i = 0; i < v->n_filesystems; i++) {
                char p[JPATH_MAX];
                size_t k = 0;
                snprintf(p, sizeof(p), "spec.domain.devices.filesystems[%zu].name", i);
                while (k < v->n_volumes && strcmp(v->volumes[k].name, v->filesystems[i].name))
                        k++;
                if (k == v->n_volumes)
                        return jf_error(err, p, "no volume named \"%s\" in spec.volumes",
                                        v->filesystems[i].name);
                vmi_volume *vol = &v->volumes[k];
                if (used[k])
                        return jf_error(err, p, "volume \"%s\" is also used by a disk", vol->name);
                if (!(vmi_volume_is_data(vol->kind) && vol->kind != VOL_SYSPREP) && vol->kind != VOL_PVC &&
                    vol->kind != VOL_CONTAINER_PATH)
                        return jf_error(err, p,
                                        "volume \"%s\" cannot be shared over virtiofs (configMap, secret, "
                                        "serviceAccount, downwardAPI, persistentVolumeClaim and "
                                        "containerPath can)",
                                        vol->name);
                v->filesystems[i].volume = k;
                vol->filesystem = used[k] = true;
        }
        return 0;
}

int vmi_parse_volumes(vmi *v, const cJSON *spec, kv_error *err)
{
        JF_TRY(parse_list(v, spec, "spec", "volumes", parse_volume, err));
        _cleanup_free_ bool *used = calloc(v->n_volumes + 1, sizeof(bool));
        if (!used)
                return OOM(err);
        for (size_t i = 0; i < v->n_disks; i++) {
                size_t k = 0;
                while (k < v->n_volumes && strcmp(v->volumes[k].name, v->disks[i].name))
                        k++;
                char p[JPATH_MAX];
                snprintf(p, sizeof(p), "spec.domain.devices.disks[%zu].name", i);
                if (k == v->n_volumes)
                        return jf_error(err, p, "no volume named \"%s\" in spec.volumes", v->disks[i].name);
                if (v->volumes[k].kind == VOL_CONTAINER_PATH)
                        return jf_error(
                            err, p,
                            "volume \"%s\" is a containerPath, which is shared only over virtiofs "
                            "(spec.domain.devices.filesystems), never as a disk",
                            v->disks[i].name);
                v->disks[i].volume = k;
                used[k] = true;
        }
        JF_TRY(link_filesystems(v, used, err));
        /* KubeVirt's default (SetDefaultVolumeDisk): a volume no disk names gets a disk of its name, which
         * defaults to a virtio disk. */
        for (size_t k = 0; k < v->n_volumes; k++) {
                if (used[k])
                        continue;
                if (v->volumes[k].kind == VOL_CONTAINER_PATH) {
                        char p[JPATH_MAX];
                        snprintf(p, sizeof(p), "spec.volumes[%zu].containerPath", k);
                        return jf_error(err, p,
                                        "needs a filesystem of the same name in "
                                        "spec.domain.devices.filesystems (shared only over virtiofs)");
                }
                vmi_disk *d = vmi_grow((void **)&v->disks, &v->n_disks, sizeof(*d));
                if (!d || !(d->name = strdup(v->volumes[k].name)))
                        return OOM(err);
                d->kind = DISK_DISK, d->bus = BUS_VIRTIO, d->volume = k;
        }
        const cJSON *devices =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "domain"), "devices");
        JF_TRY(assign_iothreads(v, cJSON_IsObject(devices) ? devices : NULL, "spec.domain.devices", err));
        return 0; /* boot orders: once the interfaces are known (vmi_parse_networks) */
}

/* ---- networks --------------------------------------------------------------------------------------- */

/* The interface JSON of the pod network, for what libkvnet leaves to the argv builder (bootOrder). */
static const cJSON *pod_interface_json(const cJSON *spec, const char *name, char path[static JPATH_MAX])
{
        const cJSON *devices =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "domain"), "devices");
        const cJSON *item;
        size_t i = 0;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(devices, "interfaces"))
        {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "name");
                jpath_index(path, "spec.domain.devices.interfaces", i++);
                if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
                        return item;
        }
        return NULL;
}

static bool has_binding_key(const cJSON *iface)
{
        static const char *const keys[] = {"masquerade", "bridge", "passt", "slirp", "binding"};
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
                if (cJSON_GetObjectItemCaseSensitive(iface, keys[k]))
                        return true;
        return false;
}

static nic_model model_from_name(const char *name)
{
        static const char *const models[] = {[NIC_VIRTIO] = "virtio",
                                             [NIC_E1000E] = "e1000e",
                                             [NIC_E1000] = "e1000",
                                             [NIC_RTL8139] = "rtl8139"};
        for (size_t i = 0; i < ARRAY_SIZE(models); i++)
                if (!strcmp(name, models[i]))
                        return (nic_model)i;
        return NIC_VIRTIO;
}

/* spec.networks and spec.domain.devices.interfaces are checked by libkvnet (net_request_from_vmi),
 * the same rules net_setup applies; the model keeps what the argv builder needs. */
int vmi_parse_networks(vmi *v, const cJSON *spec, kv_error *err)
{
        JF_TRY(net_request_from_vmi(spec, &v->net, err));
        if (v->net.binding == NET_BINDING_NONE)
                return check_boot_orders(v, err);
        vmi_interface *nic = vmi_grow((void **)&v->interfaces, &v->n_interfaces, sizeof(*nic));
        if (!nic || !(nic->name = strdup(v->net.iface_name)) ||
            (v->net.mac[0] && !(nic->mac = strdup(v->net.mac))))
                return OOM(err);
        nic->binding = v->net.binding;
        nic->model = model_from_name(v->net.model);
        char p[JPATH_MAX];
        const cJSON *item = pod_interface_json(spec, nic->name, p);
        nic->binding_implied = !item || !has_binding_key(item); /* auto-attached, or no binding key */
        int64_t boot = 0;
        if (item)
                JF_TRY(jf_int(item, p, "bootOrder", 1, 65535, &boot, NULL, err));
        nic->boot_order = boot;
        return check_boot_orders(v, err);
}

void vmi_free_devices(vmi *v)
{
        for (size_t i = 0; i < v->n_disks; i++)
                free(v->disks[i].name), free(v->disks[i].serial);
        for (size_t i = 0; i < v->n_volumes; i++) {
                vmi_volume *vol = &v->volumes[i];
                free(vol->name), free(vol->image), free(vol->image_path), free(vol->claim_name),
                    free(vol->host_path);
                free(vol->user_data), free(vol->network_data), free(vol->prep.path), free(vol->prep.base);
                free(vol->user_data_secret), free(vol->network_data_secret);
                free(vol->source_name), free(vol->volume_label);
                cJSON_Delete(vol->downward_fields);
        }
        for (size_t i = 0; i < v->n_filesystems; i++)
                free(v->filesystems[i].name);
        free(v->filesystems);
        for (size_t i = 0; i < v->n_interfaces; i++)
                free(v->interfaces[i].name), free(v->interfaces[i].mac);
        for (size_t i = 0; i < v->n_inputs; i++)
                free(v->inputs[i].name);
        free(v->disks), free(v->volumes), free(v->interfaces), free(v->inputs);
        free(v->sound_name), free(v->tpm_state_dir);
}
