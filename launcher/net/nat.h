/* The masquerade binding's NAT: one nftables table per address family, loaded through libnftables in one
 * transaction. */
#pragma once

#include "error.h"
#include "net.h"

#include <netinet/in.h>
#include <stdbool.h>

#define NAT_TABLE "kvlite_nat"

/* The addresses NAT maps between: the Pod's (on its interface) and the guest's (behind the bridge). */
typedef struct nat_addrs {
        struct in_addr pod4, guest4;
        bool has6; /* dual stack: an ip6 table with the same rules */
        struct in6_addr pod6, guest6;
} nat_addrs;

/* Renders the ruleset (pure; for tests and logs). Returns its length, -EINVAL for a bad interface name or
 * -ENOBUFS. */
int nat_render(const char *pod_ifname, const nat_addrs *a, const net_port *ports, size_t n_ports, char *out,
               size_t outsz);
/* Loads it in one transaction, replacing an earlier kvlite table. */
int nat_apply(const char *pod_ifname, const nat_addrs *a, const net_port *ports, size_t n_ports,
              kv_error *err);
