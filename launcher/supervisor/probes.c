/* Readiness and liveness probes on the supervisor's loop (probes.h). */
#include "probes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "macro.h"

#define EXEC_POLL_MS 100

typedef struct prober {
        probes *owner;
        const vmi_probe *spec;
        const char *what; /* "readiness" / "liveness" */
        loop_timer period_timer, deadline_timer, exec_timer;
        int fd; /* tcpSocket/httpGet attempt in flight, else -1 */
        loop_source *src;
        bool sent; /* httpGet: the request is out */
        char resp[32];
        size_t resp_len;
        unsigned agent_handle;
        int64_t exec_pid;
        bool in_flight;
        int successes, failures;
        bool passing;
        char last_error[200];
} prober;

struct probes {
        probes_host h;
        prober readiness, liveness;
};

static void schedule(prober *pr, int64_t ms);

static void attempt_cleanup(prober *pr)
{
        probes *p = pr->owner;
        if (pr->src)
                loop_remove(p->h.loop, pr->src);
        pr->src = NULL;
        if (pr->fd >= 0)
                close(pr->fd);
        pr->fd = -1;
        if (pr->agent_handle)
                agent_cancel(p->h.agent, pr->agent_handle);
        pr->agent_handle = 0;
        loop_timer_disarm(p->h.loop, &pr->deadline_timer);
        loop_timer_disarm(p->h.loop, &pr->exec_timer);
        pr->in_flight = false;
}

/* One attempt's outcome: Kubernetes' counting (successThreshold in a row to pass, failureThreshold in a
 * row to fail), then the next attempt a period later. */
static void finish(prober *pr, bool ok, const char *why)
{
        probes *p = pr->owner;
        attempt_cleanup(pr);
        bool was = pr->passing;
        if (ok) {
                pr->failures = 0;
                if (++pr->successes >= pr->spec->success_threshold)
                        pr->passing = true;
        } else {
                pr->successes = 0;
                snprintf(pr->last_error, sizeof(pr->last_error), "%s probe failed: %s", pr->what, why);
                if (++pr->failures >= pr->spec->failure_threshold) {
                        pr->passing = false;
                        if (pr == &p->liveness) {
                                log_warning("%s", pr->last_error);
                                p->h.liveness_failed(p->h.ctx, pr->last_error);
                                return;
                        }
                }
        }
        if (pr == &p->readiness && was != pr->passing) {
                log_info("readiness probe: %s", pr->passing ? "passing" : pr->last_error);
                p->h.readiness_changed(p->h.ctx);
        }
        schedule(pr, pr->spec->period * 1000);
}

/* ---- tcpSocket and httpGet ------------------------------------------------------------------------ */

static const char *target_host(const prober *pr)
{
        return pr->spec->host ? pr->spec->host : pr->owner->h.guest_ip;
}

static int send_http_request(prober *pr)
{
        const vmi_probe *sp = pr->spec;
        char req[2048];
        const char *host = target_host(pr);
        bool v6 = strchr(host, ':') != NULL;
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: kube-probe/1.0\r\n"
                         "Accept: */*\r\nConnection: close\r\n",
                         sp->http_path ? sp->http_path : "/", v6 ? "[" : "", host, v6 ? "]" : "", sp->port);
        for (size_t i = 0; i < sp->n_http_headers && n > 0 && (size_t)n < sizeof(req); i++)
                n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", sp->http_headers[i]);
        if (n < 0 || (size_t)n + 3 > sizeof(req))
                return -1;
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
        return send(pr->fd, req, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n ? 0 : -1;
}

/* "HTTP/1.x NNN": Kubernetes counts 200-399 as success. 1: decided (*ok), 0: need more. */
static int http_status(prober *pr, bool *ok, int *code)
{
        char *sp = memchr(pr->resp, ' ', pr->resp_len);
        if (!sp || (size_t)(sp - pr->resp) + 4 > pr->resp_len)
                return pr->resp_len >= sizeof(pr->resp) - 1 ? (*ok = false, *code = 0, 1) : 0;
        *code = atoi(sp + 1);
        *ok = strncmp(pr->resp, "HTTP/", 5) == 0 && *code >= 200 && *code < 400;
        return 1;
}

static void on_socket(loop_source *src, int fd, uint32_t events, void *data)
{
        prober *pr = data;
        char why[128];
        if (!pr->sent) {
                int soerr = 0;
                socklen_t len = sizeof(soerr);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                        soerr = errno;
                if (soerr) {
                        snprintf(why, sizeof(why), "dial tcp %s:%d: %s", target_host(pr), pr->spec->port,
                                 strerror(soerr));
                        finish(pr, false, why);
                        return;
                }
                if (pr->spec->kind == PROBE_TCP) {
                        finish(pr, true, NULL);
                        return;
                }
                if (send_http_request(pr) < 0) {
                        finish(pr, false, "could not send the HTTP request");
                        return;
                }
                pr->sent = true;
                loop_modify(pr->owner->h.loop, pr->src, EPOLLIN);
                return;
        }
        ssize_t n = read(fd, pr->resp + pr->resp_len, sizeof(pr->resp) - 1 - pr->resp_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n > 0)
                pr->resp_len += (size_t)n;
        bool ok = false;
        int code = 0;
        if (http_status(pr, &ok, &code) || n <= 0) {
                if (code)
                        snprintf(why, sizeof(why), "HTTP probe failed with statuscode: %d", code);
                else
                        snprintf(why, sizeof(why), "no HTTP response from %s:%d", target_host(pr),
                                 pr->spec->port);
                finish(pr, ok, why);
        }
}

static void start_connect(prober *pr)
{
        const char *host = target_host(pr);
        struct sockaddr_storage ss = {0};
        socklen_t sl;
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (host && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET, in4->sin_port = htons((uint16_t)pr->spec->port), sl = sizeof(*in4);
        } else if (host && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6, in6->sin6_port = htons((uint16_t)pr->spec->port),
                sl = sizeof(*in6);
        } else {
                finish(pr, false, host ? "the host is not an IP address" : "the guest has no known address");
                return;
        }
        pr->sent = false, pr->resp_len = 0;
        pr->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        char why[160];
        if (pr->fd < 0 || (connect(pr->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)) {
                snprintf(why, sizeof(why), "dial tcp %s:%d: %s", host, pr->spec->port, strerror(errno));
                finish(pr, false, why);
                return;
        }
        if (loop_add(pr->owner->h.loop, pr->fd, EPOLLOUT, on_socket, pr, &pr->src) < 0)
                finish(pr, false, "epoll");
}

/* ---- exec and guestAgentPing through the guest agent ---------------------------------------------- */

static void on_exec_status(const cJSON *ret, const char *why, void *data);

static void on_exec_timer(loop_timer *t, void *data)
{
        prober *pr = data;
        cJSON *args = cJSON_CreateObject();
        cJSON_AddNumberToObject(args, "pid", (double)pr->exec_pid);
        pr->agent_handle = agent_command(pr->owner->h.agent, "guest-exec-status", args,
                                         (int)pr->spec->timeout * 1000, on_exec_status, pr);
}

static void on_exec_status(const cJSON *ret, const char *why, void *data)
{
        prober *pr = data;
        pr->agent_handle = 0;
        if (!ret) {
                finish(pr, false, why);
                return;
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ret, "exited"))) {
                loop_timer_arm(pr->owner->h.loop, &pr->exec_timer, EXEC_POLL_MS, on_exec_timer, pr);
                return;
        }
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(ret, "exitcode");
        char msg[96];
        snprintf(msg, sizeof(msg), "command exited with %d", cJSON_IsNumber(code) ? code->valueint : -1);
        finish(pr, cJSON_IsNumber(code) && code->valueint == 0, msg);
}

static void on_exec_started(const cJSON *ret, const char *why, void *data)
{
        prober *pr = data;
        pr->agent_handle = 0;
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(ret, "pid");
        if (!cJSON_IsNumber(pid)) {
                finish(pr, false, why ? why : "guest-exec returned no pid");
                return;
        }
        pr->exec_pid = json_clamp_i64(pid, 0, INT64_MAX, 0);
        on_exec_timer(&pr->exec_timer, pr);
}

static void on_ping(const cJSON *ret, const char *why, void *data)
{
        prober *pr = data;
        pr->agent_handle = 0;
        finish(pr, ret != NULL, why);
}

static void start_agent_probe(prober *pr)
{
        agent *a = pr->owner->h.agent;
        int ms = (int)pr->spec->timeout * 1000;
        if (pr->spec->kind == PROBE_AGENT_PING) {
                pr->agent_handle = agent_command(a, "guest-ping", NULL, ms, on_ping, pr);
                return;
        }
        cJSON *args = cJSON_CreateObject(), *argv = cJSON_CreateArray();
        cJSON_AddStringToObject(args, "path", pr->spec->exec_argv[0]);
        for (char **s = pr->spec->exec_argv + 1; *s; s++)
                cJSON_AddItemToArray(argv, cJSON_CreateString(*s));
        cJSON_AddItemToObject(args, "arg", argv);
        cJSON_AddBoolToObject(args, "capture-output", true);
        pr->agent_handle = agent_command(a, "guest-exec", args, ms, on_exec_started, pr);
}

/* ---- scheduling ------------------------------------------------------------------------------------ */

static void on_deadline(loop_timer *t, void *data)
{
        prober *pr = data;
        char why[64];
        snprintf(why, sizeof(why), "timed out after %" PRId64 "s", pr->spec->timeout);
        finish(pr, false, why);
}

static void on_period(loop_timer *t, void *data)
{
        prober *pr = data;
        if (pr->in_flight)
                return;
        pr->in_flight = true;
        loop_timer_arm(pr->owner->h.loop, &pr->deadline_timer, pr->spec->timeout * 1000, on_deadline, pr);
        if (pr->spec->kind == PROBE_TCP || pr->spec->kind == PROBE_HTTP)
                start_connect(pr);
        else
                start_agent_probe(pr);
}

static void schedule(prober *pr, int64_t ms)
{
        loop_timer_arm(pr->owner->h.loop, &pr->period_timer, ms, on_period, pr);
}

static void prober_init(probes *p, prober *pr, const vmi_probe *spec, const char *what)
{
        *pr = (prober){.owner = p, .spec = spec, .what = what, .fd = -1};
        snprintf(pr->last_error, sizeof(pr->last_error), "%s probe has not passed yet", what);
        if (spec->kind != PROBE_NONE)
                schedule(pr, spec->initial_delay * 1000);
}

int probes_start(const probes_host *h, probes **out)
{
        *out = NULL;
        if (h->v->readiness.kind == PROBE_NONE && h->v->liveness.kind == PROBE_NONE)
                return 0;
        probes *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->h = *h;
        prober_init(p, &p->readiness, &h->v->readiness, "readiness");
        prober_init(p, &p->liveness, &h->v->liveness, "liveness");
        *out = p;
        return 0;
}

static void prober_stop(prober *pr)
{
        if (!pr->owner)
                return;
        attempt_cleanup(pr);
        loop_timer_disarm(pr->owner->h.loop, &pr->period_timer);
}

void probes_free(probes *p)
{
        if (!p)
                return;
        prober_stop(&p->readiness);
        prober_stop(&p->liveness);
        free(p);
}

bool probes_ready(const probes *p, const char **why)
{
        if (!p || p->readiness.spec->kind == PROBE_NONE)
                return true;
        *why = p->readiness.last_error;
        return p->readiness.passing;
}

static bool any_network_probe(const vmi *v, bool without_host)
{
        const vmi_probe *all[] = {&v->readiness, &v->liveness};
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
                if ((all[i]->kind == PROBE_TCP || all[i]->kind == PROBE_HTTP) &&
                    !(without_host && all[i]->host))
                        return true;
        return false;
}

bool probes_need_guest_address(const vmi *v)
{
        return any_network_probe(v, true);
}

bool probes_need_socket(const vmi *v)
{
        return any_network_probe(v, false);
}
