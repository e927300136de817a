/* Router advertisements and DHCPv6 for the masquerade bridge of a dual-stack Pod (v6.c). */
#pragma once

#include "error.h"
#include "v6-packet.h"

#include <net/if.h>

typedef struct v6_server v6_server;

/* Opens the ICMPv6 and DHCPv6 sockets on ifname (needs CAP_NET_RAW and CAP_NET_BIND_SERVICE) and the RA
 * timer, and adds all three to epfd. */
int v6_server_new(const char *ifname, int ifindex, const v6_lease *lease, int epfd, v6_server **out,
                  kv_error *err);
void v6_server_free(v6_server *s);
/* Answers what is pending and sends the periodic RA when due; never blocks. */
int v6_server_handle(v6_server *s, kv_error *err);
/* True once the guest has been given its address by DHCPv6. */
bool v6_server_bound(const v6_server *s);
