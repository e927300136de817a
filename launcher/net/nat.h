/* The masquerade binding's NAT: one nftables table, loaded through libnftables in one transaction. */
#pragma once

#include "error.h"
#include "net.h"

#include <netinet/in.h>

#define NAT_TABLE "kvlite_nat"

/* Renders the ruleset (pure; for tests and logs). Returns its length or -ENOBUFS. */
int nat_render(const char *pod_ifname, struct in_addr pod_ip, struct in_addr guest_ip, const net_port *ports,
               size_t n_ports, char *out, size_t outsz);
/* Loads it, replacing an earlier kvlite table. */
int nat_apply(const char *pod_ifname, struct in_addr pod_ip, struct in_addr guest_ip, const net_port *ports,
              size_t n_ports, kv_error *err);
