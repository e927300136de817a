/* Metrics and health endpoints on libmicrohttpd (no hand-written HTTP parser). */
#include "metrics.h"
#include "controller.h"
#include "hostport.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

struct metrics_server {
        struct MHD_Daemon *d;
        controller *c;
        unsigned port;
};

typedef struct phase_count {
        const char *phase;
        unsigned long n;
} phase_count;

static void count_phase(const char *key, const char *tag, void *ud)
{
        phase_count *pc = ud;
        for (; pc->phase; pc++)
                if (!strcmp(pc->phase, tag)) {
                        pc->n++;
                        return;
                }
}

static void emit(FILE *f, const char *name, const char *help, const char *type)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *metrics_render(controller *c)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        static const char *const kinds[RK__MAX] = {
            "vmi", "vm", "vmim", "vmsnapshot", "vmrestore", "datavolume", "datasource", "vmirs", "vmpool"};
        emit(f, "kvlite_controller_reconciles_total", "Reconciles run, by object kind and result.",
             "counter");
        for (int k = 0; k < RK__MAX; k++)
                fprintf(f,
                        "kvlite_controller_reconciles_total{kind=\"%s\",result=\"success\"} %lu\n"
                        "kvlite_controller_reconciles_total{kind=\"%s\",result=\"error\"} %lu\n",
                        kinds[k], (unsigned long)c->reconciles[k][0], kinds[k],
                        (unsigned long)c->reconciles[k][1]);
        emit(f, "kvlite_controller_workqueue_depth", "Keys ready to be reconciled.", "gauge");
        fprintf(f, "kvlite_controller_workqueue_depth %zu\n", kube_workqueue_len(c->queue));
        emit(f, "kvlite_controller_workqueue_delayed", "Keys waiting for their retry backoff.", "gauge");
        fprintf(f, "kvlite_controller_workqueue_delayed %zu\n", kube_workqueue_delayed(c->queue));
        phase_count pc[] = {{"", 0},        {"Pending", 0},   {"Scheduling", 0}, {"Scheduled", 0},
                            {"Running", 0}, {"Succeeded", 0}, {"Failed", 0},     {NULL, 0}};
        kube_store_foreach(&c->vmis.store, count_phase, pc);
        emit(f, "kvlite_vmis", "VirtualMachineInstances in the cache, by phase.", "gauge");
        for (phase_count *p = pc; p->phase; p++)
                fprintf(f, "kvlite_vmis{phase=\"%s\"} %lu\n", *p->phase ? p->phase : "Unset", p->n);
        emit(f, "kvlite_controller_pods_created_total", "Launcher Pods created.", "counter");
        fprintf(f, "kvlite_controller_pods_created_total %lu\n", (unsigned long)c->pods_created);
        emit(f, "kvlite_controller_informer_relists_total", "Lists run by informers (initial and after 410).",
             "counter");
        kube_informer *infs[] = INFORMERS(c);
        for (size_t i = 0; i < 4; i++)
                fprintf(f, "kvlite_controller_informer_relists_total{resource=\"%s\"} %lu\n",
                        infs[i]->res->plural, infs[i]->lists);
        emit(f, "kvlite_controller_cache_objects", "Objects held by informer caches.", "gauge");
        for (size_t i = 0; i < 4; i++)
                fprintf(f, "kvlite_controller_cache_objects{resource=\"%s\"} %zu\n", infs[i]->res->plural,
                        kube_store_size(&infs[i]->store));
        fclose(f);
        return buf;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, bool owned)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(
            strlen(body), body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", owned ? "text/plain; version=0.0.4" : "text/plain");
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
        metrics_server *m = cls;
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", false);
        if (!strcmp(url, "/healthz") || !strcmp(url, "/livez"))
                return reply(conn, MHD_HTTP_OK, "ok\n", false);
        if (!strcmp(url, "/readyz"))
                return m->c->synced
                           ? reply(conn, MHD_HTTP_OK, "ok\n", false)
                           : reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "informers not synced\n", false);
        if (!strcmp(url, "/metrics")) {
                char *body = metrics_render(m->c);
                return body ? reply(conn, MHD_HTTP_OK, body, true)
                            : reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", false);
        }
        return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", false);
}

int metrics_server_start(controller *c, const char *addr, metrics_server **out, kv_error *err)
{
        struct sockaddr_in sa;
        int r = hostport_parse_ipv4("--metrics-addr", addr, &sa, err);
        if (r < 0)
                return r;
        metrics_server *m = calloc(1, sizeof(*m));
        if (!m)
                return kv_error_errno(err, ENOMEM, "metrics server");
        m->c = c;
        m->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, m,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                MHD_OPTION_END);
        if (!m->d) {
                free(m);
                return kv_error_set(err, EADDRINUSE, "--metrics-addr %s: cannot listen", addr);
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
        m->port = info ? info->port : ntohs(sa.sin_port);
        *out = m;
        return 0;
}

int metrics_server_fd(metrics_server *m)
{
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
        return info ? info->epoll_fd : -1;
}

long metrics_server_timeout(metrics_server *m)
{
        MHD_UNSIGNED_LONG_LONG t;
        return MHD_get_timeout(m->d, &t) == MHD_YES ? (long)t : -1;
}

void metrics_server_run(metrics_server *m)
{
        MHD_run(m->d);
}

unsigned metrics_server_port(metrics_server *m)
{
        return m->port;
}

void metrics_server_stop(metrics_server *m)
{
        if (!m)
                return;
        MHD_stop_daemon(m->d);
        free(m);
}
