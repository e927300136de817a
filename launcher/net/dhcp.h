/* The DHCPv4 server socket: one per wired binding, bound to the bridge, answering one client. */
#pragma once

#include "dhcp-packet.h"
#include "error.h"
#include "net.h"
#include "v6-packet.h"

/* Binds UDP port 67 on ifname (needs CAP_NET_BIND_SERVICE once; the fd keeps the port afterwards). */
int dhcp_server_new(const char *ifname, const dhcp_lease *lease, dhcp_server **out, kv_error *err);
void dhcp_server_free(dhcp_server *s);
/* Dual stack: router advertisements and DHCPv6 on the same bridge (ifindex), served through the same fd. */
int dhcp_server_add_v6(dhcp_server *s, int ifindex, const v6_lease *lease, kv_error *err);
