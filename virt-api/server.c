/* virt-api's HTTPS server: routing, the request body, and who may call what. Subresource requests must
 * come from the API server's proxy (a client certificate signed by the front-proxy CA, the user in
 * X-Remote-User): the API server has authenticated and authorized the user; nobody else reaches them. */
#include "server.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "api.h"
#include "eviction.h"
#include "console.h"
#include "portforward.h"
#include "hostport.h"
#include "log.h"
#include "macro.h"
#include "subresources.h"

#define BODY_MAX (4u << 20)
#define VAPI_THREADS 4

/* One loaded serving certificate. Generations are kept until the server stops: a handshake may still use
 * the one it was handed when a rotation swaps in the next (rotations are days apart). */
typedef struct tls_identity {
        gnutls_pcert_st pcert[4];
        unsigned n;
        gnutls_privkey_t key;
        struct tls_identity *older;
} tls_identity;

struct vapi_server {
        struct MHD_Daemon *d;
        kube_client *api;
        char *ca;            /* front-proxy CA PEM; MHD keeps a pointer to it */
        char *allowed_names; /* ",a,b," or NULL */
        const char *cert_path, *key_path;
        unsigned port;
        pthread_mutex_t api_lock; /* one kube_client: subresource requests take turns */
        console_opts console;
        const char *eviction_strategy; /* the cluster-wide default (eviction.h) */
        /* Upgraded (websocket) connections: MHD_stop_daemon() must come after they are all closed. */
        pthread_mutex_t ws_lock;
        pthread_cond_t ws_done;
        struct ws_session *sessions;
};

/* gnutls' certificate callback has no closure: the process serves one virt-api. */
static pthread_mutex_t identity_lock = PTHREAD_MUTEX_INITIALIZER;
static tls_identity *identity;

static int identity_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                             const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                             gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
        pthread_mutex_lock(&identity_lock);
        tls_identity *id = identity;
        pthread_mutex_unlock(&identity_lock);
        if (!id)
                return -1;
        *pcert = id->pcert;
        *pcert_length = id->n;
        *privkey = id->key;
        return 0;
}

static void identities_free(void)
{
        pthread_mutex_lock(&identity_lock);
        for (tls_identity *id = identity, *next; id; id = next) {
                next = id->older;
                for (unsigned i = 0; i < id->n; i++)
                        gnutls_pcert_deinit(&id->pcert[i]);
                gnutls_privkey_deinit(id->key);
                free(id);
        }
        identity = NULL;
        pthread_mutex_unlock(&identity_lock);
}

typedef struct request_body {
        char *data;
        size_t len;
        bool too_big;
} request_body;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, char *body)
{
        const char *text = body ? body : "";
        struct MHD_Response *r = MHD_create_response_from_buffer(
            strlen(text), (void *)text, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
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

/* Whether the certificate's CN is one of the allowed names (",a,b,"; NULL: any). */
static bool peer_name_allowed(const vapi_server *s, gnutls_session_t session)
{
        if (!s->allowed_names)
                return true;
        unsigned n = 0;
        const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
        gnutls_x509_crt_t crt;
        char cn[256], needle[260];
        size_t len = sizeof(cn);
        if (!chain || n == 0 || gnutls_x509_crt_init(&crt) < 0)
                return false;
        bool ok = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0 &&
                  gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) == 0;
        gnutls_x509_crt_deinit(crt);
        snprintf(needle, sizeof(needle), ",%s,", cn);
        return ok && strstr(s->allowed_names, needle);
}

/* Whether the peer presented a certificate the front-proxy CA signed, for an allowed name. */
static bool peer_verified(const vapi_server *s, struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session)
                return false;
        gnutls_session_t session = (gnutls_session_t)ci->tls_session;
        unsigned status = 0;
        unsigned n = 0;
        if (!gnutls_certificate_get_peers(session, &n) || n == 0)
                return false;
        return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0 &&
               peer_name_allowed(s, session);
}

/* What the webhooks read of the objects a VM names (admission.h), on the shared client. */
static int lookup_get(void *ctx, const char *resource, const char *ns, const char *name, cJSON **obj,
                      kv_error *err)
{
        static const kube_resource *const known[] = {&kube_vm,
                                                     &kube_pvc,
                                                     &kube_datavolume,
                                                     &kube_datasource,
                                                     &kube_controllerrevision,
                                                     &kube_vminstancetype,
                                                     &kube_vmclusterinstancetype,
                                                     &kube_vmpreference,
                                                     &kube_vmclusterpreference};
        vapi_server *s = ctx;
        for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
                if (strcmp(known[i]->plural, resource))
                        continue;
                pthread_mutex_lock(&s->api_lock);
                int r = kube_get(s->api, known[i], ns, name, obj, err);
                pthread_mutex_unlock(&s->api_lock);
                return r;
        }
        return kv_error_set(err, EINVAL, "%s: not a resource the webhooks read", resource);
}

static enum MHD_Result admission(vapi_server *s, struct MHD_Connection *conn, bool mutate,
                                 const request_body *b)
{
        char *out = NULL;
        kv_error err = {0};
        admission_lookup lookup = {.get = lookup_get, .ctx = s};
        const admission_lookup *lk = s->api ? &lookup : NULL;
        int r = mutate ? admission_mutate(b->data ?: "", b->len, lk, &out, &err)
                       : admission_validate(b->data ?: "", b->len, lk, &out, &err);
        if (r < 0)
                return reply_status(conn, 400, err.msg);
        return reply(conn, 200, out);
}

/* The pods/eviction webhook reads and marks the VMI: it takes its turn on the API client. */
static enum MHD_Result eviction(vapi_server *s, struct MHD_Connection *conn, const request_body *b)
{
        char *out = NULL;
        kv_error err = {0};
        pthread_mutex_lock(&s->api_lock);
        int r = eviction_review(s->api, s->eviction_strategy, b->data ?: "", b->len, &out, &err);
        pthread_mutex_unlock(&s->api_lock);
        if (r < 0)
                return reply_status(conn, 400, err.msg);
        return reply(conn, 200, out);
}

/* A websocket session after the 101: relayed in a thread of its own, MHD's threads stay free. */
typedef struct ws_session {
        vapi_server *s;
        struct ws_session *next;
        console_channel *ch;
        MHD_socket sock;
        struct MHD_UpgradeResponseHandle *urh;
        char *extra; /* bytes the client sent right behind its request */
        size_t extra_len;
        bool half_close; /* a port-forward: the client's close frame ends only its direction */
} ws_session;

static void *ws_session_run(void *arg)
{
        ws_session *w = arg;
        vapi_server *s = w->s;
        console_relay(w->ch, w->sock, w->extra, w->extra_len, w->half_close);
        MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
        free(w->extra);
        pthread_mutex_lock(&s->ws_lock);
        for (ws_session **p = &s->sessions; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        pthread_cond_broadcast(&s->ws_done);
        pthread_mutex_unlock(&s->ws_lock);
        free(w);
        return NULL;
}

/* Ends every websocket session (their relays see the client side close) and waits for them. */
static void ws_sessions_end(vapi_server *s)
{
        pthread_mutex_lock(&s->ws_lock);
        for (ws_session *w = s->sessions; w; w = w->next)
                shutdown(w->sock, SHUT_RDWR);
        while (s->sessions)
                pthread_cond_wait(&s->ws_done, &s->ws_lock);
        pthread_mutex_unlock(&s->ws_lock);
}

static void ws_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        ws_session *w = cls;
        vapi_server *s = w->s;
        pthread_t t;
        w->sock = sock;
        w->urh = urh;
        w->extra_len = extra_in_size;
        if (extra_in_size && !(w->extra = malloc(extra_in_size)))
                goto fail;
        if (extra_in_size) /* bytes the client sent after its upgrade request */
                memcpy(w->extra, extra_in, extra_in_size);
        pthread_mutex_lock(&s->ws_lock);
        w->next = s->sessions;
        s->sessions = w;
        if (pthread_create(&t, NULL, ws_session_run, w) == 0) {
                pthread_detach(t);
                pthread_mutex_unlock(&s->ws_lock);
                return;
        }
        s->sessions = w->next;
        pthread_mutex_unlock(&s->ws_lock);
fail:
        console_channel_free(w->ch);
        free(w->extra);
        free(w);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Sec-WebSocket-Accept for a client's key (RFC 6455 4.2.2). */
static bool ws_accept_key(const char *key, char out[static 29])
{
        char buf[128];
        unsigned char sha[20];
        int n = snprintf(buf, sizeof(buf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
        if (n < 0 || (size_t)n >= sizeof(buf) || gnutls_hash_fast(GNUTLS_DIG_SHA1, buf, (size_t)n, sha) < 0)
                return false;
        EVP_EncodeBlock((unsigned char *)out, sha, sizeof(sha));
        return true;
}

static bool header_has(struct MHD_Connection *conn, const char *name, const char *token)
{
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
        return v && strcasestr(v, token);
}

/* The 101 for a websocket subresource whose channel is open: its relay starts once MHD hands the socket over.
 */
static enum MHD_Result ws_switch(vapi_server *s, struct MHD_Connection *conn, console_channel *ch,
                                 const char *accept, bool half_close)
{
        ws_session *w = calloc(1, sizeof(*w));
        struct MHD_Response *resp = w ? MHD_create_response_for_upgrade(ws_upgraded, w) : NULL;
        if (!resp) {
                console_channel_free(ch);
                free(w);
                return MHD_NO;
        }
        *w = (ws_session){.s = s, .ch = ch, .half_close = half_close};
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
        MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
        if (header_has(conn, "Sec-WebSocket-Protocol", CONSOLE_SUBPROTOCOL))
                MHD_add_response_header(resp, "Sec-WebSocket-Protocol", CONSOLE_SUBPROTOCOL);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* The client's Sec-WebSocket-Key answered in accept, or false when the request is no websocket upgrade. */
static bool ws_upgrade_asked(struct MHD_Connection *conn, char accept[static 29])
{
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
        return header_has(conn, "Upgrade", "websocket") && header_has(conn, "Connection", "upgrade") && key &&
               ws_accept_key(key, accept);
}

/* A websocket subresource's plan (console.c, portforward.c), made while the API client is held. */
typedef int plan_fn(kube_client *api, const console_opts *o, const void *req, console_plan *plan,
                    subres_reply *r);

typedef struct console_req {
        const char *ns, *name, *kind;
} console_req;

static int console_planner(kube_client *api, const console_opts *o, const void *req, console_plan *plan,
                           subres_reply *r)
{
        const console_req *c = req;
        return console_plan_make(api, o, c->ns, c->name, c->kind, plan, r);
}

static int portforward_planner(kube_client *api, const console_opts *o, const void *req, console_plan *plan,
                               subres_reply *r)
{
        return portforward_plan_make(api, o, req, plan, r);
}

/* The upgrade asked for, the plan made with the API client held, the channel to virt-handler dialed without
 * it, then the 101 (or the refusal). A port-forward's relay passes the client's end on (half_close); its
 * channel failing is KubeVirt's "dialing VM" error, a console's its "Can't connect to websocket". */
static enum MHD_Result ws_subresource(vapi_server *s, struct MHD_Connection *conn, plan_fn *make,
                                      const void *req, bool pf, const char *what, const char *user)
{
        char accept[29], why[512];
        if (!ws_upgrade_asked(conn, accept))
                return reply_status(conn, 400, "websocket upgrade required");
        subres_reply r = {0};
        console_plan plan;
        console_channel *ch = NULL;
        pthread_mutex_lock(&s->api_lock);
        int rc = make(s->api, &s->console, req, &plan, &r);
        pthread_mutex_unlock(&s->api_lock);
        if (rc == 0 && (rc = console_dial(&s->console, &plan, &ch, why, sizeof(why))) < 0) {
                if (pf)
                        subres_fail(&r, 500, "Internal error occurred: dialing VM: %s", why);
                else
                        subres_fail(&r, 500, "Can't connect to websocket (%s%s)",
                                    rc == -2 ? "virt-handler: " : "", why);
        }
        log_info("%s by %s: %u%s%s", what, user, rc < 0 ? r.code : 101, rc < 0 ? " " : "",
                 rc < 0 ? r.body : "");
        if (rc < 0)
                return reply(conn, r.code, TAKE_PTR(r.body));
        return ws_switch(s, conn, ch, accept, pf);
}

/* GET .../virtualmachineinstances/NAME/console|vnc: KubeVirt's websocket subresources. */
static enum MHD_Result console_request(vapi_server *s, struct MHD_Connection *conn, const char *ns,
                                       const char *name, const char *kind, const char *user)
{
        console_req req = {ns, name, kind};
        char what[600];
        snprintf(what, sizeof(what), "%s of %s/%s", kind, ns, name);
        return ws_subresource(s, conn, console_planner, &req, false, what, user);
}

/* GET .../virtualmachineinstances|virtualmachines/NAME/portforward/PORT[/PROTOCOL]: one connection to the
 * guest's port (portforward.c). */
static enum MHD_Result portforward_request(vapi_server *s, struct MHD_Connection *conn, const pf_path *p,
                                           const char *user)
{
        char what[600];
        snprintf(what, sizeof(what), "portforward %u/%s of %s %s/%s", p->port, p->protocol,
                 p->vm ? "vm" : "vmi", p->ns, p->name);
        return ws_subresource(s, conn, portforward_planner, p, true, what, user);
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
                return admission(s, conn, false, b);
        if (!strcmp(url, ADMISSION_MUTATE_PATH))
                return admission(s, conn, true, b);
        if (!strcmp(url, EVICTION_VALIDATE_PATH))
                return eviction(s, conn, b);
        /* Everything else is the aggregated API: only the API server's proxy may call it. */
        const char *user = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Remote-User");
        if (!s->ca || !peer_verified(s, conn) || !user || !*user) {
                log_warning("refused %s %s: %s", method, url,
                            !s->ca            ? "no --client-ca configured"
                            : !user || !*user ? "no X-Remote-User"
                                              : "no client certificate from the front-proxy CA for an "
                                                "allowed name");
                return reply_status(conn, 401, "Unauthorized");
        }
        char ns[254], name[254], kind[8];
        pf_path pf;
        int is_pf = strcmp(method, "GET") ? 0 : portforward_path_parse(url, &pf);
        if (!strcmp(method, "GET") && console_path_parse(url, ns, name, kind))
                return console_request(s, conn, ns, name, kind, user);
        if (is_pf < 0)
                return reply_status(conn, 400, "port must be a number in 1-65535");
        if (is_pf > 0)
                return portforward_request(s, conn, &pf, user);
        subres_reply r;
        pthread_mutex_lock(&s->api_lock);
        subres_handle(s->api, method, url, b->data, b->len, &r);
        pthread_mutex_unlock(&s->api_lock);
        log_debug("%s %s by %s: %u", method, url, user, r.code);
        return reply(conn, r.code, TAKE_PTR(r.body));
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode t)
{
        request_body *b = *state;
        if (b) {
                free(b->data);
                free(b);
        }
        *state = NULL;
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
        free(s->ca);
        free(s->allowed_names);
        free(s);
}

int vapi_server_reload_cert(vapi_server *s, kv_error *err)
{
        _cleanup_free_ char *cert = NULL, *key = NULL;
        int r;
        if ((r = slurp("--tls-cert", s->cert_path, &cert, err)) < 0 ||
            (r = slurp("--tls-key", s->key_path, &key, err)) < 0)
                return r;
        tls_identity *id = calloc(1, sizeof(*id));
        if (!id)
                return kv_error_errno(err, ENOMEM, "certificate");
        gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)strlen(cert)},
                       kd = {(unsigned char *)key, (unsigned)strlen(key)};
        id->n = ARRAY_SIZE(id->pcert);
        if (gnutls_pcert_list_import_x509_raw(id->pcert, &id->n, &cd, GNUTLS_X509_FMT_PEM, 0) < 0) {
                free(id);
                return kv_error_set(err, EINVAL, "--tls-cert %s: not a certificate", s->cert_path);
        }
        if (gnutls_privkey_init(&id->key) < 0 ||
            gnutls_privkey_import_x509_raw(id->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
                for (unsigned i = 0; i < id->n; i++)
                        gnutls_pcert_deinit(&id->pcert[i]);
                gnutls_privkey_deinit(id->key);
                free(id);
                return kv_error_set(err, EINVAL, "--tls-key %s: not a private key", s->key_path);
        }
        pthread_mutex_lock(&identity_lock);
        id->older = identity;
        identity = id;
        pthread_mutex_unlock(&identity_lock);
        return 0;
}

/* ",a,b," from "a,b" so a name matches whole; NULL for no restriction. */
static char *names_fenced(const char *csv)
{
        if (!csv || !*csv)
                return NULL;
        char *out = malloc(strlen(csv) + 3);
        if (out)
                sprintf(out, ",%s,", csv);
        return out;
}

int vapi_server_start(const vapi_server_opts *o, kube_client *api, vapi_server **out, kv_error *err)
{
        struct sockaddr_in sa;
        int r = hostport_parse_ipv4("--listen", o->addr, &sa, err);
        if (r < 0)
                return r;
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
                return kv_error_set(err, ENOTSUP, "libmicrohttpd was built without TLS");
        vapi_server *s = calloc(1, sizeof(*s));
        if (!s)
                return kv_error_errno(err, ENOMEM, "server");
        s->api = api;
        s->cert_path = o->tls_cert;
        s->eviction_strategy = o->eviction_strategy;
        s->key_path = o->tls_key;
        s->console = (console_opts){.ca_file = o->console_ca,
                                    .cert_file = o->tls_cert,
                                    .key_file = o->tls_key,
                                    .handler_name = o->handler_name,
                                    .handler_ns = o->handler_ns,
                                    .handler_port = o->handler_port};
        if ((o->client_ca_pem && !(s->ca = strdup(o->client_ca_pem))) ||
            (o->allowed_names && *o->allowed_names && !(s->allowed_names = names_fenced(o->allowed_names)))) {
                server_free(s);
                return kv_error_errno(err, ENOMEM, "server");
        }
        if ((r = vapi_server_reload_cert(s, err)) < 0) {
                server_free(s);
                return r;
        }
        /* A few threads: while a subresource request waits on the API server, the API server calls the
         * webhooks of the object it writes (a VM's UPDATE), and they must be answered meanwhile. */
        pthread_mutex_init(&s->api_lock, NULL);
        pthread_mutex_init(&s->ws_lock, NULL);
        pthread_cond_init(&s->ws_done, NULL);
        s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS |
                                    MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE,
                                0, NULL, NULL, handle, s, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)VAPI_THREADS,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_HTTPS_CERT_CALLBACK, identity_retrieve,
                                MHD_OPTION_NOTIFY_COMPLETED, request_done, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)60,
                                /* last: without a CA the list ends here */
                                s->ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, s->ca, MHD_OPTION_END);
        if (!s->d) {
                identities_free();
                server_free(s);
                return kv_error_set(err, EADDRINUSE,
                                    "--listen %s: cannot serve (address in use, or a bad "
                                    "certificate or key)",
                                    o->addr);
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
        ws_sessions_end(s);
        MHD_stop_daemon(s->d);
        identities_free();
        server_free(s);
}
