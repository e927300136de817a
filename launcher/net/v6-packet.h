/* The IPv6 side of the guest's address configuration (masquerade on a dual-stack Pod): router
 * advertisements (RFC 4861) that give the guest its default route and tell it to ask DHCPv6, and DHCPv6
 * replies (RFC 8415) that hand out one fixed address with an infinite lifetime. Pure: no sockets, so the
 * unit tests and the fuzzer drive it directly. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define V6_REPLY_MAX 1024
#define V6_ROUTER_LIFETIME 1800 /* seconds; RAs are repeated well within it (V6_RA_INTERVAL) */
#define V6_RA_INTERVAL 60
#define V6_MAX_DNS 4
#define V6_SEARCH_MAX 512 /* the encoded search list; fits V6_REPLY_MAX with the rest */

enum dhcp6_msg_type {
        DHCP6_SOLICIT = 1,
        DHCP6_ADVERTISE = 2,
        DHCP6_REQUEST = 3,
        DHCP6_CONFIRM = 4,
        DHCP6_RENEW = 5,
        DHCP6_REBIND = 6,
        DHCP6_REPLY = 7,
        DHCP6_RELEASE = 8,
        DHCP6_DECLINE = 9,
        DHCP6_INFORMATION_REQUEST = 11,
};

typedef struct v6_lease {
        uint8_t server_mac[6];  /* the bridge's: RA source link-layer option and our DUID-LL */
        struct in6_addr addr;   /* the guest's address (DHCPv6 IA_NA) */
        struct in6_addr prefix; /* the on-link prefix the RA announces (not for SLAAC) */
        int prefix_len;
        unsigned mtu;                    /* 0 = no MTU option */
        struct in6_addr dns[V6_MAX_DNS]; /* DHCPv6 option 23: the Pod's IPv6 name servers */
        size_t n_dns;
        uint8_t search[V6_SEARCH_MAX]; /* DHCPv6 option 24: the Pod's search domains as DNS labels */
        size_t search_len;
} v6_lease;

/* The router advertisement: managed flag (addresses from DHCPv6), us as default router, the prefix on-link
 * only, our MAC, the MTU. Returns its length (the ICMPv6 checksum is left to the kernel). */
size_t v6_ra_build(const v6_lease *lease, uint8_t *out, size_t outsz);
/* True when the ICMPv6 message is a well-formed router solicitation. */
bool v6_is_router_solicit(const uint8_t *in, size_t n);
/* Returns the DHCPv6 reply's length, 0 when the message is not for us (a server's message, another
 * server's id, no client id) or -EINVAL when it is malformed. *type gets the reply's message type and
 * *leased whether the reply hands out the address. */
ssize_t dhcp6_reply(const v6_lease *lease, const uint8_t *in, size_t n, uint8_t *out, size_t outsz, int *type,
                    bool *leased);
