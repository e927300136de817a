/* console and vnc: KubeVirt's websocket subresources (GET virtualmachineinstances/NAME/console|vnc,
 * subprotocol plain.kubevirt.io, the byte stream in binary frames). virt-api checks the VMI, opens the
 * console channel to virt-handler on the VMI's node (mutual TLS, certificates from virt-api's CA; see
 * docs/console.md) and relays between the websocket and the channel. portforward.c uses the same channel. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
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

/* Where a session goes: the virt-handler to ask and the request line it gets. */
typedef struct console_plan {
        char handler_ip[64];
        char line[256];
} console_plan;

/* Whether path is ".../namespaces/NS/virtualmachineinstances/NAME/console" or ".../vnc"; fills ns, name
 * and kind ("console" or "vnc"). */
bool console_path_parse(const char *path, char ns[static 254], char name[static 254], char kind[static 8]);

/* Checks the VMI as KubeVirt does (404 unknown, 400 not running or no such device, 409 finished) and plans
 * the channel to its launcher. API requests only (the caller holds the API client). 0, or -1 with r filled
 * (a Status). */
int console_plan_make(kube_client *api, const console_opts *o, const char *ns, const char *name,
                      const char *kind, console_plan *plan, subres_reply *r);

/* The phase checks console and port-forward share: 409 for a finished VMI, 400 for one not running yet. */
int console_vmi_running(const cJSON *vmi, const char *name, subres_reply *r);

/* Of a PodList, the launcher Pod running the VMI's guest, with an IP: during a migration its source, after it
 * its target (as virt-controller reads status.migrationState); otherwise the running one on the VMI's node.
 */
const cJSON *console_launcher_pod(const cJSON *pods, const cJSON *vmi);

/* The launcher Pod of a running VMI (its uid and IP) and the virt-handler of its node (plan->handler_ip).
 * 0, or -1 with r filled: 400 no launcher Pod, 503 no virt-handler or no channel certificates. */
int console_locate(kube_client *api, const console_opts *o, const cJSON *vmi, console_plan *plan,
                   char pod_uid[static 64], char pod_ip[static 64], subres_reply *r);

/* TLS to the plan's virt-handler, its request line and the answer. 0 with *out; -1 when the channel failed,
 * -2 when virt-handler answered an error; why says what. */
int console_dial(const console_opts *o, const console_plan *plan, console_channel **out, char *why,
                 size_t why_size);

/* Websocket frames on client_fd (after the 101; extra: bytes already read past the request) ↔ the channel's
 * byte stream, until either side ends. half_close (a port-forward): the client's close frame ends only its
 * direction (virt-handler passes the end on to the guest), and the session ends when the guest's side does.
 * Frees ch; does not close client_fd. */
void console_relay(console_channel *ch, int client_fd, const char *extra, size_t extra_len, bool half_close);
void console_channel_free(console_channel *ch);
