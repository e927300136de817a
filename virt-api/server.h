/* virt-api's HTTPS server (libmicrohttpd + GnuTLS): the subresource API behind the API server's
 * APIService proxy, the admission webhooks, /healthz. */
#pragma once

#include <stdbool.h>

#include "client.h"
#include "error.h"

typedef struct vapi_server vapi_server;

typedef struct vapi_server_opts {
        const char *addr;      /* "HOST:PORT"; port 0 = any free port */
        const char *tls_cert;  /* PEM files of the serving certificate */
        const char *tls_key;
        const char *client_ca; /* front-proxy CA: subresource requests must present a client certificate
                                  it signed (the API server's proxy client) and X-Remote-User */
} vapi_server_opts;

/* Starts serving in a thread of libmicrohttpd's; requests use api (one at a time). */
int vapi_server_start(const vapi_server_opts *opts, kube_client *api, vapi_server **out, kv_error *err);
unsigned vapi_server_port(const vapi_server *s);
void vapi_server_stop(vapi_server *s);
