/* A websocket client on virtctl's HTTP stack: libcurl opens the connection with the kubeconfig's TLS and
 * credentials (CURLOPT_CONNECT_ONLY), the upgrade request and RFC 6455 frames (common/wsframe.c) go over it.
 * Used for KubeVirt's console, vnc and portforward subresources (subprotocol plain.kubevirt.io). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"

typedef struct wsclient wsclient;

/* GET path on the API server as a websocket upgrade with the subprotocol. 0 and *out on 101. Otherwise
 * negative with *http_code (0: no HTTP answer) and err holding the Status message of the answer. */
int ws_open(kube_config *cfg, const char *path, const char *subprotocol, wsclient **out, long *http_code,
            kv_error *err);

/* Bytes both ways until one side ends: in_fd's bytes go out as binary frames, received data is written to
 * out_fd. escape: a byte that ends the session when read from in_fd (0: none). Returns 0 when the server
 * closed or escape was typed, 1 when in_fd reached EOF, negative on a transport error. */
int ws_pump(wsclient *w, int in_fd, int out_fd, unsigned char escape);

/* The end of this side's data: a close frame (1000). A port-forward's server passes it on to the guest as
 * the connection's FIN and keeps sending until the guest closes (ws_pump with in_fd -1 reads that). */
int ws_end_input(wsclient *w);

void ws_close(wsclient *w);
