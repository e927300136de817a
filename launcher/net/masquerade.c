/* masquerade: bridge k6t-eth0 (10.0.2.1/24) + tap inside the Pod netns, the guest gets 10.0.2.2 by DHCP,
 * nftables SNATs it out of eth0 and DNATs the Pod IP's inbound traffic to it. The Pod's eth0 is not
 * touched, so the launcher keeps its own connectivity (API server, probes). Dual stack (eth0 has a global
 * IPv6 address): the same with KubeVirt's fd10:0:2::1/120 on the bridge and fd10:0:2::2 for the guest,
 * which learns its default route from our router advertisements and its address from our DHCPv6. */
#include "binding.h"
#include "dhcp.h"
#include "log.h"
#include "mac.h"
#include "macro.h"
#include "nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define MASQ_GATEWAY "10.0.2.1"
#define MASQ_GUEST NET_MASQ_GUEST4
#define MASQ_PREFIX 24
#define MASQ_GATEWAY6 "fd10:0:2::1"
#define MASQ_GUEST6 "fd10:0:2::2"
#define MASQ_NET6 "fd10:0:2::"
#define MASQ_PREFIX6 120

/* Routing between the bridge and eth0. The sysctl is per network namespace; a read-only /proc/sys (an
 * unprivileged Pod) is fine when the Pod spec already set it through securityContext.sysctls. */
static int enable_forwarding(const char *path, const char *sysctl, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                fd = open(path, O_RDONLY | O_CLOEXEC);
        char v = '0';
        if (fd < 0 || pread(fd, &v, 1, 0) != 1)
                return kv_error_errno(err, errno, "read %s", path);
        if (v == '1')
                return 0;
        if (pwrite(fd, "1\n", 2, 0) != 2)
                return kv_error_errno(err, errno, "enable forwarding (%s); set %s=1 in the Pod", path,
                                      sysctl);
        return 0;
}

/* Dual stack: the bridge's IPv6 address, forwarding, and the v6 half of the NAT addresses. */
static int masquerade_v6(rtnl *nl, const rtnl_link *bridge, nat_addrs *nat, kv_error *err)
{
        /* A Pod that cannot forward IPv6 (read-only /proc/sys, sysctl not set) still gets IPv4: a warning,
         * not a failure, since single-stack Pods never needed this sysctl. */
        kv_error why = {0};
        if (enable_forwarding("/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding",
                              &why) < 0) {
                log_warning("masquerade: IPv6 not wired, the guest gets IPv4 only: %s", why.msg);
                nat->has6 = false;
                return 0;
        }
        struct in6_addr gateway;
        inet_pton(AF_INET6, MASQ_GATEWAY6, &gateway);
        inet_pton(AF_INET6, MASQ_GUEST6, &nat->guest6);
        return rtnl_addr_add6(nl, bridge->index, &gateway, MASQ_PREFIX6, err);
}

/* Router advertisements and DHCPv6 from the bridge, on the DHCPv4 server's fd. */
static int serve_v6(rtnl *nl, const char *bridge_name, unsigned mtu, const nat_addrs *nat,
                    const resolv_conf *dns, net_result *res, kv_error *err)
{
        rtnl_link bridge; /* re-read: a bridge takes its MAC from its ports */
        v6_lease lease = {.addr = nat->guest6, .prefix_len = MASQ_PREFIX6, .mtu = mtu, .n_dns = dns->n_dns6};
        memcpy(lease.dns, dns->dns6, sizeof(lease.dns));
        lease.search_len = dhcp_search_encode(dns, lease.search, sizeof(lease.search));
        inet_pton(AF_INET6, MASQ_NET6, &lease.prefix);
        int r = rtnl_link_get(nl, bridge_name, &bridge, err);
        if (r >= 0) {
                memcpy(lease.server_mac, bridge.mac, 6);
                r = dhcp_server_add_v6(res->dhcp, bridge.index, &lease, err);
        }
        if (r < 0)
                return r;
        inet_ntop(AF_INET6, &nat->guest6, res->guest_ip6, sizeof(res->guest_ip6));
        inet_ntop(AF_INET6, &nat->pod6, res->status_ip6, sizeof(res->status_ip6));
        return 0;
}

int binding_masquerade(const net_request *req, net_result *res, kv_error *err)
{
        const char *ifname = net_pod_ifname(req);
        _cleanup_(rtnl_closep) rtnl *nl = NULL;
        rtnl_link pod, bridge;
        dhcp_lease lease = {.prefix = MASQ_PREFIX};
        nat_addrs nat = {0};
        int pod_prefix;
        int r = rtnl_open(&nl, err);
        if (r >= 0)
                r = rtnl_link_get(nl, ifname, &pod, err);
        if (r >= 0)
                r = rtnl_addr_get4(nl, pod.index, &nat.pod4, &pod_prefix, err);
        if (r >= 0)
                r = lease_dns(req, &lease, err);
        if (r < 0)
                return r;
        kv_error no_v6 = {0};
        nat.has6 = rtnl_addr_get6(nl, pod.index, &nat.pod6, &pod_prefix, &no_v6) >= 0;
        char bridge_name[IFNAMSIZ];
        snprintf(bridge_name, sizeof(bridge_name), NET_BRIDGE_PREFIX "%s", ifname);
        inet_pton(AF_INET, MASQ_GATEWAY, &lease.server_id);
        inet_pton(AF_INET, MASQ_GUEST, &lease.yiaddr);
        nat.guest4 = lease.yiaddr;
        lease.router = lease.server_id;
        lease.mtu = pod.mtu;
        lease.extra = req->dhcp;
        mac_parse(res->mac, lease.mac);
        snprintf(lease.hostname, sizeof(lease.hostname), "%s", req->hostname ? req->hostname : "");
        r = bridge_with_tap(nl, req, bridge_name, NET_TAP_NAME, pod.mtu, &bridge, res, err);
        if (r >= 0)
                r = rtnl_addr_add(nl, bridge.index, lease.server_id, MASQ_PREFIX, err);
        if (r >= 0)
                r = enable_forwarding("/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward", err);
        if (r >= 0 && nat.has6)
                r = masquerade_v6(nl, &bridge, &nat, err);
        if (r >= 0)
                r = nat_apply(ifname, &nat, req->ports, req->n_ports, err);
        if (r >= 0)
                r = serve_lease(bridge_name, &lease, res, err);
        if (r >= 0 && nat.has6)
                r = serve_v6(nl, bridge_name, pod.mtu, &nat, &lease.dns, res, err);
        if (r < 0)
                return r;
        inet_ntop(AF_INET, &nat.pod4, res->status_ip, sizeof(res->status_ip));
        return 0;
}
