/* vmi: the typed model of a kubevirt.io/v1 VirtualMachineInstance, loaded from YAML/JSON and validated.
 * Every unsupported field that would change the guest is rejected with its JSON path (-EINVAL,
 * err->msg = "spec.domain.devices.disks[1].disk.bus: \"ide\" is not supported ..."). Pure: no I/O besides
 * reading the manifest in vmi_load(). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "netspec.h" /* the network part of the spec (vmi-net.c) */

#define VMI_DEFAULT_GRACE_SECONDS 30
/* The kernelBoot image is mounted at <image-root>/kernelboot; no volume may use that name then. */
#define VMI_KERNEL_BOOT_IMAGE_NAME "kernelboot"

typedef enum { IMG_RAW, IMG_QCOW2 } image_format;

typedef enum { DISK_DISK, DISK_CDROM, DISK_LUN } disk_kind; /* DISK_LUN: a SCSI LUN (bus scsi) */
typedef enum { BUS_VIRTIO, BUS_SATA, BUS_SCSI } disk_bus;
typedef enum { CACHE_DEFAULT, CACHE_NONE, CACHE_WRITETHROUGH, CACHE_WRITEBACK } disk_cache;
typedef enum { DISK_IO_DEFAULT, DISK_IO_NATIVE, DISK_IO_THREADS } disk_io;
typedef enum {
        ERROR_POLICY_DEFAULT,
        ERROR_POLICY_STOP,
        ERROR_POLICY_IGNORE,
        ERROR_POLICY_REPORT,
        ERROR_POLICY_ENOSPACE
} disk_error_policy;

/* spec.readinessProbe / spec.livenessProbe (api/vmi-probe.c). */
typedef enum { PROBE_NONE, PROBE_TCP, PROBE_HTTP, PROBE_EXEC, PROBE_AGENT_PING } probe_kind;
typedef struct vmi_probe {
        probe_kind kind;     /* PROBE_NONE: no probe */
        int port;            /* tcpSocket, httpGet */
        char *host;          /* NULL: the guest's address */
        char *http_path;     /* NULL: "/" */
        char **http_headers; /* "Name: value" lines */
        size_t n_http_headers;
        char **exec_argv; /* exec.command, NULL-terminated (run by the guest agent) */
        int64_t initial_delay, period, timeout, success_threshold, failure_threshold; /* seconds, counts */
} vmi_probe;
const char *probe_kind_name(probe_kind k);

typedef struct vmi_disk {
        char *name;
        disk_kind kind;
        disk_bus bus;
        bool readonly;  /* disk.readonly, cdrom.readonly (cdrom default true) */
        bool shareable; /* several VMs may open the image: no image locking, share-rw */
        /* lun.reservation: SCSI persistent reservations through qemu-pr-helper */
        bool reservation;
        bool dedicated_iothread;
        unsigned iothread;      /* 0 = QEMU's main loop; else the iothread<N> object it runs in */
        unsigned rotation_rate; /* disk.rotationRate (scsi/sata): 1 = SSD; 0 = unset */
        char pci_address[13];   /* disk.pciAddress (virtio): "DDDD:BB:SS.F"; "" = its own root port */
        /* blockSize: custom sizes (bytes, 0 = QEMU's default), or matchVolume (the launcher fills the sizes
         * from the volume's filesystem or block device when it prepares it) */
        unsigned logical_block, physical_block, discard_granularity;
        bool block_size_match_volume;
        disk_error_policy error_policy;
        unsigned boot_order; /* 0 = none; else QEMU bootindex */
        char *serial;        /* NULL = none */
        disk_cache cache;
        disk_io io;
        size_t volume; /* index into vmi.volumes */
} vmi_disk;

typedef enum {
        VOL_CONTAINER_DISK,
        VOL_PVC,
        VOL_HOST_DISK,
        VOL_EMPTY_DISK,
        VOL_EPHEMERAL,
        VOL_CLOUD_INIT_NOCLOUD,
        VOL_CLOUD_INIT_CONFIG_DRIVE, /* same fields as NoCloud; OpenStack config-drive layout, label config-2
                                      */
        /* Kubernetes data volumes: the directory <secret_root>/<volume> (in a cluster, the Pod volume the
         * controller mounts there) becomes an ISO9660 disk (each key a file) or a virtiofs share */
        VOL_CONFIG_MAP,
        VOL_SECRET,
        VOL_SERVICE_ACCOUNT,
        VOL_DOWNWARD_API,
        VOL_SYSPREP, /* a ConfigMap or Secret holding autounattend.xml/unattend.xml, label unattendCD */
        VOL_DOWNWARD_METRICS, /* KubeVirt's vhostmd metrics disk: a raw file the launcher keeps rewriting */
        /* containerPath: a directory of the launcher's container (in a cluster, a volumeMount of the Pod's
         * compute container, e.g. a token a webhook injected), only ever shared read-only over virtiofs */
        VOL_CONTAINER_PATH,
} volume_kind;

/* What vmi_prepare() resolved for a volume; qemu_argv_build() reads only this. */
typedef struct volume_prep {
        char *path;          /* absolute path of the image QEMU opens (NULL until prepared) */
        image_format format; /* of path */
        char *base;          /* overlays the launcher made: the read-only base image, else NULL */
        image_format base_format;
        bool read_only; /* the node at path is opened read-only */
        /* path is a block device (a block-mode claim): opened with host_device; scsi_generic: it answers
         * SG_IO (a SCSI disk), so a lun passes the guest's SCSI commands through (scsi-block) */
        bool block_device, scsi_generic;
} volume_prep;

typedef struct vmi_volume {
        char *name;
        volume_kind kind;
        char *image;      /* containerDisk.image: an image reference (absolute directory locally) */
        char *image_path; /* containerDisk.path: disk file inside the image, NULL = the one in /disk */
        char *claim_name; /* persistentVolumeClaim/ephemeral claimName */
        bool claim_readonly;
        bool hotpluggable; /* KubeVirt's marker for volumes added to a running VMI; no effect on the argv */
        /* A migration target's hot-plugged claim that its Pod does not mount (launcher_paths.defer_hotplug):
         * left out of the argv, plugged from virt-handler's fd before the incoming stream is taken. */
        bool deferred;
        char *host_path;   /* hostDisk.path, containerPath.path */
        bool host_create;  /* hostDisk.type DiskOrCreate */
        uint64_t capacity; /* emptyDisk/hostDisk capacity in bytes */
        char *user_data;   /* cloudInitNoCloud (base64 already decoded) */
        char *network_data;
        /* cloudInitNoCloud userDataSecretRef/networkDataSecretRef names: the Secret is mounted at
         * <secret_root>/<volume> and read by vmi_prepare() into user_data/network_data */
        char *user_data_secret, *network_data_secret;
        bool
            user_data_secret_short; /* written as secretRef (KubeVirt's name) rather than userDataSecretRef */
        /* configMap.name, secret.secretName, serviceAccount.serviceAccountName, sysprep's configMap/secret */
        char *source_name;
        bool source_is_secret;  /* sysprep: secret (else configMap) */
        bool source_optional;   /* configMap/secret optional: a missing source is an empty volume */
        char *volume_label;     /* NULL: KubeVirt's default for the kind (vmi_volume_label) */
        cJSON *downward_fields; /* downwardAPI.fields as written (the Pod's downwardAPI items), or NULL */
        bool filesystem;        /* named by spec.domain.devices.filesystems: shared by virtiofs, no disk */
        volume_prep prep;
} vmi_volume;

/* spec.domain.devices.filesystems[]: a volume shared with the guest over virtiofs (tag = name). */
typedef struct vmi_filesystem {
        char *name;
        size_t volume; /* index into vmi.volumes */
} vmi_filesystem;

/* Whether a volume kind is a directory of keys from the Kubernetes API (configMap, secret, ...). */
bool vmi_volume_is_data(volume_kind k);
/* The ISO volume label of a data/cloud-init volume: volumeLabel, else KubeVirt's default ("cfgdata",
 * "config-2", "unattendCD", "cidata"). */
const char *vmi_volume_label(const vmi_volume *vol);

typedef enum { NIC_VIRTIO, NIC_E1000E, NIC_E1000, NIC_RTL8139 } nic_model;

/* The pod interface (libkvnet allows one). Without net_setup's netdev (local mode) masquerade and an
 * implied bridge fall back to QEMU user networking; passt and an explicit bridge need net_setup. */
typedef struct vmi_interface {
        char *name; /* also the network name */
        kvnet_binding binding;
        bool binding_implied; /* no binding key (or auto-attached): KubeVirt's default, bridge */
        nic_model model;
        char *mac; /* NULL = QEMU's default */
        unsigned boot_order;
} vmi_interface;

typedef enum { INPUT_TABLET, INPUT_KEYBOARD } input_type;
typedef enum { INPUT_BUS_USB, INPUT_BUS_VIRTIO } input_bus;
typedef struct vmi_input {
        char *name;
        input_type type;
        input_bus bus;
} vmi_input;

typedef enum {
        CPU_MODEL_DEFAULT,
        CPU_MODEL_HOST_PASSTHROUGH,
        CPU_MODEL_HOST_MODEL,
        CPU_MODEL_NAMED
} cpu_model_kind;
typedef enum { FW_BIOS, FW_EFI } firmware_kind;
typedef enum { VIDEO_VGA, VIDEO_VIRTIO, VIDEO_BOCHS, VIDEO_CIRRUS } video_type;
typedef enum { TRI_DEFAULT, TRI_OFF, TRI_ON } tristate;
typedef enum { WATCHDOG_NONE, WATCHDOG_POWEROFF, WATCHDOG_RESET, WATCHDOG_SHUTDOWN } watchdog_action;
typedef enum { IOTHREADS_NONE, IOTHREADS_SHARED, IOTHREADS_AUTO } iothreads_policy;
typedef enum { SOUND_NONE, SOUND_ICH9, SOUND_AC97 } sound_model;
typedef enum { PANIC_NONE, PANIC_ISA, PANIC_PVPANIC } panic_model;

/* spec.accessCredentials[]: a Secret's SSH public keys or user passwords, propagated into the guest by
 * cloud-init (noCloud, configDrive: the keys in the seed's meta-data at boot) or by the guest agent (kept
 * in sync while the guest runs). docs/access-credentials.md */
typedef enum { CRED_SSH_KEYS, CRED_USER_PASSWORDS } cred_kind;
/* Where a launcher finds credential Secret S: <secret root>/VMI_ACCESS_CRED_DIR/S (a volume's directory is
 * <secret root>/<volume>, and volume names are DNS labels, without dots) */
#define VMI_ACCESS_CRED_DIR "access-credentials.d"
typedef enum { CRED_VIA_AGENT, CRED_VIA_NOCLOUD, CRED_VIA_CONFIG_DRIVE } cred_method;
typedef struct vmi_access_cred {
        cred_kind kind;
        cred_method method;
        char *secret; /* source.secret.secretName */
        char **users; /* sshPublicKey via qemuGuestAgent: the guest users (NULL-terminated); else NULL */
} vmi_access_cred;

/* KubeVirt's backend storage: the claim persistent-state-for-<VMI name> that keeps a persistent TPM's and
 * EFI's state across launches (the controller creates and mounts it; the launcher finds it under its PVC
 * root) */
#define VMI_BACKEND_STORAGE_PREFIX "persistent-state-for-"
/* Whether the VMI needs its backend storage claim. */
#define vmi_needs_backend_storage(v) ((v)->tpm_persistent || (v)->efi_persistent)

typedef struct vmi {
        /* identity */
        char *name, *namespace, *uid;
        cJSON *labels;         /* object of strings (owned), never NULL */
        int64_t grace_seconds; /* terminationGracePeriodSeconds, default 30 */
        bool start_paused;     /* spec.startStrategy: Paused → do not `cont` */
        char *hostname;        /* spec.hostname or metadata.name */

        /* cpu */
        unsigned sockets, cores, threads, max_sockets; /* max_sockets 0 = no CPU hot-plug */
        cpu_model_kind cpu_model;
        char *cpu_model_name; /* CPU_MODEL_NAMED */
        char **cpu_features;  /* NULL-terminated "+name"/"-name", or NULL */
        /* spec.domain.features (hyperv, kvm, pvspinlock, apic.endOfInterrupt) and clock timers that
         * QEMU sets as -cpu properties: NULL-terminated "name=value", or NULL */
        char **cpu_props;
        const char *kvm_only; /* JSON path of the first one QEMU accepts only under KVM, else NULL */

        /* spec.domain.cpu.dedicatedCpuPlacement: each vCPU thread pinned to its own CPU of the launcher's
         * allowed set, the emulator (QEMU's other threads) to one more with isolateEmulatorThread;
         * realtime: the vCPU threads run SCHED_FIFO; numa.guestMappingPassthrough: one guest NUMA node */
        bool dedicated_cpus, isolate_emulator_thread, realtime, numa_passthrough;

        /* memory, bytes (rounded up to MiB) */
        uint64_t memory, max_memory; /* max_memory 0 = no memory hot-plug */
        uint64_t hugepage_size;      /* memory.hugepages.pageSize (2Mi, 1Gi); 0 = ordinary memory */

        /* machine and firmware */
        char *machine; /* "q35" or "pc-q35-X.Y" */
        bool acpi, smm;
        char *fw_uuid, *fw_serial; /* NULL = none */
        cJSON *chassis;            /* spec.domain.chassis (SMBIOS type 3 strings), NULL = none */

        /* clock: the RTC starts at host time + rtc_offset (utc.offsetSeconds, or the timezone's offset
         * at start, resolved by vmi_prepare); timers */
        int64_t rtc_offset;
        char *timezone;
        bool rtc_driftfix_slew; /* rtc.tickPolicy catchup */
        const char *rtc_clock;  /* rtc.track: "vm" (guest) / "host" (wall); NULL = QEMU's default */
        tristate hpet, pit;
        const char *pit_policy; /* pit.tickPolicy as QEMU's lost_tick_policy, NULL = default */
        firmware_kind firmware;
        bool bios_use_serial;
        bool efi_secure_boot;
        bool efi_persistent; /* bootloader.efi.persistent: the VARS kept in the backend storage */
        char *efi_vars;      /* prepared: the VARS copy in the run dir, or in the backend storage */
        bool kernel_boot;
        char *kernel_image;                            /* kernelBoot.container.image */
        char *kernel_path, *initrd_path, *kernel_args; /* as written in the manifest (in-image paths) */
        char *kernel_file, *initrd_file;               /* prepared: absolute host paths */

        /* devices */
        vmi_disk *disks;
        size_t n_disks;
        vmi_volume *volumes;
        size_t n_volumes;
        vmi_filesystem *filesystems;
        size_t n_filesystems;
        vmi_interface *interfaces;
        size_t n_interfaces;
        net_request net; /* spec part of net_setup's request; binding NET_BINDING_NONE = no pod network */
        vmi_input *inputs;
        size_t n_inputs;
        bool rng;
        bool serial_console; /* autoattachSerialConsole, default true */
        bool graphics;       /* autoattachGraphicsDevice, default true */
        bool mem_balloon;    /* autoattachMemBalloon, default true */
        video_type video;
        watchdog_action watchdog;
        char *watchdog_name;
        bool vsock;            /* autoattachVSOCK: vhost-vsock-pci */
        bool downward_metrics; /* devices.downwardMetrics: the vhostmd virtio-serial port */
        uint32_t vsock_cid;    /* prepared: the guest's CID (>= 3), from its identity */
        bool block_multiqueue; /* blockMultiQueue: one virtio-blk queue per vCPU */

        bool net_multiqueue;      /* networkInterfaceMultiqueue: virtio NICs with one queue pair per vCPU */
        bool virtio_transitional; /* useVirtioTransitional: virtio-*-pci-transitional models */
        sound_model sound;
        char *sound_name;
        panic_model panic;        /* panicDevices[0].model (one panic device, as libvirt on x86) */
        bool tpm, tpm_persistent; /* tpm: {} (swtpm), persistent: state kept across launches */
        char *tpm_state_dir;      /* prepared: swtpm's state directory ($TPM_PATH) */

        iothreads_policy iothreads;
        unsigned n_iothreads;                 /* iothread objects the argv declares (set by the parser) */
        struct vmi_probe readiness, liveness; /* kind PROBE_NONE when absent */
        vmi_access_cred *access_creds;
        size_t n_access_creds;
} vmi;

/* Load a VMI from a YAML or JSON file ("-" = stdin) and validate it. -EINVAL: invalid manifest (exit 2);
 * other negative errno: could not read the file. */
int vmi_load(const char *path_or_dash, vmi **out, kv_error *err);
/* Same from a JSON (or YAML) string, e.g. the KVLITE_VMI environment variable. */
int vmi_load_json_string(const char *json, vmi **out, kv_error *err);
/* What users copy from KubeVirt's docs: a VMI, a VirtualMachine (its template, expanded with the
 * instancetype and preference it names, found in the same file or in the bundle files: multi-document
 * YAML read only when needed, missing files skipped) or a multi-document file (api/instancetype.h). */
int vmi_load_any(const char *path_or_dash, const char *const *bundle_paths, vmi **out, kv_error *err);
int vmi_load_any_string(const char *text, const char *const *bundle_paths, vmi **out, kv_error *err);
/* Validate an already parsed manifest into a model (the pure core the two loaders share). */
int vmi_from_json(const cJSON *root, vmi **out, kv_error *err);
void vmi_free(vmi *v);
/* Disk i's volume is deferred (vmi_volume.deferred): the disk is not on the command line (yet). */
static inline bool vmi_disk_deferred(const vmi *v, size_t i)
{
        return v->volumes[v->disks[i].volume].deferred;
}

static inline void vmi_freep(vmi **v)
{
        if (*v)
                vmi_free(*v);
}

const char *image_format_name(image_format f); /* "raw" / "qcow2" */
/* The vCPUs the guest starts with (sockets * cores * threads). */
unsigned vmi_vcpus(const vmi *v);
