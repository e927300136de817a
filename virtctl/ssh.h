/* virtctl ssh: KubeVirt's `virtctl ssh` with the local client (--local-ssh=true, its only mode now): the
 * local ssh run with `virtctl port-forward --stdio=true` as its ProxyCommand (docs/portforward.md). */
#pragma once

/* What the ProxyCommand's virtctl must be given again: the global options of this one (NULL when not given).
 */
typedef struct ssh_globals {
        const char *kubeconfig, *context, *ns;
} ssh_globals;

/* argv after "ssh": replaces this process with the local ssh (its exit code is virtctl's), or returns
 * EXIT_FAIL with the error printed (EXIT_OK after --help). */
int ssh_main(int argc, char **argv, const ssh_globals *g);
