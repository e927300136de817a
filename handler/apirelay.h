/* The API-server relay (--api-relay-dir): a unix socket on the node that launcher Pods without a routable
 * address of their own (bridge or macvtap binding on the pod network: the guest took the Pod's IP) dial to
 * reach the API server. Bytes are relayed both ways to the API server's TCP address, never looked into:
 * TLS stays end to end between the reporter and the API server. */
#pragma once

#include "error.h"

#define API_RELAY_SOCKET "apiserver.sock"
#define API_RELAY_MAX_CONNS 256
#define API_RELAY_BUF (32 * 1024) /* bytes held per direction of a connection */

/* Splits a kubeconfig server URL ("https://host[:port][/]", "http://...", IPv6 in brackets) into the host
 * (malloc'd, without brackets) and the port (default 443, or 80 for http). */
int api_relay_server_address(const char *url, char **host, char port[8], kv_error *err);

/* Creates dir (0755) if missing, listens on dir/apiserver.sock (0666) and relays each connection to the
 * server of url from a thread of its own for the rest of the process. */
int api_relay_start(const char *dir, const char *url, kv_error *err);
/* Removes the socket (the process is stopping; relayed connections end with it). */
void api_relay_stop(void);
