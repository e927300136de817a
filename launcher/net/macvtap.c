/* macvtap (Multus networks): the guest sits on the Pod interface's lower device through a macvtap of its own
 * and uses the macvtap's MAC. A macvlan (or ipvlan) Pod interface only receives frames for its own MAC, which
 * is why KubeVirt's bridge binding (the guest takes the Pod interface's MAC, the interface a new one) does
 * not work there; a macvtap is one more macvlan port on the same lower device, so other Pods' macvlans and
 * the guest reach each other in bridge mode. The Pod interface keeps its MAC, loses the IPAM address (the
 * guest gets it from our DHCP, served on the Pod interface: bridge-mode macvlans see each other's broadcasts)
 * and stays up. QEMU gets /dev/tap<ifindex> as an fd. */
#include "binding.h"
#include "dhcp.h"
#include "mac.h"
#include "macro.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* /dev/tap<ifindex> is created by devtmpfs, which all network namespaces share: an ifindex another Pod's
 * macvtap uses makes the creation fail. Indexes from here on, tried in turn, keep clear of the small ones. */
#define MACVTAP_INDEX_BASE 40000
#define MACVTAP_INDEX_TRIES 64

static int create_macvtap(rtnl *nl, const char *name, const rtnl_link *pod, const net_request *req,
                          rtnl_link *out, kv_error *err)
{
        uint8_t mac[6];
        bool fixed = req->mac[0] && mac_parse(req->mac, mac) == 0;
        unsigned start = (unsigned)getpid() % 20000;
        int r = -EEXIST;
        for (unsigned t = 0; t < MACVTAP_INDEX_TRIES && (r == -EEXIST || r == -EBUSY); t++) {
                kv_error attempt = {0};
                int index = MACVTAP_INDEX_BASE + (int)((start + t * 313) % 20000);
                r = rtnl_macvtap_add(nl, name, pod->index, index, fixed ? mac : NULL, pod->mtu, &attempt);
                if (r < 0 && r != -EEXIST && r != -EBUSY)
                        *err = attempt;
        }
        if (r < 0)
                return r == -EEXIST || r == -EBUSY
                           ? kv_error_set(err, -r, "macvtap %s: no free ifindex", name)
                           : r;
        r = rtnl_link_get(nl, name, out, err);
        if (r >= 0)
                r = rtnl_link_set(nl, out->index, &(rtnl_link_change){.up = 1, .master = -1}, err);
        return r;
}

static int open_macvtap(const rtnl_link *tap, net_result *res, kv_error *err)
{
        char dev[32];
        snprintf(dev, sizeof(dev), "/dev/tap%d", tap->index);
        res->macvtap_fd = open(dev, O_RDWR | O_CLOEXEC);
        if (res->macvtap_fd < 0) {
                res->macvtap_fd = 0;
                return kv_error_errno(err, errno, "open %s (the macvtap's character device)", dev);
        }
        return 0;
}

int binding_macvtap(const net_request *req, net_result *res, kv_error *err)
{
        _cleanup_(rtnl_closep) rtnl *nl = NULL;
        rtnl_link pod, tap;
        dhcp_lease lease = {0};
        bool has_ip = false;
        char name[IFNAMSIZ];
        snprintf(name, sizeof(name), "mvt%s", net_link_id(net_pod_ifname(req)));
        int r = rtnl_open(&nl, err);
        if (r >= 0)
                r = bridge_read_pod(nl, req, &pod, &lease, &has_ip, res, err);
        if (r >= 0)
                r = create_macvtap(nl, name, &pod, req, &tap, err);
        if (r >= 0)
                r = open_macvtap(&tap, res, err);
        if (r < 0)
                return r;
        mac_format(tap.mac, res->mac);
        memcpy(lease.mac, tap.mac, 6);
        snprintf(res->tap_name, sizeof(res->tap_name), "%s", name);
        snprintf(res->netdev_json, sizeof(res->netdev_json), "{\"type\":\"tap\",\"id\":\"%s\",\"fd\":\"%d\"}",
                 res->netdev_id, req->child_fd);
        if (!has_ip)
                return 0;
        r = rtnl_addr_del(nl, pod.index, lease.yiaddr, lease.prefix, err);
        if (r >= 0)
                r = rtnl_addr_add(nl, pod.index, lease.server_id, 32, err);
        if (r >= 0)
                r = dhcp_server_new(net_pod_ifname(req), &lease, &res->dhcp, err);
        if (r < 0)
                return r;
        inet_ntop(AF_INET, &lease.yiaddr, res->guest_ip, sizeof(res->guest_ip));
        snprintf(res->status_ip, sizeof(res->status_ip), "%s", res->guest_ip);
        return 0;
}
