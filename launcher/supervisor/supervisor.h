/* The supervisor: one epoll loop around one QEMU child. It owns the QEMU process, the launcher's
 * private QMP connection, signals, the stop escalation, the control socket and the console fan-out,
 * and decides the final phase and exit code. */
#pragma once
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "loop.h"
#include "qmp.h"
#include "ring.h"
#include "status.h"

/* Where the fds handed to QEMU land in the child (qemu_argv_build is told these numbers). */
enum {
        CHILD_FD_QMP_PRIVATE = 3, /* socketpair end: the launcher's own monitor */
        CHILD_FD_QMP_PUBLIC = 4,  /* listening <run-dir>/qmp.sock for tools (qmp CLI) */
        CHILD_FD_AGENT = 5,       /* socketpair end: the guest agent channel (the launcher holds the other) */
        CHILD_FD_SERIAL = 6,      /* listening <run-dir>/serial.sock */
        CHILD_FD_NET_BASE = 7,    /* macvtap fds of Multus interfaces, in interfaces[] order */
};

/* Exit codes of virt-launcher. */
enum {
        EXIT_SUCCEEDED = 0, /* guest powered off, or stopped on request */
        EXIT_FAILED = 1,    /* QEMU failed to start, crashed or was killed */
        EXIT_INVALID = 2,   /* invalid manifest or usage */
        EXIT_SETUP = 3,     /* the host could not be prepared (run dir, sockets, volume I/O) */
};

typedef struct sup_config {
        const char *qemu_path; /* absolute executable */
        char *const *argv;     /* complete QEMU argv, already referring to CHILD_FD_* */
        const char *run_dir;
        int grace_seconds;
        bool start_paused;      /* spec.startStrategy Paused: stay at -S */
        int qmp_public_fd;      /* listening sockets bound and closed by the caller */
        int serial_listen_fd;   /* -1: no serial console */
        int control_fd;         /* listening control.sock */
        bool sandbox;           /* drop capabilities + seccomp once QEMU runs */
        bool serial_stdout;     /* also copy serial output to stdout (the local, no-Kubernetes view) */
        struct net_result *net; /* libkvnet's wiring: DHCP server in the loop, passt reaped; or NULL */
        struct net_result *net_secondary; /* Multus interfaces: DHCP servers in the loop, macvtap fds */
        size_t n_net_secondary;
        /* --incoming: a migration target. QEMU runs with -incoming defer and stays paused (phase
         * Scheduled) until migration-target-finish; "defer" waits for migration-target, a URI listens at
         * once (default migration configuration, no disk mirroring). NULL: a normal boot. */
        const char *incoming;
        /* --incoming-nbd: with an --incoming URI, the local writable disks are exported there for the
         * source's mirror (nbd_port 0: none). */
        const char *incoming_nbd_host;
        int incoming_nbd_port;
        /* --incoming-config: the MigrationConfiguration (JSON text, validated by main) an --incoming URI is
         * prepared with, the source's, so that both QEMUs get the same capabilities. NULL: the defaults. */
        const char *incoming_config;
        struct vmi **vmi;                   /* the running spec (launch.c owns it; `apply` replaces it) */
        const struct launcher_paths *paths; /* to prepare the volumes an `apply` adds */
        const cpu_set_t *cpus; /* dedicatedCpuPlacement: the CPUs QEMU's threads are pinned to (cpumem.c) */
} sup_config;

enum stop_stage { STOP_NONE, STOP_POWERDOWN, STOP_QUIT, STOP_KILL };

typedef struct ctl_conn ctl_conn;
struct liveops;

typedef struct supervisor {
        loop *loop;
        status *st;
        const sup_config *cfg;

        pid_t qemu_pid; /* 0 once reaped */
        int qemu_wstatus;
        int stderr_fd;
        loop_source *stderr_src;
        char stderr_buf[1024];
        size_t stderr_len;
        char stderr_last[256]; /* last line QEMU printed: the reason when it fails to start */

        qmp *qmp;
        loop_source *qmp_src;
        uint32_t qmp_events;

        int sigfd;
        loop_timer stop_timer; /* the next step of the stop escalation */
        enum stop_stage stage;
        bool stop_requested;
        struct timespec stop_time; /* when the stop was first requested */
        char shutdown_reason[64];  /* from the SHUTDOWN event; "" if none came */
        char end_reason[64];       /* set by a live operation that ends QEMU on purpose ("Migrated"): a clean
                                    * exit is then Succeeded with this reason */
        bool shutdown_guest;
        bool
            soft_reboot; /* a soft reboot's power button was pressed: the guest's power-off becomes a reset */

        int control_fd;
        ctl_conn *conns;
        uint64_t next_conn_serial;

        int serial_fd; /* the launcher's connection to QEMU's serial chardev */
        loop_source *serial_src;
        ring backlog;

        struct liveops *liveops;        /* hot-plug, snapshots, migration (launcher/liveops) */
        struct agent *agent;            /* the guest agent client (agent.h) */
        struct metrics_server *metrics; /* downwardMetrics: the vhostmd channel's answerer (metrics.h) */
        struct probes *probes;          /* readiness and liveness probes (probes.h), once the guest runs */
        struct credsync *credsync;      /* accessCredentials through the guest agent (credsync.h) */
        char fail_reason[256]; /* a failed liveness probe, a guest panic: QEMU's end is then Failed with it */
        loop_timer trim_timer; /* kv_memtrim once a control command's work is over (supervisor_trim_soon) */

        bool done;
} supervisor;

/* Starts QEMU and supervises it until it is gone; returns the exit code. Writes the status file on
 * each change. */
int supervisor_run(const sup_config *cfg, status *st);

/* Used by the control commands. */
void supervisor_request_stop(supervisor *s, const char *why);
/* KubeVirt's soft reboot for a guest without an agent (libvirt's ACPI reboot): the ACPI power button, and
 * when the guest powers off QEMU pauses instead of exiting (QMP set-action) and is reset and continued. */
int supervisor_soft_reboot(supervisor *s, kv_error *err);
/* Writes the status file (and the Pod annotation) after a change of s->st. */
void supervisor_publish(supervisor *s);
/* Re-registers the QMP fd with what libqmp wants now (EPOLLOUT after queueing a command). */
void supervisor_qmp_rearm(supervisor *s);
/* After a control command: gives its memory back to the kernel once the launcher has been quiet a moment
 * (an apply parses a whole VMI; docs/launcher-memory.md). */
void supervisor_trim_soon(supervisor *s);
