/* The kubelet device-plugin endpoints over gRPC (C core): one server per device kind on its own unix socket
 * in the device-plugins directory, registration with the kubelet, and ListAndWatch streams that get a new
 * device list whenever what the node offers changes. Single-threaded: the caller drives plugins_run(). */
#pragma once

#include <stdbool.h>

#include "devices.h"
#include "error.h"

typedef struct plugins plugins;

typedef struct plugins_config {
        const char *dir; /* /var/lib/kubelet/device-plugins: plugin sockets and the kubelet's kubelet.sock */
        unsigned count;  /* devices per kind */
        const dp_kind *const *kinds;
        size_t n_kinds;
} plugins_config;

/* Starts a server per kind (socket <dir>/kubevirt-<name>.sock), advertising nothing yet. */
plugins *plugins_start(const plugins_config *cfg, kv_error *err);
/* Sets what a kind advertises; open ListAndWatch streams get the new list when it changed. */
void plugins_set_advertised(plugins *ps, const dp_kind *k, bool advertised);
/* Registers every plugin with the kubelet when the kubelet's socket is new (first call, or the kubelet
 * restarted and made a new one). Returns how many registrations failed (retried on the next call). */
int plugins_register(plugins *ps);
/* Serves calls for up to timeout_ms. */
void plugins_run(plugins *ps, int timeout_ms);
/* Cancels every call, stops the servers and removes the sockets. */
void plugins_stop(plugins *ps);
