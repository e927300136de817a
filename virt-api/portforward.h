/* portforward: KubeVirt's websocket subresource GET
 * .../virtualmachineinstances/NAME/portforward/PORT[/PROTOCOL] (and virtualmachines/NAME/..., the VM's VMI):
 * each websocket carries one connection to the guest's port, its bytes in binary frames. virt-api checks the
 * VMI, works out where the guest answers from inside its launcher Pod (by the pod network's binding) and asks
 * virt-handler on the VMI's node, over the console channel, to connect there (docs/portforward.md). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "client.h"
#include "console.h"
#include "portfwd.h"
#include "subresources.h"

typedef struct pf_path {
        char ns[254], name[254];
        bool vm;          /* virtualmachines/NAME: the VM's VMI */
        unsigned port;    /* 1-65535 */
        char protocol[4]; /* "tcp" (the default) or "udp" */
} pf_path;

/* 1 when path is a portforward subresource (*out filled), 0 when it is not one, -1 when it names a port
 * outside 1-65535. */
int portforward_path_parse(const char *path, pf_path *out);

/* Where virt-handler connects for a running VMI's port (address and device of rq; the caller fills the
 * Pod's uid) by the binding of its pod network interface: 0, or -1 with r filled (400: no pod network, a
 * binding or port that cannot be reached from inside the Pod). pod_ip: the launcher Pod's IP. Pure. */
int portforward_target(const cJSON *vmi, const pf_path *p, const char *pod_ip, pf_request *rq,
                       subres_reply *r);

/* KubeVirt's checks (404 unknown VM or VMI, 409 a VM whose VMI is not started, a finished or paused VMI, 400
 * not running yet) and the plan: which virt-handler, and the request it gets. API requests only (the caller
 * holds the API client). 0, or -1 with r filled (a Status). */
int portforward_plan_make(kube_client *api, const console_opts *o, const pf_path *p, console_plan *plan,
                          subres_reply *r);
