/* The control socket: JSON lines request/response over <run-dir>/control.sock (0600, SO_PEERCRED).
 * A request names a command from the table in control-commands.c; new commands (hot-plug, snapshot,
 * migration) are new rows, the protocol stays. See docs/launcher-control.md. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl-protocol.h" /* CTL_LINE_MAX, the verbs */
#include "supervisor.h"

#define CTL_OUT_MAX (1024 * 1024) /* a client that lets this much pile up is dropped */
#define CTL_PASSED_FDS 2          /* descriptors one request may bring (hotplug-attach: image, directory) */

struct ctl_conn {
        ctl_conn *next;
        supervisor *owner;
        uint64_t serial;
        int fd;
        loop_source *src;
        char *in;
        size_t in_len;
        char *out;
        size_t out_len, out_cap;
        bool console;                  /* switched to the raw serial byte stream */
        bool read_eof;                 /* peer half-closed: keep sending, stop reading */
        int passed_fd[CTL_PASSED_FDS]; /* descriptors the peer sent with SCM_RIGHTS (-1: none), for the next
                                        * request */
};

/* A request in flight. Handlers answer exactly once with ctl_reply_ok/ctl_reply_error, now or later
 * (e.g. from a QMP reply callback); the connection may be gone by then, the reply is then dropped. */
typedef struct ctl_request {
        supervisor *s;
        uint64_t conn_serial;
        cJSON *id;         /* echoed back when the client sent one */
        const cJSON *args; /* the request's "args" object or NULL; valid only during the handler call */
} ctl_request;

typedef int (*ctl_handler)(ctl_request *req);

/* The command table (control-commands.c): a handler for every verb of ctl-protocol.h, which names them. */
extern const ctl_handler ctl_handlers[CTL_VERB__MAX];

int control_start(supervisor *s);
void control_stop(supervisor *s);
/* result's members are merged into {"ok":true,...}; result may be NULL; consumed; frees req. */
void ctl_reply_ok(ctl_request *req, cJSON *result);
void ctl_reply_error(ctl_request *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends a QMP command and answers req from its reply (ok with {"return":...} or the QMP error). */
int ctl_forward_qmp(ctl_request *req, const char *command, cJSON *qmp_args);
/* Switches the requesting connection to the raw console stream (after the ok line). */
int ctl_attach_console(ctl_request *req);
ctl_conn *ctl_conn_find(supervisor *s, uint64_t serial);
/* Descriptor i (0, 1) that came (SCM_RIGHTS) with the request's bytes, now the caller's; -1 if none. Only
 * during the handler call: one not taken is closed after it. */
int ctl_take_fd(ctl_request *req, int i);
/* Queue bytes to a connection; drops the connection if it is hopelessly behind. */
void ctl_conn_send(supervisor *s, ctl_conn *c, const char *data, size_t len);
