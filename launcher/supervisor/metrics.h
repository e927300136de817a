/* metrics: the host side of KubeVirt's downward metrics. devices.downwardMetrics: the guest's
 * vm-dump-metrics (vhostmd's client) writes "GET /metrics/XML\n\n" on the virtio-serial port
 * org.github.vhostmd.1 and the launcher answers with the metrics XML (host and vm contexts, vhostmd's
 * format) and "\n\n". A downwardMetrics volume: a disk in vhostmd's format (a big-endian header: signature
 * "mvbd", busy, checksum, length; then the XML) that the launcher rewrites periodically. */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "loop.h"
#include "vmi.h"

/* How often the disk is rewritten: vhostmd's default update period */
#define METRICS_DISK_PERIOD_MS 5000

typedef struct metrics_server metrics_server;

/* Before QEMU starts: listens on <run_dir>/QEMU_METRICS_SOCKET for devices.downwardMetrics (QEMU's
 * chardev connects as it starts) and writes the first document onto each downwardMetrics volume's disk.
 * Nothing (and *out NULL) when the VMI has neither. */
int metrics_new(const char *run_dir, const vmi *v, metrics_server **out, kv_error *err);
/* Once QEMU runs (its monitor answered, so its chardevs are connected): takes QEMU's connection and
 * answers the guest's requests on l, and rewrites the disks every METRICS_DISK_PERIOD_MS. Nothing when m
 * is NULL. */
int metrics_attach(metrics_server *m, loop *l, pid_t qemu, kv_error *err);
void metrics_free(metrics_server *m);
/* The metrics document for v with QEMU's pid (testable without a channel); returns its length or <0. */
int metrics_xml(const vmi *v, const char *host_name, pid_t qemu, char *out, size_t outsz);
