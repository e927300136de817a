/* The network part of a VMI spec: the binding, ports and MAC of the Pod interface (spec.networks[] and
 * spec.domain.devices.interfaces[]) as a net_request, validated with JSON paths. libkvnet (launcher/net)
 * wires it. */
#pragma once

#include "error.h"

#include <netinet/in.h> /* net_port.protocol: IPPROTO_TCP, IPPROTO_UDP */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct cJSON cJSON;

/* What the launcher wires on the pod network and virt-api's port-forward connects to from inside the Pod
 * (docs/portforward.md): the bridge of the masquerade and bridge bindings, the masquerade guest's address. */
#define NET_POD_BRIDGE "k6t-eth0"
#define NET_MASQ_GUEST4 "10.0.2.2"

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

/* interfaces[].dhcpOptions: what the launcher's DHCP server adds to its replies (KubeVirt's DHCPOptions). */
#define NET_DHCP_MAX_NTP 8
#define NET_DHCP_MAX_PRIVATE 31  /* codes 224-254, each at most once */
#define NET_DHCP_OPTIONS_MAX 512 /* bytes of these options together: the reply stays one small datagram */
typedef struct net_dhcp_private {
        uint8_t code;    /* 224..254 */
        char value[256]; /* sent as is */
} net_dhcp_private;
typedef struct net_dhcp_options {
        char boot_file[256];                  /* bootFileName: option 67; "" = none */
        char tftp_server[256];                /* tftpServerName: option 66 */
        struct in_addr ntp[NET_DHCP_MAX_NTP]; /* ntpServers: option 42 */
        size_t n_ntp;
        net_dhcp_private priv[NET_DHCP_MAX_PRIVATE];
        size_t n_priv;
} net_dhcp_options;

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
        int iface_index;      /* position in spec.domain.devices.interfaces[] (for JSON paths) */
        bool link_down;       /* state: down (QMP set_link before the guest runs) */
        char pci_address[13]; /* pciAddress "0000:00:SS.F"; "" = the builder's choice */
        unsigned acpi_index;  /* acpiIndex; 0 = none */
        net_dhcp_options dhcp;
} net_secondary;

typedef struct net_request {
        kvnet_binding binding;
        char iface_name[NET_NAME_MAX]; /* spec.domain.devices.interfaces[].name */
        char model[16];                /* "virtio" (default), "e1000e", "e1000" */
        char mac[18];                  /* macAddress, normalised to lower case; "" = chosen by the binding */
        net_port ports[NET_MAX_PORTS];
        size_t n_ports;                             /* 0 = every port (masquerade, passt) */
        int iface_index;                            /* position in interfaces[] (for JSON paths) */
        bool link_down;                             /* state: down */
        char pci_address[13];                       /* pciAddress, "" = none */
        unsigned acpi_index;                        /* acpiIndex, 0 = none */
        net_dhcp_options dhcp;                      /* dhcpOptions (the pod interface's; a secondary's in
                                                     * net_setup_secondary's request) */
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

/* KubeVirt's interface (and network) name rule, ^[A-Za-z0-9_-]+$: every such name prefixed with a letter
 * ("ua-<name>", "netua-<name>") is a valid QEMU id, and distinct names give distinct ids (QEMU ids are case
 * sensitive), so the ids need no hashing; the Pod-side names are hashes already (net_pod_ifname_for). */
bool net_iface_name_ok(const char *name);

/* The Pod interface name KubeVirt 1.x gives a network: "pod" + the first 11 hex digits of sha256(name). */
void net_pod_ifname_for(const char *network_name, char out[16]);
/* The "k8s.v1.cni.cncf.io/networks" annotation value for req's secondary networks (KubeVirt's
 * GenerateCNIAnnotation); NULL when there are none or out of memory. ns: the VMI's namespace. */
char *net_multus_annotation(const net_request *req, const char *ns);
/* Why the VMI cannot be live-migrated because of its networks, or NULL: a macvtap interface, or (as KubeVirt)
 * the bridge binding on the pod network unless allow_pod_bridge (the VMI's
 * kubevirt.io/allow-pod-bridge-network-live-migration annotation). */
const char *net_migration_blocker(const net_request *req, bool allow_pod_bridge);
#define NET_ALLOW_POD_BRIDGE_MIGRATION_ANNOTATION "kubevirt.io/allow-pod-bridge-network-live-migration"

const char *net_binding_name(kvnet_binding b);
kvnet_binding net_binding_from_name(const char *name);
