/* The network part of a VMI spec: the binding, ports and MAC of the Pod interface (spec.networks[] and
 * spec.domain.devices.interfaces[]) as a net_request, validated with JSON paths. libkvnet (launcher/net)
 * wires it. */
#pragma once

#include "error.h"

#include <netinet/in.h> /* net_port.protocol: IPPROTO_TCP, IPPROTO_UDP */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct cJSON cJSON;

typedef enum kvnet_binding {
        NET_BINDING_NONE = 0, /* no pod network in the spec: nothing to do */
        NET_BINDING_MASQUERADE,
        NET_BINDING_BRIDGE,
        NET_BINDING_PASST,
        NET_BINDING_SLIRP,
        NET_BINDING_MACVTAP, /* secondary (Multus) networks only: a macvtap on the Pod's macvlan interface */
} kvnet_binding;

#define NET_MAX_PORTS 64
#define NET_NAME_MAX 64
#define NET_MAX_SECONDARY 8

typedef struct net_port {
        int protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
        unsigned port; /* 1..65535 */
} net_port;

/* One interface on a Multus network (spec.networks[].multus): Multus (the CNI meta-plugin) put the Pod
 * interface pod_ifname into the Pod's netns from the NetworkAttachmentDefinition `network`. */
typedef struct net_secondary {
        kvnet_binding binding;              /* NET_BINDING_BRIDGE or NET_BINDING_MACVTAP */
        char iface_name[NET_NAME_MAX];      /* interfaces[].name = networks[].name */
        char network[2 * NET_NAME_MAX + 2]; /* multus.networkName: "<nad>" or "<namespace>/<nad>" */
        char pod_ifname[16];                /* "pod" + 11 hex digits of sha256(name), KubeVirt 1.x's naming */
        char model[16];
        char mac[18]; /* macAddress; "" = the binding's choice */
        unsigned boot_order;
} net_secondary;

typedef struct net_request {
        kvnet_binding binding;
        char iface_name[NET_NAME_MAX]; /* spec.domain.devices.interfaces[].name */
        char model[16];                /* "virtio" (default), "e1000e", "e1000" */
        char mac[18];                  /* macAddress, normalised to lower case; "" = chosen by the binding */
        net_port ports[NET_MAX_PORTS];
        size_t n_ports;                             /* 0 = every port (masquerade, passt) */
        net_secondary secondary[NET_MAX_SECONDARY]; /* Multus networks, in interfaces[] order */
        size_t n_secondary;

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
        bool is_secondary;  /* internal: net_setup_secondary's request (a Multus interface, IPAM optional) */
        int child_fd;       /* net_setup_secondary, macvtap: where QEMU finds the macvtap's fd */

        /* [1] queue pairs of the pod interface's tap (networkInterfaceMultiqueue: one per vCPU) */
        unsigned tap_queues;
} net_request;

/* spec.domain.devices.interfaces[] + spec.networks[] checks; errors name the JSON path. vmi_spec is the
 * VMI's "spec" object. Returns 0 or -EINVAL. */
int net_validate(const cJSON *vmi_spec, kv_error *err);
/* Validates, then fills req's spec part (binding NET_BINDING_NONE when no interface is on the pod
 * network). The environment fields are left NULL/0 for the caller. */
int net_request_from_vmi(const cJSON *vmi_spec, net_request *req, kv_error *err);

/* The Pod interface name KubeVirt 1.x gives a network: "pod" + the first 11 hex digits of sha256(name). */
void net_pod_ifname_for(const char *network_name, char out[16]);
/* The "k8s.v1.cni.cncf.io/networks" annotation value for req's secondary networks (KubeVirt's
 * GenerateCNIAnnotation); NULL when there are none or out of memory. ns: the VMI's namespace. */
char *net_multus_annotation(const net_request *req, const char *ns);
/* Why the VMI cannot be live-migrated because of its networks, or NULL. */
const char *net_migration_blocker(const net_request *req);

const char *net_binding_name(kvnet_binding b);
kvnet_binding net_binding_from_name(const char *name);
