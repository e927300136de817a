/* podnet: the launcher's use of libkvnet. Decides per mode (--pod-network or local) whether the pod
 * interface is wired by net_setup, falls back to QEMU user networking, or is refused; then serves DHCP
 * from the epoll loop and reaps passt. See docs/networking.md "How the launcher calls it". */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "loop.h"
#include "net.h"
#include "qmp.h"
#include "status.h"
#include "vmi.h"

/* Wires v's pod interface (before the capability drop and seccomp) and records it in st->ifaces.
 * net->binding stays NET_BINDING_NONE when QEMU's user network is used instead. -EINVAL: the VMI asks
 * for what this mode cannot do (exit 2); other errors: the host could not be wired (exit 3). dry_run
 * outside a Pod: Multus interfaces are rendered (net_render_secondary), not refused. */
int podnet_setup(const vmi *v, bool pod_network, bool dry_run, const char *run_dir, net_result *net,
                 net_result *secondary, size_t *n_secondary, status *st, kv_error *err);
/* Serves DHCP from the supervisor's loop (no-op without a DHCP server). */
int podnet_watch(loop *l, net_result *net, kv_error *err);
/* A child the supervisor reaped: true when it was passt (logged; the guest has lost its network). */
bool podnet_reaped(net_result *net, pid_t pid, int wstatus);

#define PODNET_QMP_TIMEOUT_MS 5000
/* interfaces[].state down: set_link down on each such NIC (the pod one and the n_secondary wired Multus
 * ones) before the guest runs. */
int podnet_apply_link_states(const vmi *v, size_t n_secondary, qmp *q, kv_error *err);
