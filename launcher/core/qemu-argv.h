/* qemu-argv: the pure function VMI model → QEMU argv. -blockdev/-device/-object/-netdev are JSON; every
 * other option value goes through qemu_opt_escape(). No I/O: run vmi_prepare() first. */
#pragma once

#include "error.h"
#include "strv.h"
#include "vmi.h"

#define QEMU_ARGV_DEFAULT_HOTPLUG_PORTS 8
/* Sockets of the helper daemons the launcher runs beside QEMU, in the run dir. */
#define QEMU_TPM_SOCKET "swtpm.sock" /* swtpm's control channel (devices.tpm) */
/* devices.downwardMetrics: the launcher listens here for QEMU's chardev and answers the guest's vhostmd
 * requests */
#define QEMU_METRICS_SOCKET "vhostmd.sock"
#define QEMU_PR_HELPER_SOCKET "pr-helper.sock" /* qemu-pr-helper (lun.reservation) */
#define QEMU_PR_MANAGER_ID "pr-helper0"

#define QEMU_ARGV_HUGEPAGES_DIR "/dev/hugepages"

typedef struct qemu_argv_opts {
        const char *qemu_binary; /* argv[0], e.g. "qemu-system-x86_64" */
        const char *accel;       /* "kvm" or "tcg" */
        const char *run_dir;     /* absolute; socket paths default to files in it */
        int qmp_fd;              /* >= 0: a listening unix socket QEMU inherits; < 0: <run_dir>/qmp.sock */
        int serial_fd;           /* same for the serial console; < 0: <run_dir>/serial.sock */
        /* The guest agent channel (virtio-serial port org.qemu.guest_agent.0, which KubeVirt always adds):
         * >= 0: a connected socket QEMU inherits (the launcher's end is its agent client); < 0: QEMU listens
         * on <run_dir>/agent.sock. */
        int agent_fd;
        const char *serial_log; /* chardev logfile (keeps output while nobody is attached); NULL = none */
        const char *vnc_socket; /* NULL = <run_dir>/vnc.sock */
        int hotplug_ports;      /* free pcie-root-ports for later hot-plug; < 0 = default (8) */
        const char *ovmf_dir;   /* NULL = "/usr/share/OVMF" */
        /* The pod interface as libkvnet's net_setup wired it (-netdev value, -device value without
         * "bus"); NULL = not wired: masquerade and an implied bridge use QEMU user networking,
         * slirp always does. */
        const char *net_netdev_json;
        const char *net_device_json;
        /* Multus interfaces as net_setup_secondary wired them, after the pod interface. */
        const char *net_secondary_netdev_json[NET_MAX_SECONDARY];
        const char *net_secondary_device_json[NET_MAX_SECONDARY];
        unsigned net_secondary_boot_order[NET_MAX_SECONDARY];
        size_t n_net_secondary;
        int64_t now; /* seconds since the epoch the RTC offset counts from; 0 = the current time */
        /* memory.hugepages: the hugetlbfs directory of the page size (launcher_hugepages_dir checks the
         * host); NULL = QEMU_ARGV_HUGEPAGES_DIR, where KubeVirt's Pod mounts its HugePages emptyDir */
        const char *hugepages_dir;
} qemu_argv_opts;

/* Append the full argv (argv[0] = qemu_binary) to *argv. -EINVAL if the model is not prepared or
 * inconsistent. */
int qemu_argv_build(const vmi *v, const qemu_argv_opts *o, strv *argv, kv_error *err);
/* disks[i].lun.reservation can be honoured: its volume (prepared, probed) is a SCSI block device; else
 * -EINVAL naming the field. */
int qemu_check_reservation(const vmi *v, size_t i, kv_error *err);

/* The one escaping function for QemuOpts values: doubles every comma. Returns a malloc'd string. */
char *qemu_opt_escape(const char *value);
