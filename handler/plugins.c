/* gRPC C core plumbing for the device plugins: one completion queue, a call object per RPC with one tag per
 * outstanding batch, freed when its last batch completes. */
#include "plugins.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#define KUBELET_SOCKET "kubelet.sock"

typedef struct plugin plugin;
typedef struct dp_call dp_call;

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_SHUTDOWN };

typedef struct call_tag {
        enum tag_kind kind;
        dp_call *call;
        plugin *plugin;
} call_tag;

struct dp_call {
        plugin *p;
        grpc_call *call;
        grpc_call_details details;
        grpc_metadata_array md;
        grpc_byte_buffer *recv, *send;
        grpc_slice status_details;
        int cancelled;
        int outstanding; /* batches started and not yet completed */
        bool streaming;  /* a ListAndWatch that stays open */
        bool closed;     /* RECV_CLOSE_ON_SERVER completed */
        bool dirty;      /* the device list changed while a send was in flight */
        bool replied;    /* a unary call's reply is on its way */
        call_tag t_new, t_recv, t_send, t_close;
        dp_call *next; /* in the plugin's stream list */
};

struct plugin {
        const dp_kind *kind;
        char endpoint[64];
        char socket[PATH_MAX];
        grpc_server *server;
        bool advertised;
        bool registered;
        dp_call *streams;
        call_tag t_shutdown;
        plugins *ps;
};

struct plugins {
        plugins_config cfg;
        grpc_completion_queue *cq;
        plugin *p;
        size_t n;
        ino_t kubelet_ino; /* the kubelet.sock registered with; 0 = none */
        size_t calls;      /* live call objects */
        size_t shutting;   /* servers whose shutdown has not completed */
};

static grpc_byte_buffer *bytes_to_buffer(const uint8_t *b, size_t n)
{
        grpc_slice s = grpc_slice_from_copied_buffer((const char *)b, n);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        return bb;
}

/* The message as one slice (unref it). */
static grpc_slice buffer_to_slice(grpc_byte_buffer *bb)
{
        grpc_byte_buffer_reader rd;
        if (!bb || !grpc_byte_buffer_reader_init(&rd, bb))
                return grpc_empty_slice();
        grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
        return s;
}

static void call_request(plugin *p);

static int call_batch(dp_call *c, const grpc_op *ops, size_t n, call_tag *tag)
{
        grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
        if (e != GRPC_CALL_OK) {
                log_error("device plugin %s: grpc_call_start_batch: error %d", c->p->kind->name, (int)e);
                return -EIO;
        }
        c->outstanding++;
        return 0;
}

static void call_free(dp_call *c)
{
        if (c->call)
                grpc_call_unref(c->call);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        if (c->recv)
                grpc_byte_buffer_destroy(c->recv);
        if (c->send)
                grpc_byte_buffer_destroy(c->send);
        grpc_slice_unref(c->status_details);
        c->p->ps->calls--;
        free(c);
}

static void stream_unlink(dp_call *c)
{
        for (dp_call **pp = &c->p->streams; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        return;
                }
}

/* Sends the current device list on an open ListAndWatch. */
static void stream_send(dp_call *c)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        kv_error err = {0};
        plugin *p = c->p;
        c->dirty = false;
        if (dp_list_pack(p->kind, p->ps->cfg.count, p->advertised, &buf, &len, &err) < 0) {
                log_error("device plugin %s: %s", p->kind->name, err.msg);
                return;
        }
        c->send = bytes_to_buffer(buf, len);
        grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
        op.data.send_message.send_message = c->send;
        if (call_batch(c, &op, 1, &c->t_send) == 0)
                log_info("device plugin %s: ListAndWatch sends %u devices", p->kind->name,
                         p->advertised ? p->ps->cfg.count : 0);
}

/* Answers a unary RPC with a message (or a status when resp is NULL) and ends it. */
static void call_reply(dp_call *c, const uint8_t *resp, size_t len, grpc_status_code code, const char *msg)
{
        grpc_op ops[2];
        size_t n = 0;
        memset(ops, 0, sizeof(ops));
        c->replied = true;
        if (resp) {
                c->send = bytes_to_buffer(resp, len);
                ops[n].op = GRPC_OP_SEND_MESSAGE;
                ops[n++].data.send_message.send_message = c->send;
        }
        c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = code;
        ops[n].data.send_status_from_server.status_details = &c->status_details;
        ops[n].data.send_status_from_server.trailing_metadata_count = 0;
        n++;
        call_batch(c, ops, n, &c->t_send);
}

static void call_dispatch(dp_call *c)
{
        plugin *p = c->p;
        grpc_slice in = buffer_to_slice(c->recv);
        const uint8_t *req = GRPC_SLICE_START_PTR(in);
        size_t reqlen = GRPC_SLICE_LENGTH(in);
        _cleanup_free_ uint8_t *out = NULL;
        size_t outlen = 0;
        kv_error err = {0};
        int r = 0;
        const grpc_slice m = c->details.method;
        if (!grpc_slice_str_cmp(m, "/v1beta1.DevicePlugin/ListAndWatch")) {
                c->streaming = true;
                c->next = p->streams;
                p->streams = c;
                stream_send(c);
        } else if (!grpc_slice_str_cmp(m, "/v1beta1.DevicePlugin/Allocate")) {
                r = dp_allocate(p->kind, p->ps->cfg.count, req, reqlen, &out, &outlen, &err);
                if (r == 0)
                        log_info("device plugin %s: allocated", p->kind->name);
        } else if (!grpc_slice_str_cmp(m, "/v1beta1.DevicePlugin/GetDevicePluginOptions")) {
                r = dp_options_pack(&out, &outlen, &err);
        } else if (!grpc_slice_str_cmp(m, "/v1beta1.DevicePlugin/GetPreferredAllocation")) {
                r = dp_preferred(req, reqlen, &out, &outlen, &err);
        } else if (!grpc_slice_str_cmp(m, "/v1beta1.DevicePlugin/PreStartContainer")) {
                out = malloc(1); /* PreStartContainerResponse is empty */
                outlen = 0;
        } else {
                _cleanup_free_ char *name = grpc_slice_to_c_string(m);
                call_reply(c, NULL, 0, GRPC_STATUS_UNIMPLEMENTED, name);
        }
        grpc_slice_unref(in);
        if (c->streaming || c->replied)
                return;
        if (r < 0) {
                log_warning("device plugin %s: %s", p->kind->name, err.msg);
                call_reply(c, NULL, 0, r == -ENOENT ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_INVALID_ARGUMENT,
                           err.msg);
        } else {
                call_reply(c, out, outlen, GRPC_STATUS_OK, NULL);
        }
}

/* A new call arrived: read its request and watch for the client going away. */
static void call_start(dp_call *c)
{
        grpc_op ops[2] = {{.op = GRPC_OP_SEND_INITIAL_METADATA}, {.op = GRPC_OP_RECV_MESSAGE}};
        ops[1].data.recv_message.recv_message = &c->recv;
        grpc_op close = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
        close.data.recv_close_on_server.cancelled = &c->cancelled;
        call_batch(c, ops, 2, &c->t_recv);
        call_batch(c, &close, 1, &c->t_close);
}

static void call_request(plugin *p)
{
        dp_call *c = calloc(1, sizeof(*c));
        if (!c) {
                log_error("device plugin %s: out of memory", p->kind->name);
                return;
        }
        c->p = p;
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->md);
        c->status_details = grpc_empty_slice();
        c->t_new = (call_tag){TAG_NEW, c, p};
        c->t_recv = (call_tag){TAG_RECV, c, p};
        c->t_send = (call_tag){TAG_SEND, c, p};
        c->t_close = (call_tag){TAG_CLOSE, c, p};
        p->ps->calls++;
        if (grpc_server_request_call(p->server, &c->call, &c->details, &c->md, p->ps->cq, p->ps->cq,
                                     &c->t_new) != GRPC_CALL_OK) {
                call_free(c);
                return;
        }
        c->outstanding = 1;
}

static void on_event(plugins *ps, call_tag *t, bool ok)
{
        if (t->kind == TAG_SHUTDOWN) {
                ps->shutting--;
                return;
        }
        dp_call *c = t->call;
        c->outstanding--;
        switch (t->kind) {
        case TAG_NEW:
                if (!ok) /* the server shuts down */
                        break;
                call_request(c->p);
                call_start(c);
                break;
        case TAG_RECV:
                if (ok && !c->closed)
                        call_dispatch(c);
                break;
        case TAG_SEND:
                if (c->send) {
                        grpc_byte_buffer_destroy(c->send);
                        c->send = NULL;
                }
                if (ok && c->streaming && c->dirty && !c->closed)
                        stream_send(c);
                break;
        case TAG_CLOSE:
                c->closed = true;
                if (c->streaming) {
                        stream_unlink(c);
                        log_info("device plugin %s: ListAndWatch closed by the kubelet", c->p->kind->name);
                }
                break;
        case TAG_SHUTDOWN:
                break;
        }
        if (c->outstanding == 0)
                call_free(c);
}

void plugins_run(plugins *ps, int timeout_ms)
{
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
        for (;;) {
                grpc_event ev = grpc_completion_queue_next(ps->cq, deadline, NULL);
                if (ev.type != GRPC_OP_COMPLETE)
                        return;
                on_event(ps, ev.tag, ev.success);
                deadline = gpr_inf_past(GPR_CLOCK_MONOTONIC); /* drain what is ready, then return */
        }
}

void plugins_set_advertised(plugins *ps, const dp_kind *k, bool advertised)
{
        for (size_t i = 0; i < ps->n; i++) {
                plugin *p = &ps->p[i];
                if (p->kind != k || p->advertised == advertised)
                        continue;
                p->advertised = advertised;
                log_info("device plugin %s: %s", k->name, advertised ? "advertised" : "withdrawn");
                for (dp_call *c = p->streams; c; c = c->next) {
                        if (c->send)
                                c->dirty = true;
                        else
                                stream_send(c);
                }
        }
}

static int plugin_serve(plugins *ps, plugin *p, kv_error *err)
{
        snprintf(p->endpoint, sizeof(p->endpoint), "kubevirt-%s.sock", p->kind->name);
        snprintf(p->socket, sizeof(p->socket), "%s/%s", ps->cfg.dir, p->endpoint);
        char addr[PATH_MAX + 8];
        snprintf(addr, sizeof(addr), "unix:%s", p->socket);
        unlink(p->socket);
        p->server = grpc_server_create(NULL, NULL);
        grpc_server_register_completion_queue(p->server, ps->cq, NULL);
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        int port = grpc_server_add_http2_port(p->server, addr, creds);
        grpc_server_credentials_release(creds);
        if (!port) {
                grpc_server_destroy(p->server);
                p->server = NULL;
                return kv_error_set(err, EADDRNOTAVAIL, "device plugin %s: cannot listen on %s",
                                    p->kind->name, p->socket);
        }
        grpc_server_start(p->server);
        call_request(p);
        return 0;
}

plugins *plugins_start(const plugins_config *cfg, kv_error *err)
{
        plugins *ps = calloc(1, sizeof(*ps));
        if (!ps || !(ps->p = calloc(cfg->n_kinds ? cfg->n_kinds : 1, sizeof(*ps->p)))) {
                free(ps);
                kv_error_errno(err, ENOMEM, "device plugins");
                return NULL;
        }
        ps->cfg = *cfg;
        grpc_init();
        ps->cq = grpc_completion_queue_create_for_next(NULL);
        for (size_t i = 0; i < cfg->n_kinds; i++) {
                plugin *p = &ps->p[ps->n];
                p->kind = cfg->kinds[i];
                p->ps = ps;
                if (plugin_serve(ps, p, err) < 0) {
                        plugins_stop(ps);
                        return NULL;
                }
                ps->n++;
        }
        return ps;
}

/* One Registration.Register call to the kubelet, synchronous. */
static int register_one(plugins *ps, plugin *p, kv_error *err)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        if (dp_register_pack(p->kind, p->endpoint, &buf, &len, err) < 0)
                return -ENOMEM;
        char target[PATH_MAX + 32];
        snprintf(target, sizeof(target), "unix:%s/" KUBELET_SOCKET, ps->cfg.dir);
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        grpc_channel *ch = grpc_channel_create(target, creds, NULL);
        grpc_channel_credentials_release(creds);
        grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(5, GPR_TIMESPAN));
        grpc_call *call = grpc_channel_create_call(
            ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
            grpc_slice_from_static_string("/v1beta1.Registration/Register"), NULL, deadline, NULL);
        grpc_byte_buffer *send = bytes_to_buffer(buf, len), *recv = NULL;
        grpc_metadata_array initial, trailing;
        grpc_metadata_array_init(&initial);
        grpc_metadata_array_init(&trailing);
        grpc_status_code status = GRPC_STATUS_UNKNOWN;
        grpc_slice details = grpc_empty_slice();
        grpc_op ops[6] = {{.op = GRPC_OP_SEND_INITIAL_METADATA},  {.op = GRPC_OP_SEND_MESSAGE},
                          {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT}, {.op = GRPC_OP_RECV_INITIAL_METADATA},
                          {.op = GRPC_OP_RECV_MESSAGE},           {.op = GRPC_OP_RECV_STATUS_ON_CLIENT}};
        ops[1].data.send_message.send_message = send;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
        ops[4].data.recv_message.recv_message = &recv;
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        int r = 0;
        if (grpc_call_start_batch(call, ops, ARRAY_SIZE(ops), p, NULL) != GRPC_CALL_OK) {
                r = kv_error_set(err, EIO, "Register %s: cannot start the call", p->kind->name);
        } else {
                grpc_event ev = grpc_completion_queue_pluck(cq, p, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type != GRPC_OP_COMPLETE || !ev.success || status != GRPC_STATUS_OK) {
                        _cleanup_free_ char *why = grpc_slice_to_c_string(details);
                        r = kv_error_set(err, ECONNREFUSED, "Register %s with %s: status %d: %s",
                                         p->kind->name, target, (int)status, why);
                }
        }
        grpc_call_unref(call);
        grpc_byte_buffer_destroy(send);
        if (recv)
                grpc_byte_buffer_destroy(recv);
        grpc_metadata_array_destroy(&initial);
        grpc_metadata_array_destroy(&trailing);
        grpc_slice_unref(details);
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
        grpc_channel_destroy(ch);
        return r;
}

int plugins_register(plugins *ps)
{
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/" KUBELET_SOCKET, ps->cfg.dir);
        if (stat(path, &st) < 0)
                return (int)ps->n; /* no kubelet (yet) */
        if (st.st_ino != ps->kubelet_ino) {
                if (ps->kubelet_ino)
                        log_info("the kubelet's socket changed: registering again");
                ps->kubelet_ino = st.st_ino;
                for (size_t i = 0; i < ps->n; i++)
                        ps->p[i].registered = false;
        }
        int failed = 0;
        for (size_t i = 0; i < ps->n; i++) {
                plugin *p = &ps->p[i];
                kv_error err = {0};
                if (p->registered)
                        continue;
                if (register_one(ps, p, &err) < 0) {
                        log_warning("%s", err.msg);
                        failed++;
                        continue;
                }
                p->registered = true;
                log_info("device plugin %s: registered as " DP_RESOURCE_PREFIX "%s on %s", p->kind->name,
                         p->kind->name, p->endpoint);
        }
        return failed;
}

void plugins_stop(plugins *ps)
{
        if (!ps)
                return;
        for (size_t i = 0; i < ps->n; i++) {
                plugin *p = &ps->p[i];
                p->t_shutdown = (call_tag){TAG_SHUTDOWN, NULL, p};
                grpc_server_shutdown_and_notify(p->server, ps->cq, &p->t_shutdown);
                ps->shutting++;
                grpc_server_cancel_all_calls(p->server);
        }
        while (ps->shutting || ps->calls)
                plugins_run(ps, 1000);
        for (size_t i = 0; i < ps->n; i++) {
                grpc_server_destroy(ps->p[i].server);
                unlink(ps->p[i].socket);
        }
        grpc_completion_queue_shutdown(ps->cq);
        while (grpc_completion_queue_next(ps->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(ps->cq);
        grpc_shutdown();
        free(ps->p);
        free(ps);
}
