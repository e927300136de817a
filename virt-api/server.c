/* virt-api's HTTPS server: routing, the request body, and who may call what. Subresource requests must
 * come from the API server's proxy (a client certificate signed by the front-proxy CA, the user in
 * X-Remote-User): the API server has authenticated and authorized the user; nobody else reaches them. */
#include "server.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "log.h"
#include "macro.h"
#include "subresources.h"

#define BODY_MAX (4u << 20)

struct vapi_server {
        struct MHD_Daemon *d;
        kube_client *api;
        char *cert, *key, *ca; /* PEM text; MHD keeps pointers to them */
        unsigned port;
};

typedef struct request_body {
        char *data;
        size_t len;
        bool too_big;
} request_body;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, char *body)
{
        const char *text = body ? body : "";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), (void *)text, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!r) {
                free(body);
                return MHD_NO;
        }
        if (body)
                MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_response(conn, code, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result reply_status(struct MHD_Connection *conn, unsigned code, const char *msg)
{
        return reply(conn, code, subres_status_json(code, msg));
}

/* Whether the peer presented a certificate the front-proxy CA signed. */
static bool peer_verified(struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session)
                return false;
        gnutls_session_t session = (gnutls_session_t)ci->tls_session;
        unsigned status = 0;
        unsigned n = 0;
        if (!gnutls_certificate_get_peers(session, &n) || n == 0)
                return false;
        return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

static enum MHD_Result admission(struct MHD_Connection *conn,
                                 int (*fn)(const char *, size_t, char **, kv_error *), const request_body *b)
{
        char *out = NULL;
        kv_error err = {0};
        if (fn(b->data ?: "", b->len, &out, &err) < 0)
                return reply_status(conn, 400, err.msg);
        return reply(conn, 200, out);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
        vapi_server *s = cls;
        request_body *b = *state;
        if (!b) { /* first call: headers only */
                if (!(b = calloc(1, sizeof(*b))))
                        return MHD_NO;
                *state = b;
                return MHD_YES;
        }
        if (*upload_size) {
                if (b->len + *upload_size > BODY_MAX) {
                        b->too_big = true;
                } else {
                        char *n = realloc(b->data, b->len + *upload_size + 1);
                        if (!n)
                                return MHD_NO;
                        memcpy(n + b->len, upload, *upload_size);
                        b->data = n;
                        b->len += *upload_size;
                        b->data[b->len] = 0;
                }
                *upload_size = 0;
                return MHD_YES;
        }
        if (b->too_big)
                return reply_status(conn, 413, "request body too large");
        if (!strcmp(url, "/healthz"))
                return reply(conn, 200, strdup("{\"status\":\"ok\"}"));
        if (!strcmp(url, ADMISSION_VALIDATE_PATH))
                return admission(conn, admission_validate, b);
        if (!strcmp(url, ADMISSION_MUTATE_PATH))
                return admission(conn, admission_mutate, b);
        /* Everything else is the aggregated API: only the API server's proxy may call it. */
        const char *user = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Remote-User");
        if (!s->ca || !peer_verified(conn) || !user || !*user) {
                log_warning("refused %s %s: %s", method, url,
                            !s->ca ? "no --client-ca configured"
                                   : !user || !*user ? "no X-Remote-User" : "no client certificate from the front-proxy CA");
                return reply_status(conn, 401, "Unauthorized");
        }
        subres_reply r;
        subres_handle(s->api, method, url, b->data, b->len, &r);
        log_debug("%s %s by %s: %u", method, url, user, r.code);
        return reply(conn, r.code, TAKE_PTR(r.body));
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode t)
{
        request_body *b = *state;
        if (b) {
                free(b->data);
                free(b);
        }
        *state = NULL;
}

static int parse_addr(const char *addr, struct sockaddr_in *sa, kv_error *err)
{
        const char *colon = strrchr(addr, ':');
        char host[64] = "0.0.0.0";
        char *end;
        if (!colon)
                return kv_error_set(err, EINVAL, "--listen \"%s\": expected host:port", addr);
        if (colon > addr)
                snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        unsigned long port = strtoul(colon + 1, &end, 10);
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (!colon[1] || *end || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return kv_error_set(err, EINVAL, "--listen \"%s\": expected IPv4-host:port", addr);
        return 0;
}

static int slurp(const char *flag, const char *path, char **out, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return kv_error_errno(err, errno, "%s %s", flag, path);
        char *buf = NULL;
        size_t cap = 0, len = 0, n;
        char chunk[4096];
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                if (len + n + 1 > cap) {
                        cap = (len + n + 1) * 2;
                        char *nb = realloc(buf, cap);
                        if (!nb) {
                                free(buf);
                                return kv_error_errno(err, ENOMEM, "%s %s", flag, path);
                        }
                        buf = nb;
                }
                memcpy(buf + len, chunk, n);
                len += n;
        }
        if (!buf || !strstr(buf, "-----BEGIN")) {
                free(buf);
                return kv_error_set(err, EINVAL, "%s %s: not a PEM file", flag, path);
        }
        buf[len] = 0;
        *out = buf;
        return 0;
}

static void server_free(vapi_server *s)
{
        free(s->cert);
        free(s->key);
        free(s->ca);
        free(s);
}

int vapi_server_start(const vapi_server_opts *o, kube_client *api, vapi_server **out, kv_error *err)
{
        struct sockaddr_in sa;
        int r = parse_addr(o->addr, &sa, err);
        if (r < 0)
                return r;
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
                return kv_error_set(err, ENOTSUP, "libmicrohttpd was built without TLS");
        vapi_server *s = calloc(1, sizeof(*s));
        if (!s)
                return kv_error_errno(err, ENOMEM, "server");
        s->api = api;
        if ((r = slurp("--tls-cert", o->tls_cert, &s->cert, err)) < 0 ||
            (r = slurp("--tls-key", o->tls_key, &s->key, err)) < 0 ||
            (o->client_ca && (r = slurp("--client-ca", o->client_ca, &s->ca, err)) < 0)) {
                server_free(s);
                return r;
        }
        /* One polling thread: requests are served one at a time, so one kube_client serves them all. */
        s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG,
                                0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_HTTPS_MEM_CERT,
                                s->cert, MHD_OPTION_HTTPS_MEM_KEY, s->key, MHD_OPTION_NOTIFY_COMPLETED,
                                request_done, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                /* last: without a CA the list ends here */
                                s->ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, s->ca, MHD_OPTION_END);
        if (!s->d) {
                server_free(s);
                return kv_error_set(err, EADDRINUSE, "--listen %s: cannot serve (address in use, or a bad "
                                                     "certificate or key)", o->addr);
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : ntohs(sa.sin_port);
        *out = s;
        return 0;
}

unsigned vapi_server_port(const vapi_server *s)
{
        return s->port;
}

void vapi_server_stop(vapi_server *s)
{
        if (!s)
                return;
        MHD_stop_daemon(s->d);
        server_free(s);
}
