/* rtnetlink through libmnl: the few link, address and route operations the bindings need. */
#pragma once

#include "error.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rtnl rtnl;

typedef struct rtnl_link {
        int index;
        unsigned mtu;
        uint8_t mac[6];
        int master; /* 0 = none */
        bool up;
} rtnl_link;

typedef struct rtnl_route4 {
        struct in_addr dst;
        int prefix;
        struct in_addr gateway; /* 0.0.0.0 = on-link */
} rtnl_route4;

/* What rtnl_link_set changes; fields left at their "keep" value are not sent. */
typedef struct rtnl_link_change {
        int up;             /* -1 keep, 0 down, 1 up */
        int master;         /* -1 keep, else ifindex */
        unsigned mtu;       /* 0 keep */
        const uint8_t *mac; /* NULL keep */
} rtnl_link_change;
#define RTNL_LINK_KEEP ((rtnl_link_change){.up = -1, .master = -1})

int rtnl_open(rtnl **out, kv_error *err);
void rtnl_close(rtnl *nl);
static inline void rtnl_closep(rtnl **nl)
{
        if (*nl)
                rtnl_close(*nl);
}

int rtnl_link_get(rtnl *nl, const char *name, rtnl_link *out, kv_error *err);
int rtnl_link_set(rtnl *nl, int index, const rtnl_link_change *ch, kv_error *err);
int rtnl_bridge_add(rtnl *nl, const char *name, unsigned mtu, kv_error *err);
/* A macvtap in bridge mode on link (a macvlan's own lower device when link is a macvlan), with ifindex
 * index (0: the kernel's choice) and mac (NULL: random). */
int rtnl_macvtap_add(rtnl *nl, const char *name, int link, int index, const uint8_t *mac, unsigned mtu,
                     kv_error *err);
int rtnl_addr_add(rtnl *nl, int index, struct in_addr addr, int prefix, kv_error *err);
/* An IPv6 address, without duplicate address detection. */
int rtnl_addr_add6(rtnl *nl, int index, const struct in6_addr *addr, int prefix, kv_error *err);
int rtnl_addr_del(rtnl *nl, int index, struct in_addr addr, int prefix, kv_error *err);
/* The first IPv4 address of the link; -ENOENT when it has none. */
int rtnl_addr_get4(rtnl *nl, int index, struct in_addr *addr, int *prefix, kv_error *err);
/* The first global IPv6 address of the link (link-local ones are skipped); -ENOENT when it has none. */
int rtnl_addr_get6(rtnl *nl, int index, struct in6_addr *addr, int *prefix, kv_error *err);
/* IPv4 routes of the main table going out of index (the default route included). */
int rtnl_routes_get4(rtnl *nl, int index, rtnl_route4 *routes, size_t max, size_t *n, kv_error *err);
