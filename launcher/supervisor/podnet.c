/* podnet: which interfaces net_setup wires in which mode, the DHCP server in the epoll loop, passt's
 * end, and status.interfaces[]. */
#include "podnet.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "jfield.h"
#include "log.h"
#include "qemu-process.h"
#include "supervisor.h"

/* Local mode has no Pod netns to rewire: only passt (unprivileged) is wired; masquerade and KubeVirt's
 * implied default fall back to user networking; an explicit bridge would take this host's address. */
static int local_mode_allows(const vmi_interface *nic, bool *wire, kv_error *err)
{
        *wire = nic->binding == NET_BINDING_PASST;
        if (nic->binding == NET_BINDING_BRIDGE && !nic->binding_implied)
                return kv_error_set(err, EINVAL,
                                    "spec.domain.devices.interfaces[0].bridge: needs --pod-network (the "
                                    "launcher inside a Pod's network namespace): bridge moves that "
                                    "namespace's address into the guest, and here it would rewire this host");
        if (nic->binding == NET_BINDING_MASQUERADE || nic->binding == NET_BINDING_BRIDGE)
                log_warning(
                    "interface %s: no Pod network namespace (run with --pod-network inside a Pod): "
                    "%s falls back to QEMU user networking (guest 10.0.2.2, not reachable from outside)",
                    nic->name, nic->binding_implied ? "the default binding" : "masquerade");
        return 0;
}

static void record_interface(status *st, const char *name, const char *mac, const char *ip)
{
        if (st->n_ifaces >= STATUS_MAX_INTERFACES)
                return;
        status_interface *f = &st->ifaces[st->n_ifaces++];
        *f = (status_interface){0};
        snprintf(f->name, sizeof(f->name), "%s", name);
        snprintf(f->mac, sizeof(f->mac), "%s", mac);
        snprintf(f->ip, sizeof(f->ip), "%s", ip);
        snprintf(f->info_source, sizeof(f->info_source), "domain");
}

/* Multus interfaces: only inside a Pod (Multus put them into its netns); before the pod interface, whose
 * net_setup drops the network capabilities. Their macvtap fds land at CHILD_FD_NET_BASE + i. */
static int wire_secondary(const vmi *v, bool pod_network, bool dry_run, const char *run_dir, net_result *sec,
                          size_t *n, kv_error *err)
{
        if (dry_run) { /* the argv the Pod's Multus interfaces would get; nothing is wired */
                for (size_t i = 0; i < v->net.n_secondary; i++) {
                        net_request req = v->net;
                        req.hostname = v->hostname;
                        req.child_fd = CHILD_FD_NET_BASE + (int)i;
                        net_render_secondary(&req, i, &sec[i]);
                        *n = i + 1;
                }
                return 0;
        }
        if (v->net.n_secondary && !pod_network)
                return kv_error_set(err, EINVAL,
                                    "spec.networks: multus network %s needs --pod-network (the launcher "
                                    "inside a Pod whose netns Multus attached)",
                                    v->net.secondary[0].iface_name);
        for (size_t i = 0; i < v->net.n_secondary; i++) {
                net_request req = v->net;
                req.run_dir = run_dir;
                req.hostname = v->hostname;
                req.child_fd = CHILD_FD_NET_BASE + (int)i;
                int r = net_setup_secondary(&req, i, &sec[i], err);
                if (r < 0)
                        return r == -EINVAL ? -EIO : r;
                *n = i + 1;
        }
        return 0;
}

int podnet_setup(const vmi *v, bool pod_network, bool dry_run, const char *run_dir, net_result *net,
                 net_result *secondary, size_t *n_secondary, status *st, kv_error *err)
{
        *net = (net_result){0};
        *n_secondary = 0;
        st->n_ifaces = 0;
        int r = wire_secondary(v, pod_network, dry_run, run_dir, secondary, n_secondary, err);
        if (r < 0)
                return r;
        bool wired_secondary = *n_secondary && pod_network;
        if (v->n_interfaces == 0) {
                if (wired_secondary && (r = net_drop_caps(err)) < 0)
                        return r;
                goto record;
        }
        const vmi_interface *nic = &v->interfaces[0]; /* libkvnet allows one pod interface */
        bool wire = pod_network && nic->binding != NET_BINDING_SLIRP;
        r = pod_network || dry_run ? 0 : local_mode_allows(nic, &wire, err);
        if (r < 0)
                return r;
        net_request req = v->net;
        req.run_dir = run_dir;
        req.hostname = v->hostname;
        /* networkInterfaceMultiqueue: one queue pair per vCPU on a virtio NIC, as KubeVirt */
        if (v->net_multiqueue && nic->model == NIC_VIRTIO)
                req.tap_queues = v->sockets * v->cores * v->threads;
        if (dry_run && nic->binding != NET_BINDING_SLIRP) /* the argv a Pod would get: this host untouched */
                net_render(&req, net);
        else if (wire && (r = net_setup(&req, net, err)) < 0)
                return r == -EINVAL ? -EIO : r; /* the host failed, not the manifest */
        record_interface(st, nic->name,
                         net->binding ? net->mac
                         : nic->mac   ? nic->mac
                                      : "",
                         net->binding ? net->status_ip : "");
        if (net->binding && net->status_ip6[0]) /* dual stack: KubeVirt lists both in ipAddresses */
                snprintf(st->ifaces[st->n_ifaces - 1].ip6, sizeof(st->ifaces[0].ip6), "%s", net->status_ip6);
        if (!wire && wired_secondary && (r = net_drop_caps(err)) < 0)
                return r;
record:
        for (size_t i = 0; i < *n_secondary; i++)
                record_interface(st, v->net.secondary[i].iface_name, secondary[i].mac,
                                 secondary[i].status_ip);
        return 0;
}

static void on_dhcp(loop_source *src, int fd, uint32_t events, void *data)
{
        net_result *net = data;
        bool was_bound = dhcp_server_bound(net->dhcp);
        kv_error err = {0};
        (void)src, (void)fd, (void)events;
        if (dhcp_server_handle(net->dhcp, &err) < 0)
                log_warning("dhcp: %s", err.msg);
        if (!was_bound && dhcp_server_bound(net->dhcp))
                log_info("dhcp: the guest took its lease %s", net->guest_ip);
}

int podnet_watch(loop *l, net_result *net, kv_error *err)
{
        if (!net || !net->dhcp)
                return 0;
        int r = loop_add(l, dhcp_server_fd(net->dhcp), EPOLLIN, on_dhcp, net, NULL);
        return r < 0 ? kv_error_errno(err, -r, "epoll add dhcp") : 0;
}

bool podnet_reaped(net_result *net, pid_t pid, int wstatus)
{
        if (!net || net->passt_pid <= 0 || pid != net->passt_pid)
                return false;
        char how[128];
        wait_status_describe(wstatus, how, sizeof(how));
        log_warning("passt (pid %d) %s: the guest has no network any more", (int)pid, how);
        net->passt_pid = 0;
        return true;
}

/* interfaces[].state down: each such NIC's link goes down before the guest runs, as libvirt's
 * <link state='down'/> does for KubeVirt (QMP set_link on the NIC's id, "ua-<name>"). */
static int set_link_down(qmp *q, const char *iface_name, kv_error *err)
{
        char id[NET_NAME_MAX + 4];
        snprintf(id, sizeof(id), "ua-%s", iface_name);
        cJSON *args = cJSON_CreateObject();
        if (!args || !cJSON_AddStringToObject(args, "name", id) || !cJSON_AddFalseToObject(args, "up")) {
                cJSON_Delete(args);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        int r = qmp_execute(q, "set_link", args, PODNET_QMP_TIMEOUT_MS, NULL, err);
        if (r < 0)
                return kv_error_wrap(err, "set_link %s down", id);
        log_info("interface %s: link down (state: down)", iface_name);
        return 0;
}

int podnet_apply_link_states(const vmi *v, size_t n_secondary, qmp *q, kv_error *err)
{
        if (v->n_interfaces && v->net.link_down)
                JF_TRY(set_link_down(q, v->interfaces[0].name, err));
        for (size_t i = 0; i < n_secondary && i < v->net.n_secondary; i++)
                if (v->net.secondary[i].link_down)
                        JF_TRY(set_link_down(q, v->net.secondary[i].iface_name, err));
        return 0;
}
