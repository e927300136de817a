/* net_setup: picks the binding, renders the -netdev/-device JSON the argv builder passes to QEMU, and
 * drops the network capabilities once the wiring is done. */
#include "binding.h"
#include "netcaps.h"
#include "dhcp.h"
#include "log.h"
#include "mac.h"
#include "macro.h"
#include "resolv.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLIRP_GUEST_IP "10.0.2.15" /* QEMU's user network hands this to the first DHCP client */

const char *net_pod_ifname(const net_request *req)
{
        return req->pod_ifname ? req->pod_ifname : "eth0";
}

static const char *model_driver(const char *model)
{
        if (strcmp(model, "e1000e") == 0 || strcmp(model, "e1000") == 0 || strcmp(model, "rtl8139") == 0)
                return model;
        return "virtio-net-pci";
}

const char *net_link_id(const char *pod_ifname)
{
        return strncmp(pod_ifname, "pod", 3) == 0 && pod_ifname[3] ? pod_ifname + 3 : pod_ifname;
}

int bridge_with_tap(rtnl *nl, const net_request *req, const char *name, const char *tap_name, unsigned mtu,
                    rtnl_link *bridge, net_result *res, kv_error *err)
{
        uid_t owner = req->tap_owner_set ? req->tap_owner : getuid();
        gid_t group = req->tap_owner_set ? req->tap_group : getgid();
        rtnl_link tap;
        int r = rtnl_bridge_add(nl, name, mtu, err);
        if (r >= 0)
                r = rtnl_link_get(nl, name, bridge, err);
        if (r >= 0)
                r = tap_create(tap_name, owner, group, req->is_secondary ? 1 : req->tap_queues, err);
        if (r >= 0)
                r = rtnl_link_get(nl, tap_name, &tap, err);
        if (r < 0)
                return r;
        rtnl_link_change ch = {.up = 1, .master = bridge->index, .mtu = mtu};
        r = rtnl_link_set(nl, tap.index, &ch, err);
        if (r >= 0)
                r = rtnl_link_set(nl, bridge->index, &(rtnl_link_change){.up = 1, .master = -1}, err);
        if (r < 0)
                return r;
        snprintf(res->tap_name, sizeof(res->tap_name), "%s", tap_name);
        res->tap_queues = req->is_secondary || req->tap_queues < 2 ? 1 : req->tap_queues;
        return 0;
}

int lease_dns(const net_request *req, dhcp_lease *lease, kv_error *err)
{
        const char *path = req->resolv_conf ? req->resolv_conf : "/etc/resolv.conf";
        int r = resolv_conf_read(path, &lease->dns, err);
        return r < 0 ? kv_error_wrap(err, "DNS for the guest") : 0;
}

void render_tap_netdev(net_result *res)
{
        int n = snprintf(
            res->netdev_json, sizeof(res->netdev_json),
            "{\"type\":\"tap\",\"id\":\"%s\",\"ifname\":\"%s\",\"script\":\"no\",\"downscript\":\"no\"",
            res->netdev_id, res->tap_name);
        if (res->tap_queues > 1)
                n += snprintf(res->netdev_json + n, sizeof(res->netdev_json) - n, ",\"queues\":%u",
                              res->tap_queues);
        snprintf(res->netdev_json + n, sizeof(res->netdev_json) - n, "}");
}

int serve_lease(const char *bridge, const dhcp_lease *lease, net_result *res, kv_error *err)
{
        int r = dhcp_server_new(bridge, lease, &res->dhcp, err);
        if (r < 0)
                return r;
        render_tap_netdev(res);
        inet_ntop(AF_INET, &lease->yiaddr, res->guest_ip, sizeof(res->guest_ip));
        return 0;
}

/* QEMU's user network: nothing to wire; ports[] become hostfwd on every Pod address. */
static int binding_slirp(const net_request *req, net_result *res, kv_error *err)
{
        char fwd[NET_MAX_PORTS * 48] = "";
        size_t len = 0;
        for (size_t i = 0; i < req->n_ports; i++) {
                const char *proto = req->ports[i].protocol == IPPROTO_UDP ? "udp" : "tcp";
                len += (size_t)snprintf(fwd + len, sizeof(fwd) - len, "%s{\"str\":\"%s::%u-:%u\"}",
                                        i ? "," : "", proto, req->ports[i].port, req->ports[i].port);
        }
        int n =
            snprintf(res->netdev_json, sizeof(res->netdev_json), "{\"type\":\"user\",\"id\":\"%s\"%s%s%s}",
                     res->netdev_id, len ? ",\"hostfwd\":[" : "", fwd, len ? "]" : "");
        if (n < 0 || (size_t)n >= sizeof(res->netdev_json))
                return kv_error_set(err, ENOBUFS, "slirp: too many ports");
        snprintf(res->guest_ip, sizeof(res->guest_ip), SLIRP_GUEST_IP);
        return 0;
}

/* Where the VM answers for slirp and passt: the Pod's address, read without privilege. passt also gives
 * the guest the Pod's IPv6 address and forwards its ports (dual stack). */
static void pod_ip_lookup(const net_request *req, net_result *res)
{
        _cleanup_(rtnl_closep) rtnl *nl = NULL;
        rtnl_link pod;
        struct in_addr ip;
        struct in6_addr ip6;
        int prefix;
        kv_error ignored = {0};
        if (rtnl_open(&nl, &ignored) < 0 || rtnl_link_get(nl, net_pod_ifname(req), &pod, &ignored) < 0)
                return;
        if (!res->status_ip[0] && rtnl_addr_get4(nl, pod.index, &ip, &prefix, &ignored) >= 0)
                inet_ntop(AF_INET, &ip, res->status_ip, sizeof(res->status_ip));
        if (req->binding == NET_BINDING_PASST &&
            rtnl_addr_get6(nl, pod.index, &ip6, &prefix, &ignored) >= 0) {
                inet_ntop(AF_INET6, &ip6, res->status_ip6, sizeof(res->status_ip6));
                snprintf(res->guest_ip6, sizeof(res->guest_ip6), "%s", res->status_ip6);
        }
}

static void fill_common(const net_request *req, net_result *res)
{
        *res = (net_result){.binding = req->binding};
        snprintf(res->netdev_id, sizeof(res->netdev_id), "netua-%s", req->iface_name);
        uint8_t mac[6];
        if (req->mac[0]) {
                snprintf(res->mac, sizeof(res->mac), "%s", req->mac);
        } else {
                mac_from_seed(req->hostname ? req->hostname : req->iface_name, mac);
                mac_format(mac, res->mac);
        }
}

static void render_device(const net_request *req, net_result *res)
{
        snprintf(res->device_json, sizeof(res->device_json),
                 "{\"driver\":\"%s\",\"id\":\"ua-%s\",\"netdev\":\"%s\",\"mac\":\"%s\"}",
                 model_driver(req->model[0] ? req->model : "virtio"), req->iface_name, res->netdev_id,
                 res->mac);
}

static int dispatch(const net_request *req, net_result *res, kv_error *err)
{
        switch (req->binding) {
        case NET_BINDING_MASQUERADE:
                return binding_masquerade(req, res, err);
        case NET_BINDING_BRIDGE:
                return binding_bridge(req, res, err);
        case NET_BINDING_PASST:
                return binding_passt(req, res, err);
        case NET_BINDING_SLIRP:
                return binding_slirp(req, res, err);
        case NET_BINDING_MACVTAP:
                return binding_macvtap(req, res, err);
        default:
                return kv_error_set(err, EINVAL, "net: no binding to wire");
        }
}

int net_setup(const net_request *req, net_result *res, kv_error *err)
{
        *res = (net_result){0};
        if (!net_iface_name_ok(req->iface_name))
                return kv_error_set(
                    err, EINVAL, "net: interface name \"%s\" may only contain letters, digits, '-' and '_'",
                    req->iface_name);
        fill_common(req, res);
        int r = dispatch(req, res, err);
        if (r < 0) {
                kv_error_wrap(err, "%s binding", net_binding_name(req->binding));
                net_result_release(res);
                return r;
        }
        render_device(req, res);
        if (!res->status_ip[0] || req->binding == NET_BINDING_PASST)
                pod_ip_lookup(req, res);
        if (!res->guest_ip[0])
                snprintf(res->guest_ip, sizeof(res->guest_ip), "%s", res->status_ip);
        if (!req->keep_caps && (r = caps_drop_net_admin(err)) < 0) {
                net_result_release(res);
                return r;
        }
        log_info("net: %s binding ready: guest %s%s%s mac %s, netdev %s", net_binding_name(req->binding),
                 res->guest_ip, res->guest_ip6[0] ? " and " : "", res->guest_ip6, res->mac, res->netdev_json);
        return 0;
}

/* net_setup's request for secondary interface i of req. */
static void secondary_request(const net_request *req, const net_secondary *s, net_request *sub)
{
        *sub = *req;
        sub->binding = s->binding;
        sub->n_ports = 0;
        sub->is_secondary = true;
        sub->pod_ifname = s->pod_ifname;
        snprintf(sub->iface_name, sizeof(sub->iface_name), "%s", s->iface_name);
        snprintf(sub->model, sizeof(sub->model), "%s", s->model);
        snprintf(sub->mac, sizeof(sub->mac), "%s", s->mac);
        sub->dhcp = s->dhcp;
}

void net_render(const net_request *req, net_result *res)
{
        fill_common(req, res);
        res->tap_queues = req->tap_queues < 2 ? 1 : req->tap_queues;
        switch (req->binding) {
        case NET_BINDING_MASQUERADE:
        case NET_BINDING_BRIDGE:
                snprintf(res->tap_name, sizeof(res->tap_name), NET_TAP_NAME);
                render_tap_netdev(res);
                break;
        case NET_BINDING_PASST:
                render_passt_netdev(req, res); /* too long a path: an empty netdev, QEMU would say */
                break;
        default:
                break;
        }
        render_device(req, res);
}

void net_render_secondary(const net_request *req, size_t i, net_result *res)
{
        const net_secondary *s = &req->secondary[i];
        net_request sub;
        secondary_request(req, s, &sub);
        fill_common(&sub, res);
        const char *id = net_link_id(s->pod_ifname);
        if (s->binding == NET_BINDING_MACVTAP) {
                snprintf(res->tap_name, sizeof(res->tap_name), "mvt%s", id);
                snprintf(res->netdev_json, sizeof(res->netdev_json),
                         "{\"type\":\"tap\",\"id\":\"%s\",\"fd\":\"%d\"}", res->netdev_id, req->child_fd);
        } else {
                snprintf(res->tap_name, sizeof(res->tap_name), "tap%s", id);
                render_tap_netdev(res);
        }
        render_device(&sub, res);
}

int net_setup_secondary(const net_request *req, size_t i, net_result *res, kv_error *err)
{
        if (i >= req->n_secondary)
                return kv_error_set(err, EINVAL, "net: no secondary interface %zu", i);
        const net_secondary *s = &req->secondary[i];
        net_request sub;
        secondary_request(req, s, &sub);
        *res = (net_result){0};
        fill_common(&sub, res);
        int r = dispatch(&sub, res, err);
        if (r < 0) {
                kv_error_wrap(err, "%s binding of interface %s (%s)", net_binding_name(s->binding),
                              s->iface_name, s->pod_ifname);
                net_result_release(res);
                return r;
        }
        render_device(&sub, res);
        log_info("net: %s binding of %s ready on %s: guest %s mac %s", net_binding_name(s->binding),
                 s->iface_name, s->pod_ifname, res->guest_ip[0] ? res->guest_ip : "(no IPAM)", res->mac);
        return 0;
}

int net_drop_caps(kv_error *err)
{
        return caps_drop_net_admin(err);
}

void net_result_release(net_result *res)
{
        if (res->macvtap_fd > 0)
                close(res->macvtap_fd);
        res->macvtap_fd = 0;
        dhcp_server_free(res->dhcp);
        res->dhcp = NULL;
        if (res->passt_pid > 0) {
                kill(res->passt_pid, SIGTERM);
                waitpid(res->passt_pid, NULL, 0);
                res->passt_pid = 0;
        }
        if (res->passt_socket[0])
                unlink(res->passt_socket);
        res->passt_socket[0] = '\0';
}
