/* masquerade: bridge k6t-eth0 (10.0.2.1/24) + tap inside the Pod netns, the guest gets 10.0.2.2 by DHCP,
 * nftables SNATs it out of eth0 and DNATs the Pod IP's inbound traffic to it. The Pod's eth0 is not
 * touched, so the launcher keeps its own connectivity (API server, probes). */
#include "binding.h"
#include "mac.h"
#include "macro.h"
#include "nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#define MASQ_GATEWAY "10.0.2.1"
#define MASQ_GUEST "10.0.2.2"
#define MASQ_PREFIX 24

/* Routing between the bridge and eth0. The sysctl is per network namespace; a read-only /proc/sys (an
 * unprivileged Pod) is fine when the Pod spec already set it through securityContext.sysctls. */
static int enable_forwarding(kv_error *err)
{
        const char *path = "/proc/sys/net/ipv4/ip_forward";
        _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                fd = open(path, O_RDONLY | O_CLOEXEC);
        char v = '0';
        if (fd < 0 || pread(fd, &v, 1, 0) != 1)
                return kv_error_errno(err, errno, "read %s", path);
        if (v == '1')
                return 0;
        if (pwrite(fd, "1\n", 2, 0) != 2)
                return kv_error_errno(
                    err, errno, "enable IPv4 forwarding (%s); set net.ipv4.ip_forward=1 in the Pod", path);
        return 0;
}

int binding_masquerade(const net_request *req, net_result *res, kv_error *err)
{
        const char *ifname = net_pod_ifname(req);
        _cleanup_(rtnl_closep) rtnl *nl = NULL;
        rtnl_link pod, bridge;
        dhcp_lease lease = {.prefix = MASQ_PREFIX};
        struct in_addr pod_ip;
        int pod_prefix;
        int r = rtnl_open(&nl, err);
        if (r >= 0)
                r = rtnl_link_get(nl, ifname, &pod, err);
        if (r >= 0)
                r = rtnl_addr_get4(nl, pod.index, &pod_ip, &pod_prefix, err);
        if (r >= 0)
                r = lease_dns(req, &lease, err);
        if (r < 0)
                return r;
        char bridge_name[IFNAMSIZ];
        snprintf(bridge_name, sizeof(bridge_name), NET_BRIDGE_PREFIX "%s", ifname);
        inet_pton(AF_INET, MASQ_GATEWAY, &lease.server_id);
        inet_pton(AF_INET, MASQ_GUEST, &lease.yiaddr);
        lease.router = lease.server_id;
        lease.mtu = pod.mtu;
        lease.extra = req->dhcp;
        mac_parse(res->mac, lease.mac);
        snprintf(lease.hostname, sizeof(lease.hostname), "%s", req->hostname ? req->hostname : "");
        r = bridge_with_tap(nl, req, bridge_name, NET_TAP_NAME, pod.mtu, &bridge, res, err);
        if (r >= 0)
                r = rtnl_addr_add(nl, bridge.index, lease.server_id, MASQ_PREFIX, err);
        if (r >= 0)
                r = enable_forwarding(err);
        if (r >= 0)
                r = nat_apply(ifname, pod_ip, lease.yiaddr, req->ports, req->n_ports, err);
        if (r >= 0)
                r = serve_lease(bridge_name, &lease, res, err);
        if (r < 0)
                return r;
        inet_ntop(AF_INET, &pod_ip, res->status_ip, sizeof(res->status_ip));
        return 0;
}
