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

/* Connects to QEMU's end of the channel (<run_dir>/QEMU_METRICS_SOCKET, QEMU listening) and answers on l.
 * Nothing (and *out NULL) without devices.downwardMetrics. */
int metrics_start(loop *l, const char *run_dir, const vmi *v, pid_t qemu, metrics_server **out,
                  kv_error *err);
void metrics_free(metrics_server *m);
/* The metrics document for v with QEMU's pid (testable without a channel); returns its length or <0. */
int metrics_xml(const vmi *v, const char *host_name, pid_t qemu, char *out, size_t outsz);
