/* virt-handler's end of a port-forward (docs/portforward.md): a connection to the guest made from inside the
 * launcher Pod's network namespace, as a container runtime does for `kubectl port-forward`. The launcher
 * itself stays off the network; virt-handler finds its namespace through the launcher's control socket. */
#pragma once

#include "error.h"
#include "portfwd.h"

/* Connects as rq says (its address and port, through its device when it names one) inside the network
 * namespace of the launcher of Pod rq->pod_uid, whose run directory is under pods_dir. The connected socket,
 * or negative errno with err saying why in Go's words ("dial tcp 10.0.2.2:80: connect: connection
 * refused"). */
int portforward_dial(const char *pods_dir, const pf_request *rq, kv_error *err);
