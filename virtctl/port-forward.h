/* virtctl port-forward (KubeVirt's pkg/virtctl/portforward): local TCP ports, or stdin and stdout, forwarded
 * to a VMI's ports through the portforward subresource, one websocket per connection (docs/portforward.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "client.h"
#include "config.h"
#include "port-forward-args.h"

#define PF_MAX_PORTS 32

typedef struct pf_cmd {
        bool stdio;          /* --stdio: the one port's connection on stdin and stdout */
        const char *address; /* --address, where the local ports listen (127.0.0.1) */
        pf_target target;
        pf_port ports[PF_MAX_PORTS];
        size_t n_ports;
} pf_cmd;

/* Flags and arguments after "port-forward", refused before any request as KubeVirt's command does: 0; -1
 * when --help printed the usage; EXIT_FAIL with the error printed. */
int portforward_parse(int argc, char **argv, pf_cmd *out);
/* Forwards until the --stdio connection ends or SIGINT stops the listeners: EXIT_OK, or EXIT_FAIL with the
 * error printed. ns: the namespace when the target names none. */
int portforward_run(kube_config *cfg, kube_client *api, const char *ns, const pf_cmd *c);
