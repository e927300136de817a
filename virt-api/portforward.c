/* The portforward subresource (portforward.h). Where the guest answers from inside its launcher Pod:
 * masquerade: the guest's own address behind k6t-eth0 (every port); bridge: the Pod's IP, which the guest
 * holds, through k6t-eth0 (the launcher's bridge rule brings the answers back, docs/networking.md); slirp:
 * QEMU's forwarders on the Pod's loopback (only spec ports[]). passt is refused: it gives the guest the Pod's
 * own address, so a connection made inside the Pod would reach the guest from the guest's address. */
#include "json.h"
#include "portforward.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "netspec.h"
#include "subres-internal.h"

#define PATH_SEGMENTS_MAX 6 /* NS / PLURAL / NAME / portforward / PORT [/ PROTOCOL] */

/* Splits s (modified) at '/' into at most max non-empty segments; their number, or -1. */
static int split(char *s, char **seg, int max)
{
        int n = 0;
        for (char *t; (t = strsep(&s, "/"));) {
                if (n == max || !*t)
                        return -1;
                seg[n++] = t;
        }
        return n;
}

int portforward_path_parse(const char *path, pf_path *out)
{
        static const char prefix[] = SUBRES_PREFIX "/namespaces/";
        char buf[640], *seg[PATH_SEGMENTS_MAX];
        *out = (pf_path){.protocol = "tcp"};
        if (strncmp(path, prefix, sizeof(prefix) - 1) ||
            snprintf(buf, sizeof(buf), "%s", path + sizeof(prefix) - 1) >= (int)sizeof(buf))
                return 0;
        int n = split(buf, seg, PATH_SEGMENTS_MAX);
        if (n < 5 || strcmp(seg[3], "portforward") || strlen(seg[0]) >= sizeof(out->ns) ||
            strlen(seg[2]) >= sizeof(out->name) || strspn(seg[4], "0123456789") != strlen(seg[4]))
                return 0;
        out->vm = !strcmp(seg[1], "virtualmachines");
        if (!out->vm && strcmp(seg[1], "virtualmachineinstances"))
                return 0;
        if (n == 6 && strcmp(seg[5], "tcp") && strcmp(seg[5], "udp"))
                return 0;
        snprintf(out->ns, sizeof(out->ns), "%s", seg[0]);
        snprintf(out->name, sizeof(out->name), "%s", seg[2]);
        if (n == 6)
                snprintf(out->protocol, sizeof(out->protocol), "%s", seg[5]);
        unsigned long port = strlen(seg[4]) <= 5 ? strtoul(seg[4], NULL, 10) : 0;
        out->port = (unsigned)port;
        return port >= 1 && port <= 65535 ? 1 : -1;
}

static bool port_listed(const net_request *req, const pf_path *p)
{
        int proto = !strcmp(p->protocol, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
        for (size_t i = 0; i < req->n_ports; i++)
                if (req->ports[i].port == p->port && req->ports[i].protocol == proto)
                        return true;
        return false;
}

int portforward_target(const cJSON *vmi, const pf_path *p, const char *pod_ip, pf_request *rq,
                       subres_reply *r)
{
        net_request req = {0};
        kv_error err = {0};
        struct in_addr a;
        if (!strcmp(p->protocol,
                    "udp")) /* datagrams would lose their boundaries on the channel's byte stream */
                return subres_fail(r, 400, "port-forward of udp is not supported");
        if (net_request_from_vmi(kube_obj(vmi, "spec"), &req, &err) < 0)
                return subres_fail(r, 400, "%s", err.msg);
        switch (req.binding) {
        case NET_BINDING_MASQUERADE:
                snprintf(rq->address, sizeof(rq->address), NET_MASQ_GUEST4);
                snprintf(rq->device, sizeof(rq->device), NET_POD_BRIDGE);
                return 0;
        case NET_BINDING_BRIDGE:
                if (!pod_ip || inet_pton(AF_INET, pod_ip, &a) != 1)
                        return subres_fail(r, 400, "the launcher Pod has no IPv4 address");
                snprintf(rq->address, sizeof(rq->address), "%s", pod_ip);
                snprintf(rq->device, sizeof(rq->device), NET_POD_BRIDGE);
                return 0;
        case NET_BINDING_SLIRP:
                if (!port_listed(&req, p))
                        return subres_fail(r, 400,
                                           "port %u/%s is not forwarded by the slirp binding: list it in "
                                           "spec.domain.devices.interfaces[%d].ports",
                                           p->port, p->protocol, req.iface_index);
                snprintf(rq->address, sizeof(rq->address), "127.0.0.1");
                return 0;
        case NET_BINDING_PASST:
                return subres_fail(r, 400,
                                   "port-forward is not supported with the passt binding "
                                   "(spec.domain.devices.interfaces[%d]): passt gives the guest the Pod's "
                                   "own address; use masquerade or bridge",
                                   req.iface_index);
        default:
                return subres_fail(r, 400,
                                   "no network interfaces are present: port-forward needs the pod "
                                   "network (spec.networks[].pod)");
        }
}

/* The VMI p names: its own, or a VM's (KubeVirt's FetchVirtualMachineInstanceForVM). */
static int fetch_vmi(kube_client *api, const pf_path *p, cJSON **vmi, subres_reply *r)
{
        _cleanup_json_ cJSON *vm = NULL;
        kv_error err = {0};
        int rc = p->vm ? kube_get(api, &kube_vm, p->ns, p->name, &vm, &err) : 0;
        if (rc == -KUBE_ENOTFOUND)
                return subres_fail(r, 404, "virtualmachines.kubevirt.io \"%s\" not found", p->name);
        if (rc < 0)
                return subres_fail(r, 500, "%s", err.msg);
        if (vm && !cJSON_IsTrue(kube_obj(vm, "status.created")))
                return subres_fail(r, 409,
                                   "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"%s\": "
                                   "VMI is not started",
                                   p->name);
        rc = kube_get(api, &kube_vmi, p->ns, p->name, vmi, &err);
        if (rc == -KUBE_ENOTFOUND)
                return subres_fail(r, 404, "virtualmachineinstances.kubevirt.io \"%s\" not found", p->name);
        if (rc < 0)
                return subres_fail(r, 500, "%s", err.msg);
        const cJSON *ref;
        cJSON_ArrayForEach(ref, kube_obj(*vmi, "metadata.ownerReferences"))
        {
                if (vm && !strcmp(kube_str(ref, "uid") ?: "", kube_str(vm, "metadata.uid") ?: "-"))
                        return 0;
        }
        return vm ? subres_fail(r, 500, "unable to retrieve vmi [%s] for vm [%s]: not owned by it", p->name,
                                p->name)
                  : 0;
}

int portforward_plan_make(kube_client *api, const console_opts *o, const pf_path *p, console_plan *plan,
                          subres_reply *r)
{
        _cleanup_json_ cJSON *vmi = NULL;
        pf_request rq = {.port = p->port};
        char pod_ip[64];
        if (fetch_vmi(api, p, &vmi, r) < 0 || console_vmi_running(vmi, p->name, r) < 0)
                return -1;
        if (subres_vmi_condition(vmi, "Paused"))
                return subres_fail(r, 409,
                                   "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "
                                   "\"%s\": VMI is paused",
                                   p->name);
        if (console_locate(api, o, vmi, plan, rq.pod_uid, pod_ip, r) < 0 ||
            portforward_target(vmi, p, pod_ip, &rq, r) < 0)
                return -1;
        snprintf(rq.protocol, sizeof(rq.protocol), "%s", p->protocol);
        if (pf_request_format(&rq, plan->line, sizeof(plan->line)) < 0)
                return subres_fail(r, 500, "the launcher Pod's uid \"%s\" cannot be sent to virt-handler",
                                   rq.pod_uid);
        return 0;
}
