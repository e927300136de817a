/* The console channel: virt-api reaches a launcher's serial console and VNC through the virt-handler on the
 * VMI's node, over mutual TLS with certificates virt-api issues (KubeVirt's virt-api → virt-handler path).
 * The launcher's sockets are found through the Pod's run-dir emptyDir on the node (docs/console.md). */
#pragma once

#include <stddef.h>

#include "error.h"

typedef struct console_config {
        const char *listen;      /* "ADDR:PORT" */
        const char *cert_dir;    /* ca.crt, tls.crt, tls.key (virt-api's Secret); re-read per connection */
        const char *client_name; /* the DNS name the client's certificate must carry (virt-api's Service) */
        const char *pods_dir;    /* the kubelet's Pod directories (/var/lib/kubelet/pods) */
} console_config;

/* Binds cfg->listen and serves in a thread of its own (one more thread per session) until the process
 * exits. Returns the bound port, or negative errno with err set when the address cannot be served. */
int console_server_start(const console_config *cfg, kv_error *err);

/* The launcher's socket for a Pod: <pods_dir>/<uid>/volumes/kubernetes.io~empty-dir/run/<name> (the kubelet's
 * layout) or <pods_dir>/<uid>/volumes/run/<name> (the kubelet stand-in's). -EINVAL for a uid that is not
 * one (no path tricks), -ENOENT when neither exists. */
int console_socket_path(const char *pods_dir, const char *uid, const char *name, char *out, size_t size);
