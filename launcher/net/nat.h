/* The launcher's nftables rules, each set loaded through libnftables in one transaction: the masquerade
 * binding's NAT (one table per address family) and the bridge binding's way back into the Pod. */
#pragma once

#include "error.h"
#include "net.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

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

#define BRIDGE_LOCAL_TABLE "kvlite_local"

/* The bridge binding's way back into the Pod (docs/portforward.md): a guest holding the Pod's IP answers a
 * connection from the bridge's own address (local, e.g. 169.254.75.10) through its default gateway, that is
 * to the gateway's MAC. Frames from the tap to that address get the bridge's MAC and count as the Pod's own,
 * so virt-handler's port-forward connections made inside the Pod reach the guest and come back. Renders the
 * ruleset (pure): its length, -EINVAL for a bad interface name, -ENOBUFS. */
int nat_bridge_local_render(const char *tap, const uint8_t bridge_mac[6], struct in_addr local, char *out,
                            size_t outsz);
int nat_bridge_local_apply(const char *tap, const uint8_t bridge_mac[6], struct in_addr local, kv_error *err);
