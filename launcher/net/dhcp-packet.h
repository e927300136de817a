/* DHCPv4 message codec (RFC 2131/2132): given the one lease this launcher hands out and a client
 * message, build the reply. Pure: no sockets, so the unit tests and the fuzzer drive it directly. */
#pragma once

#include "netspec.h" /* net_dhcp_options */
#include "resolv.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DHCP_MAX_ROUTES 16
#define DHCP_REPLY_MAX 1024

enum dhcp_msg_type {
        DHCP_DISCOVER = 1,
        DHCP_OFFER = 2,
        DHCP_REQUEST = 3,
        DHCP_DECLINE = 4,
        DHCP_ACK = 5,
        DHCP_NAK = 6,
        DHCP_RELEASE = 7,
        DHCP_INFORM = 8,
};

typedef struct dhcp_route {
        struct in_addr dst;
        int prefix;
        struct in_addr gateway;
} dhcp_route;

typedef struct dhcp_lease {
        uint8_t mac[6];           /* the only client served */
        struct in_addr server_id; /* our address on the link */
        struct in_addr yiaddr;
        int prefix;
        struct in_addr router; /* 0.0.0.0 = none */
        resolv_conf dns;
        dhcp_route routes[DHCP_MAX_ROUTES]; /* option 121; the default route must be among them if any */
        size_t n_routes;
        unsigned mtu;           /* 0 = no option 26 */
        char hostname[64];      /* "" = no option 12 */
        net_dhcp_options extra; /* interfaces[].dhcpOptions: options 66, 67, 42 and 224-254 */
} dhcp_lease;

/* Returns the reply length, 0 when the message is not for us (other MAC, other server, RELEASE...), or
 * -EINVAL when it is malformed. *type gets the reply's message type. */
ssize_t dhcp_reply(const dhcp_lease *lease, const uint8_t *in, size_t n, uint8_t *out, size_t outsz,
                   int *type);
/* The search domains as DNS labels without compression (RFC 1035 3.1), the form of DHCPv4 option 119
 * (RFC 3397) and DHCPv6 option 24 (RFC 3646). Only whole domains that fit in cap; 0 for none or when a
 * domain has an empty or over-long label. */
size_t dhcp_search_encode(const resolv_conf *dns, uint8_t *out, size_t cap);
