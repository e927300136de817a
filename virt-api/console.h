/* console and vnc: KubeVirt's websocket subresources (GET virtualmachineinstances/NAME/console|vnc,
 * subprotocol plain.kubevirt.io, the byte stream in binary frames). virt-api checks the VMI, opens the
 * console channel to virt-handler on the VMI's node (mutual TLS, certificates from virt-api's CA; see
 * docs/console.md) and relays between the websocket and the channel. */
#pragma once

#include <stddef.h>

#include "client.h"
#include "subresources.h"

/* The name virt-handler's certificate carries (with ".NS.svc"): its DaemonSet's name. */
#define CONSOLE_HANDLER_NAME "virt-handler"
#define CONSOLE_SUBPROTOCOL "plain.kubevirt.io"

typedef struct console_opts {
        const char *ca_file;   /* virt-api's CA: virt-handler's certificate must chain to it */
        const char *cert_file; /* virt-api's certificate and key: its client identity on the channel */
        const char *key_file;
        const char *handler_name; /* DNS name on virt-handler's certificate, "virt-handler.NS.svc" */
        const char *handler_ns;   /* where the virt-handler Pods run */
        unsigned handler_port;
} console_opts;

typedef struct console_channel console_channel;

/* Whether path is ".../namespaces/NS/virtualmachineinstances/NAME/console" or ".../vnc"; fills ns, name
 * and kind ("console" or "vnc"). */
bool console_path_parse(const char *path, char ns[static 254], char name[static 254], char kind[static 8]);

/* Checks the VMI as KubeVirt does (404 unknown, 400 not running or no such device, 409 finished) and opens
 * the channel to its launcher. 0 with *out, or -1 with r filled (a Status). */
int console_open(kube_client *api, const console_opts *o, const char *ns, const char *name, const char *kind,
                 console_channel **out, subres_reply *r);

/* Websocket frames on client_fd (after the 101; extra: bytes already read past the request) ↔ the channel's
 * byte stream, until either side ends. Frees ch; does not close client_fd. */
void console_relay(console_channel *ch, int client_fd, const char *extra, size_t extra_len);
void console_channel_free(console_channel *ch);
