/* The DHCPv4 server the masquerade and bridge bindings need. Built in rather than exec'ing dnsmasq: it
 * serves exactly one MAC one fixed address, runs on the launcher's own epoll loop with no extra process
 * or privilege, and is ~300 lines that the unit tests and a fuzzer cover (as KubeVirt does in Go). */
#include "dhcp.h"
#include "log.h"
#include "v6.h"
#include "macro.h"
#include "mac.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68

struct dhcp_server {
        int epfd; /* what the launcher watches: the DHCPv4 socket and, with IPv6, v6_server's fds */
        int fd;
        v6_server *v6;
        char ifname[IFNAMSIZ];
        dhcp_lease lease;
        bool bound;
};

static int open_socket(const char *ifname, kv_error *err)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return kv_error_errno(err, errno, "dhcp: socket");
        int one = 1;
        /* Replies go to 255.255.255.255 on this link only: the client has no address to unicast to yet. */
        if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0)
                return kv_error_errno(err, errno, "dhcp: socket options on %s", ifname);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(DHCP_SERVER_PORT)};
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return kv_error_errno(err, errno, "dhcp: bind port %d on %s", DHCP_SERVER_PORT, ifname);
        return TAKE_FD(fd);
}

int dhcp_server_new(const char *ifname, const dhcp_lease *lease, dhcp_server **out, kv_error *err)
{
        dhcp_server *s = calloc(1, sizeof(*s));
        if (!s)
                return kv_error_errno(err, ENOMEM, "dhcp");
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epfd < 0) {
                free(s);
                return kv_error_errno(err, errno, "dhcp: epoll");
        }
        s->fd = open_socket(ifname, err);
        int r = s->fd;
        if (r >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->fd,
                                &(struct epoll_event){.events = EPOLLIN, .data.fd = s->fd}) < 0)
                r = kv_error_errno(err, errno, "dhcp: epoll add");
        if (r < 0) {
                dhcp_server_free(s);
                return r;
        }
        snprintf(s->ifname, sizeof(s->ifname), "%s", ifname);
        s->lease = *lease;
        *out = s;
        return 0;
}

void dhcp_server_free(dhcp_server *s)
{
        if (!s)
                return;
        v6_server_free(s->v6);
        if (s->fd >= 0)
                close(s->fd);
        close(s->epfd);
        free(s);
}

int dhcp_server_add_v6(dhcp_server *s, int ifindex, const v6_lease *lease, kv_error *err)
{
        return v6_server_new(s->ifname, ifindex, lease, s->epfd, &s->v6, err);
}

int dhcp_server_fd(const dhcp_server *s)
{
        return s->epfd;
}

bool dhcp_server_bound(const dhcp_server *s)
{
        return s->bound;
}

bool dhcp_server_bound6(const dhcp_server *s)
{
        return v6_server_bound(s->v6);
}

static void log_reply(dhcp_server *s, int type)
{
        static const char *const names[] = {[DHCP_OFFER] = "OFFER", [DHCP_ACK] = "ACK", [DHCP_NAK] = "NAK"};
        char mac[18], ip[INET_ADDRSTRLEN];
        mac_format(s->lease.mac, mac);
        inet_ntop(AF_INET, &s->lease.yiaddr, ip, sizeof(ip));
        log_info("dhcp: %s %s to %s on %s",
                 type < (int)ARRAY_SIZE(names) && names[type] ? names[type] : "reply", ip, mac, s->ifname);
}

static int answer(dhcp_server *s, const uint8_t *in, size_t n, kv_error *err)
{
        uint8_t out[DHCP_REPLY_MAX];
        int type = 0;
        ssize_t len = dhcp_reply(&s->lease, in, n, out, sizeof(out), &type);
        if (len <= 0) {
                if (len < 0)
                        log_debug("dhcp: ignored a malformed message (%zu bytes)", n);
                return 0;
        }
        struct sockaddr_in to = {.sin_family = AF_INET,
                                 .sin_port = htons(DHCP_CLIENT_PORT),
                                 .sin_addr.s_addr = htonl(INADDR_BROADCAST)};
        if (sendto(s->fd, out, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
                return kv_error_errno(err, errno, "dhcp: send on %s", s->ifname);
        if (type == DHCP_ACK)
                s->bound = true;
        log_reply(s, type);
        return 0;
}

int dhcp_server_handle(dhcp_server *s, kv_error *err)
{
        /* The epoll set is level-triggered: draining every socket and the timer is what clears it. */
        if (s->v6) {
                int r = v6_server_handle(s->v6, err);
                if (r < 0)
                        return r;
        }
        for (;;) {
                uint8_t in[1500];
                ssize_t n = recv(s->fd, in, sizeof(in), 0);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        return kv_error_errno(err, errno, "dhcp: receive on %s", s->ifname);
                }
                int r = answer(s, in, (size_t)n, err);
                if (r < 0)
                        return r;
        }
}
