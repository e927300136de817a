/* bridge: the Pod IP moves to the guest. eth0 loses its address and its MAC (the guest takes the MAC, so
 * neighbours' ARP caches stay right, as in KubeVirt), is enslaved to k6t-eth0 with the tap, and DHCP hands
 * the guest the Pod's address, gateway, routes, DNS and MTU. The launcher itself has no IP afterwards. */
#include "binding.h"
#include "log.h"
#include "mac.h"
#include "macro.h"
#include "nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

/* Link-local address the DHCP server answers from; the guest never needs to reach it again (the lease is
 * infinite). Same range as KubeVirt's. virt-handler's port-forward connections come from it too. */
#define BRIDGE_DHCP_SERVER "169.254.75.10"

/* The Pod's routes via eth0, minus the connected one the netmask implies. Option 121 is only sent when
 * something beyond the default route exists, since a client that gets it ignores option 3. */
static int lease_routes(rtnl *nl, int index, struct in_addr addr, int prefix, dhcp_lease *lease,
                        kv_error *err)
{
        rtnl_route4 routes[DHCP_MAX_ROUTES];
        size_t n;
        int r = rtnl_routes_get4(nl, index, routes, DHCP_MAX_ROUTES, &n, err);
        if (r < 0)
                return r;
        uint32_t mask = prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
        bool extra = false;
        for (size_t i = 0; i < n; i++) {
                if (routes[i].prefix == prefix && routes[i].dst.s_addr == (addr.s_addr & mask) &&
                    !routes[i].gateway.s_addr)
                        continue;
                if (routes[i].prefix == 0)
                        lease->router = routes[i].gateway;
                else
                        extra = true;
                lease->routes[lease->n_routes++] =
                    (dhcp_route){routes[i].dst, routes[i].prefix, routes[i].gateway};
        }
        if (!extra)
                lease->n_routes = 0;
        return 0;
}

int bridge_read_pod(rtnl *nl, const net_request *req, rtnl_link *pod, dhcp_lease *lease, bool *has_ip,
                    net_result *res, kv_error *err)
{
        const char *ifname = net_pod_ifname(req);
        int r = rtnl_link_get(nl, ifname, pod, err);
        if (r < 0)
                return r;
        kv_error none = {0};
        r = rtnl_addr_get4(nl, pod->index, &lease->yiaddr, &lease->prefix, req->is_secondary ? &none : err);
        *has_ip = r >= 0;
        if (r == -ENOENT && req->is_secondary)
                r = 0; /* a Multus network without IPAM: the guest configures itself */
        if (r >= 0 && *has_ip)
                r = lease_routes(nl, pod->index, lease->yiaddr, lease->prefix, lease, err);
        if (r >= 0 && !req->is_secondary)
                r = lease_dns(req, lease, err);
        if (r < 0)
                return r;
        if (!req->mac[0])
                mac_format(pod->mac, res->mac);
        mac_parse(res->mac, lease->mac);
        lease->mtu = pod->mtu;
        lease->extra = req->dhcp;
        inet_pton(AF_INET, BRIDGE_DHCP_SERVER, &lease->server_id);
        snprintf(lease->hostname, sizeof(lease->hostname), "%s",
                 req->hostname && !req->is_secondary ? req->hostname : "");
        return 0;
}

/* eth0 down, address gone, a new MAC if the guest takes the old one, into the bridge, up again. */
static int enslave_pod(rtnl *nl, const rtnl_link *pod, const dhcp_lease *lease, bool has_ip, int bridge,
                       kv_error *err)
{
        uint8_t mac[6];
        bool new_mac = memcmp(pod->mac, lease->mac, 6) == 0;
        int r = new_mac ? mac_random(mac) : 0;
        if (r < 0)
                return kv_error_errno(err, -r, "random MAC");
        r = rtnl_link_set(nl, pod->index, &(rtnl_link_change){.up = 0, .master = -1}, err);
        if (r >= 0 && has_ip)
                r = rtnl_addr_del(nl, pod->index, lease->yiaddr, lease->prefix, err);
        if (r >= 0 && new_mac)
                r = rtnl_link_set(nl, pod->index, &(rtnl_link_change){.up = -1, .master = -1, .mac = mac},
                                  err);
        if (r >= 0)
                r = rtnl_link_set(nl, pod->index, &(rtnl_link_change){.up = 1, .master = bridge}, err);
        return r;
}

/* The rule that brings the guest's answers to the bridge's address back into the Pod (nat.h), with the
 * bridge's MAC as it is once its ports are in. Without it only port-forward misses: a warning, not a failure.
 */
static void bridge_local(rtnl *nl, const char *bridge_name, const char *tap, struct in_addr local)
{
        rtnl_link bridge;
        kv_error err = {0};
        if (rtnl_link_get(nl, bridge_name, &bridge, &err) < 0 ||
            nat_bridge_local_apply(tap, bridge.mac, local, &err) < 0)
                log_warning("bridge: port-forward will not reach the guest: %s", err.msg);
}

int binding_bridge(const net_request *req, net_result *res, kv_error *err)
{
        _cleanup_(rtnl_closep) rtnl *nl = NULL;
        rtnl_link pod, bridge;
        dhcp_lease lease = {0};
        bool has_ip = false;
        int r = rtnl_open(&nl, err);
        if (r >= 0)
                r = bridge_read_pod(nl, req, &pod, &lease, &has_ip, res, err);
        if (r < 0)
                return r;
        const char *id = net_link_id(net_pod_ifname(req));
        char bridge_name[IFNAMSIZ], tap[IFNAMSIZ];
        snprintf(bridge_name, sizeof(bridge_name), NET_BRIDGE_PREFIX "%s", id);
        snprintf(tap, sizeof(tap), "%s%s", req->is_secondary ? "tap" : NET_TAP_NAME,
                 req->is_secondary ? id : "");
        r = bridge_with_tap(nl, req, bridge_name, tap, pod.mtu, &bridge, res, err);
        if (r >= 0 && has_ip)
                r = rtnl_addr_add(nl, bridge.index, lease.server_id, 32, err);
        if (r >= 0)
                r = enslave_pod(nl, &pod, &lease, has_ip, bridge.index, err);
        if (r < 0)
                return r;
        if (!has_ip) {
                render_tap_netdev(res);
                return 0;
        }
        r = serve_lease(bridge_name, &lease, res, err);
        if (r < 0)
                return r;
        if (!req->is_secondary)
                bridge_local(nl, bridge_name, tap, lease.server_id);
        inet_ntop(AF_INET, &lease.yiaddr, res->status_ip, sizeof(res->status_ip));
        return 0;
}
