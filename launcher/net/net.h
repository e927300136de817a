/* libkvnet: the Pod network of one VMI. Reads the network part of a VMI spec, wires one binding
 * (masquerade, bridge, passt, slirp) inside the Pod's network namespace and tells the QEMU argv builder
 * which -netdev/-device to use. See docs/networking.md. */
#pragma once

#include "error.h"

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct cJSON cJSON;
typedef struct dhcp_server dhcp_server;

typedef enum kvnet_binding {
        NET_BINDING_NONE = 0, /* no pod network in the spec: nothing to do */
        NET_BINDING_MASQUERADE,
        NET_BINDING_BRIDGE,
        NET_BINDING_PASST,
        NET_BINDING_SLIRP,
} kvnet_binding;

#define NET_MAX_PORTS 64
#define NET_NAME_MAX 64

typedef struct net_port {
        int protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
        unsigned port; /* 1..65535 */
} net_port;

typedef struct net_request {
        kvnet_binding binding;
        char iface_name[NET_NAME_MAX]; /* spec.domain.devices.interfaces[].name */
        char model[16];                /* "virtio" (default), "e1000e", "e1000" */
        char mac[18];                  /* macAddress, normalised to lower case; "" = chosen by the binding */
        net_port ports[NET_MAX_PORTS];
        size_t n_ports; /* 0 = every port (masquerade, passt) */

        /* Environment; NULL/0 picks the default in brackets. */
        const char *pod_ifname;  /* ["eth0"] the CNI-configured interface */
        const char *resolv_conf; /* ["/etc/resolv.conf"] DNS servers and search list for DHCP */
        const char *run_dir;     /* [required for passt] where passt's socket goes (0700 directory) */
        const char *hostname;    /* [none] DHCP option 12, normally the VMI name */
        const char *passt_path;  /* ["passt"] */
        uid_t tap_owner;         /* QEMU's uid/gid: lets QEMU open the tap without CAP_NET_ADMIN */
        gid_t tap_group;
        bool tap_owner_set; /* false: the caller's uid/gid */
        bool keep_caps;     /* do not drop CAP_NET_ADMIN/CAP_NET_RAW at the end (tests only) */
} net_request;

typedef struct net_result {
        kvnet_binding binding;
        char netdev_id[NET_NAME_MAX + 8];
        char netdev_json[1024];  /* value of -netdev */
        char device_json[512];   /* value of -device (driver, id, netdev, mac); the caller may add "bus" */
        char mac[18];            /* the guest NIC's MAC */
        char tap_name[IFNAMSIZ]; /* "" unless masquerade/bridge */
        char guest_ip[INET_ADDRSTRLEN]; /* the address the guest gets (10.0.2.2, the Pod IP, 10.0.2.15) */
        char
            status_ip[INET_ADDRSTRLEN]; /* status.interfaces[].ipAddress: where the VM answers (the Pod IP) */
        char passt_socket[108];
        pid_t passt_pid;   /* passt child to supervise and kill, or 0 */
        dhcp_server *dhcp; /* masquerade/bridge: plug dhcp_server_fd() into the launcher's epoll loop */
} net_result;

/* spec.domain.devices.interfaces[] + spec.networks[] checks; errors name the JSON path. vmi_spec is the
 * VMI's "spec" object. Returns 0 or -EINVAL. */
int net_validate(const cJSON *vmi_spec, kv_error *err);
/* Validates, then fills req's spec part (binding NET_BINDING_NONE when no interface is on the pod
 * network). The environment fields are left NULL/0 for the caller. */
int net_request_from_vmi(const cJSON *vmi_spec, net_request *req, kv_error *err);

/* Wires req inside the current network namespace. Needs CAP_NET_ADMIN (and CAP_NET_BIND_SERVICE for the
 * DHCP port) on entry; drops CAP_NET_ADMIN and CAP_NET_RAW before returning unless req->keep_caps.
 * On failure res holds nothing to release. */
int net_setup(const net_request *req, net_result *res, kv_error *err);
/* Closes the DHCP server and stops passt. Links and rules die with the Pod's network namespace. */
void net_result_release(net_result *res);

const char *net_binding_name(kvnet_binding b);
kvnet_binding net_binding_from_name(const char *name);

/* The built-in DHCPv4 server (masquerade, bridge): one client, one fixed lease. */
int dhcp_server_fd(const dhcp_server *s);
/* Reads and answers every pending request (the fd is non-blocking). Returns 0 or a negative errno. */
int dhcp_server_handle(dhcp_server *s, kv_error *err);
/* True once the guest has been ACKed its address. */
bool dhcp_server_bound(const dhcp_server *s);
