/* /metrics (Prometheus text), /healthz and /readyz, served by libmicrohttpd in external-select mode so the
 * controller's one loop thread drives it through a single epoll fd. */
#pragma once

#include <stdbool.h>

#include "error.h"

typedef struct controller controller;
typedef struct metrics_server metrics_server;

/* addr "host:port" or ":port"; port 0 picks a free port (see metrics_server_port). */
int metrics_server_start(controller *c, const char *addr, metrics_server **out, kv_error *err);
int metrics_server_fd(metrics_server *m);       /* poll it for input, then call metrics_server_run */
long metrics_server_timeout(metrics_server *m); /* ms, or -1 */
void metrics_server_run(metrics_server *m);
unsigned metrics_server_port(metrics_server *m);
void metrics_server_stop(metrics_server *m);
/* The Prometheus text the server returns (malloc'd); unit-testable without HTTP. */
char *metrics_render(controller *c);
