/* libkvnet: the Pod network of one VMI. Takes the network part of a VMI spec (netspec.h), wires one binding
 * (masquerade, bridge, passt, slirp) inside the Pod's network namespace and tells the QEMU argv builder
 * which -netdev/-device to use. See docs/networking.md. */
#pragma once

#include "error.h"
#include "netspec.h" /* libkvapi: the network part of the VMI spec (net_request) */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct dhcp_server dhcp_server;

typedef struct net_result {
        kvnet_binding binding;
        char netdev_id[NET_NAME_MAX + 8];
        char netdev_json[1024];  /* value of -netdev */
        char device_json[512];   /* value of -device (driver, id, netdev, mac); the caller may add "bus" */
        char mac[18];            /* the guest NIC's MAC */
        char tap_name[IFNAMSIZ]; /* "" unless masquerade/bridge */
        unsigned tap_queues;     /* > 1: a multi-queue tap, the netdev opens that many queues */
        char guest_ip[INET_ADDRSTRLEN]; /* the address the guest gets (10.0.2.2, the Pod IP, 10.0.2.15) */
        char
            status_ip[INET_ADDRSTRLEN]; /* status.interfaces[].ipAddress: where the VM answers (the Pod IP) */
        /* Dual stack (the Pod interface has a global IPv6 address), else "": */
        char guest_ip6[INET6_ADDRSTRLEN];  /* masquerade: fd10:0:2::2 (RA + DHCPv6); passt: the Pod's */
        char status_ip6[INET6_ADDRSTRLEN]; /* status.interfaces[].ipAddresses[1]: the Pod's IPv6 address */
        char passt_socket[108];
        pid_t passt_pid;   /* passt child to supervise and kill, or 0 */
        int macvtap_fd;    /* macvtap: /dev/tapN, to hand to QEMU at req->child_fd; 0 = none */
        dhcp_server *dhcp; /* masquerade/bridge: plug dhcp_server_fd() into the launcher's epoll loop */
} net_result;

/* Wires req inside the current network namespace. Needs CAP_NET_ADMIN (and CAP_NET_BIND_SERVICE for the
 * DHCP port) on entry; drops CAP_NET_ADMIN and CAP_NET_RAW before returning unless req->keep_caps.
 * On failure res holds nothing to release. */
int net_setup(const net_request *req, net_result *res, kv_error *err);
/* Wires req->secondary[i] (a Multus network's Pod interface) like net_setup, without dropping any
 * capability: call it for every secondary interface before net_setup, or before net_drop_caps when the VMI
 * has no pod network. bridge: the interface joins k6t-<id> with tap<id>, the guest takes its MAC and, if the
 * network's IPAM gave it an address, gets that address from our DHCP; macvtap: a macvtap on the interface's
 * lower device whose own MAC the guest uses (macvlan delivers only frames for a MAC it owns), IPAM's
 * address by DHCP likewise. */
int net_setup_secondary(const net_request *req, size_t i, net_result *res, kv_error *err);
/* What net_setup_secondary would give QEMU for secondary interface i (netdev, device, MAC), computed
 * without touching the system: --dry-run outside a Pod shows the argv Multus' interfaces would get. */
void net_render_secondary(const net_request *req, size_t i, net_result *res);
/* What net_setup would give QEMU for the pod interface (masquerade, bridge: tap0; passt: its socket in the
 * run dir), computed without touching the system: --dry-run never wires this host. */
void net_render(const net_request *req, net_result *res);
/* Drops CAP_NET_ADMIN and CAP_NET_RAW (what net_setup does at its end). */
int net_drop_caps(kv_error *err);
/* Closes the DHCP server and stops passt. Links and rules die with the Pod's network namespace. */
void net_result_release(net_result *res);

/* The built-in DHCPv4 server (masquerade, bridge): one client, one fixed lease; on a dual-stack Pod
 * masquerade's also sends router advertisements and serves DHCPv6. One fd (an epoll set) for all. */
int dhcp_server_fd(const dhcp_server *s);
/* Reads and answers every pending request (the fd is non-blocking). Returns 0 or a negative errno. */
int dhcp_server_handle(dhcp_server *s, kv_error *err);
/* True once the guest has been ACKed its address. */
bool dhcp_server_bound(const dhcp_server *s);
/* True once the guest has been given its IPv6 address by DHCPv6. */
bool dhcp_server_bound6(const dhcp_server *s);
