/* virt-api's HTTPS server (libmicrohttpd + GnuTLS): the subresource API behind the API server's
 * APIService proxy, the admission webhooks, /healthz. */
#pragma once

#include <stdbool.h>

#include "client.h"
#include "error.h"

typedef struct vapi_server vapi_server;

typedef struct vapi_server_opts {
        const char *addr; /* "HOST:PORT"; port 0 = any free port */
        const char
            *tls_cert; /* PEM files of the serving certificate (read again by vapi_server_reload_cert) */
        const char *tls_key;
        const char
            *client_ca_pem;        /* front-proxy CA (PEM text): subresource requests must present a client
                                      certificate it signed (the API server's proxy client) and X-Remote-User */
        const char *allowed_names; /* requestheader-allowed-names: the client certificate's CN must be one of
                                      these (comma-separated); NULL or "" = any CN the CA signed */
        /* The console channel to virt-handler (docs/console.md): virt-api's CA file (NULL: console and vnc
         * answer 503), the name on virt-handler's certificate, the namespace of its Pods, its port. */
        const char *console_ca;
        const char *handler_name;
        const char *handler_ns;
        unsigned handler_port;
        /* KubeVirt's spec.configuration.evictionStrategy: for VMIs that name none (NULL = None) */
        const char *eviction_strategy;
} vapi_server_opts;

/* Starts serving in libmicrohttpd's threads; subresource requests take turns on api, webhooks run beside
 * them. */
int vapi_server_start(const vapi_server_opts *opts, kube_client *api, vapi_server **out, kv_error *err);
unsigned vapi_server_port(const vapi_server *s);
/* Reads opts->tls_cert/tls_key again (after a rotation): new connections get the new certificate. */
int vapi_server_reload_cert(vapi_server *s, kv_error *err);
void vapi_server_stop(vapi_server *s);
