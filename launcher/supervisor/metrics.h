/* metrics: the host side of KubeVirt's downward metrics device (devices.downwardMetrics). The guest's
 * vm-dump-metrics (vhostmd's client) writes "GET /metrics/XML\n\n" on the virtio-serial port
 * org.github.vhostmd.1; the launcher answers with the metrics XML KubeVirt's virt-launcher sends (host and
 * vm contexts, vhostmd's format) and "\n\n". */
#pragma once
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "loop.h"
#include "vmi.h"

typedef struct metrics_server metrics_server;

/* Before QEMU starts: listens on <run_dir>/QEMU_METRICS_SOCKET, where QEMU's chardev connects as it starts.
 * Nothing (and *out NULL) without devices.downwardMetrics. */
int metrics_listen(const char *run_dir, const vmi *v, metrics_server **out, kv_error *err);
/* Once QEMU runs (its monitor answered, so its chardevs are connected): takes QEMU's connection and
 * answers the guest's requests on l. Nothing when m is NULL. */
int metrics_accept(metrics_server *m, loop *l, pid_t qemu, kv_error *err);
void metrics_free(metrics_server *m);
/* The metrics document for v with QEMU's pid (testable without a channel); returns its length or <0. */
int metrics_xml(const vmi *v, const char *host_name, pid_t qemu, char *out, size_t outsz);
