/* rtnetlink requests built and parsed with libmnl; one request at a time, each waiting for its ACK. */
#include "rtnl.h"
#include "macro.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rtnl {
        struct mnl_socket *sock;
        unsigned portid;
        unsigned seq;
        char buf[32768]; /* MNL_SOCKET_BUFFER_SIZE is not a constant; dumps fit in 32 KiB chunks */
};

int rtnl_open(rtnl **out, kv_error *err)
{
        rtnl *nl = calloc(1, sizeof(*nl));
        if (!nl)
                return kv_error_errno(err, ENOMEM, "netlink");
        nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
                int e = errno;
                if (nl->sock)
                        mnl_socket_close(nl->sock);
                free(nl);
                return kv_error_errno(err, e, "open rtnetlink socket");
        }
        nl->portid = mnl_socket_get_portid(nl->sock);
        nl->seq = (unsigned)time(NULL);
        *out = nl;
        return 0;
}

void rtnl_close(rtnl *nl)
{
        mnl_socket_close(nl->sock);
        free(nl);
}

static struct nlmsghdr *request(rtnl *nl, uint16_t type, uint16_t flags)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = ++nl->seq;
        return nlh;
}

/* Sends nlh and runs cb over the replies until the ACK or the end of the dump. Returns 0 or -errno. */
static int talk(rtnl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
        unsigned seq = nlh->nlmsg_seq;
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
                if (n < 0)
                        return -errno;
                int r = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, data);
                if (r < 0)
                        return -errno;
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

static struct ifinfomsg *put_ifinfo(struct nlmsghdr *nlh, int index)
{
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = index;
        return ifi;
}

static int link_attr_cb(const struct nlattr *attr, void *data)
{
        rtnl_link *out = data;
        switch (mnl_attr_get_type(attr)) {
        case IFLA_MTU:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        out->mtu = mnl_attr_get_u32(attr);
                break;
        case IFLA_MASTER:
                if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        out->master = (int)mnl_attr_get_u32(attr);
                break;
        case IFLA_ADDRESS:
                if (mnl_attr_get_payload_len(attr) == 6)
                        memcpy(out->mac, mnl_attr_get_payload(attr), 6);
                break;
        }
        return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
        rtnl_link *out = data;
        struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        out->index = ifi->ifi_index;
        out->up = ifi->ifi_flags & IFF_UP;
        return mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, out);
}

int rtnl_link_get(rtnl *nl, const char *name, rtnl_link *out, kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_GETLINK, NLM_F_ACK);
        put_ifinfo(nlh, 0);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        *out = (rtnl_link){0};
        int r = talk(nl, nlh, link_cb, out);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: get link %s", name);
        return 0;
}

int rtnl_link_set(rtnl *nl, int index, const rtnl_link_change *ch, kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_NEWLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = put_ifinfo(nlh, index);
        if (ch->up >= 0) {
                ifi->ifi_change = IFF_UP;
                ifi->ifi_flags = ch->up ? IFF_UP : 0;
        }
        if (ch->master >= 0)
                mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)ch->master);
        if (ch->mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, ch->mtu);
        if (ch->mac)
                mnl_attr_put(nlh, IFLA_ADDRESS, 6, ch->mac);
        int r = talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: change link %d", index);
        return 0;
}

int rtnl_bridge_add(rtnl *nl, const char *name, unsigned mtu, kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        put_ifinfo(nlh, 0);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        if (mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
        struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
        mnl_attr_nest_end(nlh, info);
        int r = talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: create bridge %s", name);
        return 0;
}

int rtnl_macvtap_add(rtnl *nl, const char *name, int link, int index, const uint8_t *mac, unsigned mtu,
                     kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        put_ifinfo(nlh, index);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        mnl_attr_put_u32(nlh, IFLA_LINK, (uint32_t)link);
        if (mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
        if (mac)
                mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
        struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "macvtap");
        struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
        mnl_attr_put_u32(nlh, IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
        mnl_attr_nest_end(nlh, data);
        mnl_attr_nest_end(nlh, info);
        int r = talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: create macvtap %s on link %d", name, link);
        return 0;
}

static int addr_change(rtnl *nl, uint16_t type, uint16_t flags, int family, int index, const void *addr,
                       int prefix)
{
        size_t len = family == AF_INET6 ? sizeof(struct in6_addr) : sizeof(struct in_addr);
        struct nlmsghdr *nlh = request(nl, type, NLM_F_ACK | flags);
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = (unsigned char)family;
        ifa->ifa_prefixlen = (unsigned char)prefix;
        ifa->ifa_index = (unsigned)index;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        /* IPv6: usable at once (the bridge is ours alone; duplicate address detection would only delay
         * the guest's first packets) */
        ifa->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
        mnl_attr_put(nlh, IFA_LOCAL, len, addr);
        mnl_attr_put(nlh, IFA_ADDRESS, len, addr);
        return talk(nl, nlh, NULL, NULL);
}

int rtnl_addr_add(rtnl *nl, int index, struct in_addr addr, int prefix, kv_error *err)
{
        int r = addr_change(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, AF_INET, index, &addr, prefix);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: add %s/%d to link %d", inet_ntoa(addr), prefix,
                                      index);
        return 0;
}

int rtnl_addr_add6(rtnl *nl, int index, const struct in6_addr *addr, int prefix, kv_error *err)
{
        int r = addr_change(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, AF_INET6, index, addr, prefix);
        if (r < 0) {
                char text[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, addr, text, sizeof(text));
                return kv_error_errno(err, -r, "netlink: add %s/%d to link %d", text, prefix, index);
        }
        return 0;
}

int rtnl_addr_del(rtnl *nl, int index, struct in_addr addr, int prefix, kv_error *err)
{
        int r = addr_change(nl, RTM_DELADDR, 0, AF_INET, index, &addr, prefix);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: remove %s/%d from link %d", inet_ntoa(addr), prefix,
                                      index);
        return 0;
}

typedef struct addr_query {
        int family;
        int index;
        bool found;
        struct in6_addr addr; /* an in_addr in its first 4 bytes for AF_INET */
        int prefix;
} addr_query;

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
        addr_query *q = data;
        struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
        if (q->found || ifa->ifa_family != q->family || (int)ifa->ifa_index != q->index)
                return MNL_CB_OK;
        /* IPv6: global addresses only (not the link-local one every link has) */
        if (q->family == AF_INET6 && ifa->ifa_scope != RT_SCOPE_UNIVERSE)
                return MNL_CB_OK;
        /* IPv4 has the interface's own address in IFA_LOCAL, IPv6 in IFA_ADDRESS */
        uint16_t want = q->family == AF_INET ? IFA_LOCAL : IFA_ADDRESS;
        size_t len = q->family == AF_INET ? 4 : 16;
        struct nlattr *attr;
        mnl_attr_for_each(attr, nlh, sizeof(*ifa))
        {
                if (mnl_attr_get_type(attr) == want && mnl_attr_get_payload_len(attr) == len) {
                        memcpy(&q->addr, mnl_attr_get_payload(attr), len);
                        q->prefix = ifa->ifa_prefixlen;
                        q->found = true;
                }
        }
        return MNL_CB_OK;
}

static int addr_get(rtnl *nl, int family, int index, addr_query *q, kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_GETADDR, NLM_F_DUMP);
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = (unsigned char)family;
        *q = (addr_query){.family = family, .index = index};
        int r = talk(nl, nlh, addr_cb, q);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: list addresses");
        if (!q->found)
                return kv_error_set(err, ENOENT, "link %d has no %s address", index,
                                    family == AF_INET ? "IPv4" : "global IPv6");
        return 0;
}

int rtnl_addr_get4(rtnl *nl, int index, struct in_addr *addr, int *prefix, kv_error *err)
{
        addr_query q;
        int r = addr_get(nl, AF_INET, index, &q, err);
        if (r < 0)
                return r;
        memcpy(addr, &q.addr, sizeof(*addr));
        *prefix = q.prefix;
        return 0;
}

int rtnl_addr_get6(rtnl *nl, int index, struct in6_addr *addr, int *prefix, kv_error *err)
{
        addr_query q;
        int r = addr_get(nl, AF_INET6, index, &q, err);
        if (r < 0)
                return r;
        *addr = q.addr;
        *prefix = q.prefix;
        return 0;
}

typedef struct route_query {
        int index;
        rtnl_route4 *routes;
        size_t max, n;
} route_query;

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
        route_query *q = data;
        struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        if (rtm->rtm_family != AF_INET || rtm->rtm_table != RT_TABLE_MAIN || rtm->rtm_type != RTN_UNICAST ||
            q->n >= q->max)
                return MNL_CB_OK;
        rtnl_route4 rt = {.prefix = rtm->rtm_dst_len};
        int oif = 0;
        struct nlattr *attr;
        mnl_attr_for_each(attr, nlh, sizeof(*rtm))
        {
                uint16_t type = mnl_attr_get_type(attr);
                if (type == RTA_OIF && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                        oif = (int)mnl_attr_get_u32(attr);
                else if (type == RTA_DST && mnl_attr_get_payload_len(attr) == 4)
                        memcpy(&rt.dst, mnl_attr_get_payload(attr), 4);
                else if (type == RTA_GATEWAY && mnl_attr_get_payload_len(attr) == 4)
                        memcpy(&rt.gateway, mnl_attr_get_payload(attr), 4);
        }
        if (oif == q->index)
                q->routes[q->n++] = rt;
        return MNL_CB_OK;
}

int rtnl_routes_get4(rtnl *nl, int index, rtnl_route4 *routes, size_t max, size_t *n, kv_error *err)
{
        struct nlmsghdr *nlh = request(nl, RTM_GETROUTE, NLM_F_DUMP);
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = AF_INET;
        route_query q = {.index = index, .routes = routes, .max = max};
        int r = talk(nl, nlh, route_cb, &q);
        if (r < 0)
                return kv_error_errno(err, -r, "netlink: list routes");
        *n = q.n;
        return 0;
}
