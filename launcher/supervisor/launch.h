/* The launcher's lifecycle glue: load → validate → accel → volumes → argv → supervise → clean up. */
#pragma once
#include <stdbool.h>

#include "accel.h"

typedef struct launch_opts {
        const char *vmi_file; /* --vmi FILE|- */
        const char *vmi_env;  /* --vmi-env VAR */
        const char *run_dir;  /* NULL: private mkdtemp directory */
        const char *image_root;
        const char *secret_root; /* NULL: /var/run/kvlite/secrets (data volumes, cloud-init Secrets) */
        const char *pvc_root;    /* NULL: /var/run/kvlite/pvc (PVC V is <pvc_root>/V/disk.img) */
        const char *status_file;
        const char *qemu;      /* NULL: qemu-system-x86_64 on PATH */
        const char *virtiofsd; /* NULL: /usr/lib/qemu/virtiofsd (filesystems[] over virtiofs) */
        accel_mode accel;
        bool sandbox;
        bool serial_stdout; /* copy the serial console to stdout */
        bool dry_run;       /* print the QEMU argv as a JSON array and exit */
        bool pod_network;   /* --pod-network: inside a Pod's netns, net_setup wires masquerade/bridge/passt */
        const char *incoming; /* --incoming URI|defer: start as a live-migration target (sup_config) */
        const char *incoming_nbd_host; /* --incoming-nbd HOST:PORT, validated (NULL: none) */
        int incoming_nbd_port;
        const char *incoming_config; /* --incoming-config JSON, validated (NULL: the defaults) */
} launch_opts;

/* Returns the process exit code (EXIT_* in supervisor.h). */
int launch_run(const launch_opts *o);
