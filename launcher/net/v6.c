/* The IPv6 responders of the masquerade bridge: router advertisements (on solicitation and every
 * V6_RA_INTERVAL seconds) and a DHCPv6 server for the one guest. Their sockets and timer are added to the
 * DHCP server's epoll set, so the launcher's loop watches one fd for both address families. */
#include "v6.h"
#include "log.h"
#include "macro.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#define DHCP6_SERVER_PORT 547
#define DHCP6_CLIENT_PORT 546

struct v6_server {
        int ra_fd, dhcp_fd, timer_fd;
        int ifindex;
        char ifname[IFNAMSIZ];
        v6_lease lease;
        bool bound;
};

static int join(int fd, int ifindex, const char *group)
{
        struct ipv6_mreq mr = {.ipv6mr_interface = (unsigned)ifindex};
        inet_pton(AF_INET6, group, &mr.ipv6mr_multiaddr);
        return setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr));
}

/* Raw ICMPv6 (needs CAP_NET_RAW, held during setup): router solicitations in, advertisements out with the
 * hop limit 255 that receivers check. */
static int open_ra_socket(const char *ifname, int ifindex, kv_error *err)
{
        _cleanup_close_ int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
        if (fd < 0)
                return kv_error_errno(err, errno, "ra: socket");
        struct icmp6_filter filter;
        ICMP6_FILTER_SETBLOCKALL(&filter);
        ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
        int hops = 255, off = 0;
        if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof(off)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0 ||
            join(fd, ifindex, "ff02::2") < 0)
                return kv_error_errno(err, errno, "ra: socket options on %s", ifname);
        return TAKE_FD(fd);
}

static int open_dhcp6_socket(const char *ifname, int ifindex, kv_error *err)
{
        _cleanup_close_ int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return kv_error_errno(err, errno, "dhcpv6: socket");
        int one = 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0 ||
            join(fd, ifindex, "ff02::1:2") < 0) /* All_DHCP_Relay_Agents_and_Servers */
                return kv_error_errno(err, errno, "dhcpv6: socket options on %s", ifname);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(DHCP6_SERVER_PORT)};
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return kv_error_errno(err, errno, "dhcpv6: bind port %d on %s", DHCP6_SERVER_PORT, ifname);
        return TAKE_FD(fd);
}

/* Unsolicited advertisements: the first soon after start, then every V6_RA_INTERVAL seconds, so the
 * guest's default route (V6_ROUTER_LIFETIME) never expires. Armed once: no timer call after setup. */
static int open_timer(kv_error *err)
{
        _cleanup_close_ int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct itimerspec its = {.it_value = {.tv_sec = 1}, .it_interval = {.tv_sec = V6_RA_INTERVAL}};
        if (fd < 0 || timerfd_settime(fd, 0, &its, NULL) < 0)
                return kv_error_errno(err, errno, "ra: timer");
        return TAKE_FD(fd);
}

static int watch(int epfd, int fd, kv_error *err)
{
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &(struct epoll_event){.events = EPOLLIN, .data.fd = fd}) < 0)
                return kv_error_errno(err, errno, "epoll add");
        return 0;
}

void v6_server_free(v6_server *s)
{
        if (!s)
                return;
        close(s->ra_fd), close(s->dhcp_fd), close(s->timer_fd);
        free(s);
}

int v6_server_new(const char *ifname, int ifindex, const v6_lease *lease, int epfd, v6_server **out,
                  kv_error *err)
{
        v6_server *s = calloc(1, sizeof(*s));
        if (!s)
                return kv_error_errno(err, ENOMEM, "ipv6");
        *s = (v6_server){.ra_fd = -1, .dhcp_fd = -1, .timer_fd = -1, .ifindex = ifindex, .lease = *lease};
        snprintf(s->ifname, sizeof(s->ifname), "%s", ifname);
        int r = s->ra_fd = open_ra_socket(ifname, ifindex, err);
        if (r >= 0)
                r = s->dhcp_fd = open_dhcp6_socket(ifname, ifindex, err);
        if (r >= 0)
                r = s->timer_fd = open_timer(err);
        if (r >= 0)
                r = watch(epfd, s->ra_fd, err);
        if (r >= 0)
                r = watch(epfd, s->dhcp_fd, err);
        if (r >= 0)
                r = watch(epfd, s->timer_fd, err);
        if (r < 0) {
                v6_server_free(s);
                return r;
        }
        *out = s;
        return 0;
}

bool v6_server_bound(const v6_server *s)
{
        return s && s->bound;
}

/* To all nodes on the bridge. Before the bridge has a link-local source address (no carrier until QEMU
 * opens the tap, then duplicate address detection) the kernel refuses: the next solicitation or tick
 * will do. */
static void send_ra(v6_server *s)
{
        uint8_t ra[V6_REPLY_MAX];
        size_t len = v6_ra_build(&s->lease, ra, sizeof(ra));
        struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_scope_id = (uint32_t)s->ifindex};
        inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
        if (len && sendto(s->ra_fd, ra, len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
                log_debug("ra: send on %s: %m", s->ifname);
}

static void drain_ra(v6_server *s)
{
        uint8_t in[1500];
        ssize_t n;
        bool solicited = false;
        while ((n = recv(s->ra_fd, in, sizeof(in), 0)) >= 0 || errno == EINTR)
                solicited |= n > 0 && v6_is_router_solicit(in, (size_t)n);
        uint64_t ticks;
        bool tick = read(s->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks);
        if (solicited || tick)
                send_ra(s);
}

static int answer_dhcp6(v6_server *s, const uint8_t *in, size_t n, const struct sockaddr_in6 *from,
                        kv_error *err)
{
        uint8_t out[V6_REPLY_MAX];
        int type;
        bool leased;
        ssize_t len = dhcp6_reply(&s->lease, in, n, out, sizeof(out), &type, &leased);
        if (len <= 0) {
                if (len < 0)
                        log_debug("dhcpv6: ignored a malformed message (%zu bytes)", n);
                return 0;
        }
        struct sockaddr_in6 to = *from;
        to.sin6_port = htons(DHCP6_CLIENT_PORT);
        if (sendto(s->dhcp_fd, out, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
                return kv_error_errno(err, errno, "dhcpv6: send on %s", s->ifname);
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &s->lease.addr, ip, sizeof(ip));
        log_info("dhcpv6: %s %s on %s", type == DHCP6_ADVERTISE ? "ADVERTISE" : "REPLY", ip, s->ifname);
        s->bound |= leased;
        return 0;
}

int v6_server_handle(v6_server *s, kv_error *err)
{
        drain_ra(s);
        for (;;) {
                uint8_t in[1500];
                struct sockaddr_in6 from;
                socklen_t fromlen = sizeof(from);
                ssize_t n = recvfrom(s->dhcp_fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fromlen);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        return kv_error_errno(err, errno, "dhcpv6: receive on %s", s->ifname);
                }
                int r = answer_dhcp6(s, in, (size_t)n, &from, err);
                if (r < 0)
                        return r;
        }
}
