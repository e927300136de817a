/* The lite API client and informer transport over httpc; see lite.h. */
#include "lite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "macro.h"

int kube_lite_init(kube_lite *c, kube_config *cfg, kv_error *err)
{
        memset(c, 0, sizeof(*c));
        c->cfg = cfg;
        c->timeout_ms = 30000;
        httpc_conn_init(&c->conn, &c->srv);
        if (cfg->cert_file || cfg->cert_data || cfg->username)
                return kv_error_set(err, EINVAL,
                                    "the lite API client takes a bearer token only, not a client certificate "
                                    "or a user name");
        int r = httpc_server_init(&c->srv, cfg->server, cfg->ca_data, cfg->ca_data_len, cfg->ca_file,
                                  cfg->tls_server_name, cfg->insecure, err);
        return r < 0 ? kv_error_wrap(err, "API server") : 0;
}

void kube_lite_free(kube_lite *c)
{
        httpc_close(&c->conn);
        httpc_server_free(&c->srv);
}

/* "Accept, Authorization[, Content-Type]" header lines, malloc'd. */
static int headers(kube_lite *c, const char *content_type, char **out, kv_error *err)
{
        _cleanup_free_ char *token = NULL;
        int r = kube_config_bearer(c->cfg, &token, err);
        if (r < 0)
                return r;
        if (asprintf(out, "Accept: application/json\r\n%s%s%s%s%s", token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "", content_type ? "Content-Type: " : "",
                     content_type ? content_type : "") < 0) {
                *out = NULL;
                return kv_error_errno(err, ENOMEM, "request headers");
        }
        if (content_type) { /* the CRLF after it */
                char *n = realloc(*out, strlen(*out) + 3);
                if (!n)
                        return kv_error_errno(err, ENOMEM, "request headers");
                *out = strcat(n, "\r\n");
        }
        return 0;
}

typedef struct body {
        char *data;
        size_t len, cap;
} body;

#define BODY_MAX (64u << 20)

static int body_add(const char *data, size_t n, void *ud)
{
        body *b = ud;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *d = cap <= BODY_MAX ? realloc(b->data, cap) : NULL;
                if (!d)
                        return -1;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, data, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

static int request(kube_lite *c, const char *method, const char *path, const char *content_type,
                   const char *body_text, long timeout_ms, cJSON **out, kv_error *err)
{
        char what[512];
        snprintf(what, sizeof(what), "%s %s", method, path);
        if (out)
                *out = NULL;
        _cleanup_free_ char *h = NULL;
        int r = headers(c, content_type, &h, err);
        if (r < 0)
                return kv_error_wrap(err, "%s", what);
        body b = {0};
        c->requests++;
        r = httpc_exchange(&c->conn, method, path, h, body_text, body_add, &b,
                           (int64_t)kv_now_ms() + timeout_ms, err);
        if (r < 0) {
                free(b.data);
                return kv_error_wrap(err, "%s", what);
        }
        long http = c->conn.resp.status;
        cJSON *doc = b.len ? cJSON_ParseWithLength(b.data, b.len) : NULL;
        free(b.data);
        if (http < 200 || http >= 300) {
                r = kube_status_error(doc, http, what, err);
                cJSON_Delete(doc);
                return r;
        }
        if (out && b.len && !doc)
                return kv_error_set(err, EPROTO, "%s: reply is not JSON", what);
        if (out)
                *out = doc;
        else
                cJSON_Delete(doc);
        return 0;
}

int kube_lite_request(kube_lite *c, const char *method, const char *path, const char *content_type,
                      const char *body_text, cJSON **out, kv_error *err)
{
        return request(c, method, path, content_type, body_text, c->timeout_ms, out, err);
}

int kube_lite_merge_patch(kube_lite *c, const kube_resource *r, const char *ns, const char *name,
                          const cJSON *patch, cJSON **out, kv_error *err)
{
        _cleanup_free_ char *path = kube_path(r, ns, name, NULL), *text = cJSON_PrintUnformatted(patch);
        if (!path || !text)
                return kv_error_errno(err, ENOMEM, "patch %s %s", r->plural, name);
        return kube_lite_request(c, "PATCH", path, "application/merge-patch+json", text, out, err);
}

/* ---- the informer's transport ------------------------------------------------------------------- */

typedef struct lite_watch {
        kube_lite *c;
        httpc_conn conn; /* the watch's own connection, one per watch */
        long timeout_ms; /* of a list page, and to set up the watch */
} lite_watch;

static int lite_list(kube_informer *inf, const char *path, cJSON **out, kv_error *err)
{
        lite_watch *w = inf->conn;
        return request(w->c, "GET", path, NULL, NULL, w->timeout_ms, out, err);
}

static int watch_body(const char *data, size_t n, void *ud)
{
        kube_informer *inf = ud;
        lite_watch *w = inf->conn;
        return kube_informer_watch_data(inf, w->conn.resp.status, data, n) == n ? 0 : -1;
}

static int lite_watch_start(kube_informer *inf, const char *path, kv_error *err)
{
        lite_watch *w = inf->conn;
        _cleanup_free_ char *h = NULL;
        int r = headers(w->c, NULL, &h, err);
        if (r == 0)
                r = httpc_send(&w->conn, "GET", path, h, NULL, watch_body, inf,
                               (int64_t)kv_now_ms() + w->timeout_ms, err);
        if (r < 0)
                return kv_error_wrap(err, "watch %s", inf->res->plural);
        w->c->requests++;
        inf->watch = w;
        return 0;
}

static void lite_watch_stop(kube_informer *inf)
{
        lite_watch *w = inf->conn;
        httpc_close(&w->conn);
        inf->watch = NULL;
}

static void lite_free(kube_informer *inf)
{
        free(inf->conn);
        inf->conn = NULL;
}

static const kube_informer_transport lite_transport = {
    .list = lite_list, .watch_start = lite_watch_start, .watch_stop = lite_watch_stop, .free = lite_free};

int kube_lite_informer_init(kube_informer *inf, kube_lite *c, const kube_resource *res, const char *ns,
                            const char *label_selector, const kube_store_ops *ops, kube_informer_fn fn,
                            void *ud)
{
        int r = kube_informer_setup(inf, &lite_transport, res, ns, label_selector, ops, fn, ud);
        lite_watch *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->c = c;
        w->timeout_ms = c->timeout_ms;
        httpc_conn_init(&w->conn, &c->srv);
        inf->conn = w;
        return r;
}

void kube_lite_informer_set_timeout(kube_informer *inf, long timeout_ms)
{
        lite_watch *w = inf->conn;
        w->timeout_ms = timeout_ms;
}

int kube_lite_informer_fd(const kube_informer *inf)
{
        const lite_watch *w = inf->watch;
        return w ? w->conn.fd : -1;
}

void kube_lite_informer_io(kube_informer *inf, uint64_t now_ms)
{
        lite_watch *w = inf->watch;
        if (!w)
                return;
        kv_error err = {0};
        int r = httpc_pump(&w->conn, &err);
        if (r == 0)
                return;
        long http = w->conn.resp.status;
        lite_watch_stop(inf);
        kube_informer_watch_done(inf, http, r < 0 ? err.msg : NULL, now_ms);
}
