/* Internal: one setup function per binding, and the pieces masquerade and bridge share. */
#pragma once

#include "dhcp-packet.h"
#include "net.h"
#include "rtnl.h"

#define NET_BRIDGE_PREFIX "k6t-" /* KubeVirt's names, so its docs and habits still apply */
#define NET_TAP_NAME "tap0"

int binding_masquerade(const net_request *req, net_result *res, kv_error *err);
int binding_bridge(const net_request *req, net_result *res, kv_error *err);
int binding_passt(const net_request *req, net_result *res, kv_error *err);
int binding_macvtap(const net_request *req, net_result *res, kv_error *err);
/* passt's socket path (in req->run_dir) and the -netdev that connects to it; -ENAMETOOLONG. */
int render_passt_netdev(const net_request *req, net_result *res);

/* "eth0" -> "eth0", "pod1234567890a" -> "1234567890a": the part of a Pod interface name KubeVirt puts into
 * the names of the links it adds (k6t-<id>, tap<id>). */
const char *net_link_id(const char *pod_ifname);
/* Reads the Pod interface into a lease (address, routes; DNS and hostname unless req->secondary) and picks
 * the guest MAC if the spec did not: the interface's own. *has_ip is false for a secondary interface without
 * IPAM. */
int bridge_read_pod(rtnl *nl, const net_request *req, rtnl_link *pod, dhcp_lease *lease, bool *has_ip,
                    net_result *res, kv_error *err);

const char *net_pod_ifname(const net_request *req);
/* Creates bridge name (mtu) with a persistent tap owned by QEMU's uid enslaved to it, both up.
 * *bridge gets the bridge's link. */
int bridge_with_tap(rtnl *nl, const net_request *req, const char *name, const char *tap, unsigned mtu,
                    rtnl_link *bridge, net_result *res, kv_error *err);
/* Writes the tap netdev JSON (QEMU opens res->tap_name). */
void render_tap_netdev(net_result *res);
/* Starts the DHCP server on the bridge and writes the tap netdev JSON. */
int serve_lease(const char *bridge, const dhcp_lease *lease, net_result *res, kv_error *err);
/* The DNS part of a lease, from req->resolv_conf. */
int lease_dns(const net_request *req, dhcp_lease *lease, kv_error *err);
