/* spec.readinessProbe and spec.livenessProbe: KubeVirt's Probe (a Kubernetes probe whose handler is one of
 * tcpSocket, httpGet, exec or guestAgentPing), with Kubernetes' defaults and validation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"
#include "macro.h"
#include "vmi-parse.h"

/* A port is a number; Kubernetes also allows a container port's name, which a VMI has no container for. */
static int parse_port(const cJSON *handler, const char *path, int *port, kv_error *err)
{
        char p[JPATH_MAX];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(handler, "port");
        jpath_key(p, path, "port");
        if (!v)
                return jf_error(err, p, "is required");
        if (cJSON_IsString(v)) {
                char *end = NULL;
                long n = strtol(v->valuestring, &end, 10);
                if (!*v->valuestring || *end || n < 1 || n > 65535)
                        return jf_error(err, p,
                                        "\"%.64s\": named ports are not supported (a VMI has no container "
                                        "ports); give the number",
                                        v->valuestring);
                *port = (int)n;
                return 0;
        }
        int64_t n = 0;
        JF_TRY(jf_int(handler, path, "port", 1, 65535, &n, NULL, err));
        *port = (int)n;
        return 0;
}

static int parse_host(vmi_probe *pr, const cJSON *handler, const char *path, kv_error *err)
{
        JF_TRY(jf_string(handler, path, "host", false, &pr->host, err));
        char p[JPATH_MAX];
        if (pr->host && (!*pr->host || jf_has_control_chars(pr->host) || strchr(pr->host, ' ')))
                return jf_error(err, jpath_key(p, path, "host"), "is not a host name or address");
        return 0;
}

static int parse_headers(vmi_probe *pr, const cJSON *get, const char *path, kv_error *err)
{
        static const char *const keys[] = {"name", "value", NULL};
        const cJSON *hs = NULL, *h;
        char hp[JPATH_MAX], ip[JPATH_MAX];
        JF_TRY(jf_array(get, path, "httpHeaders", &hs, err));
        jpath_key(hp, path, "httpHeaders");
        size_t i = 0;
        cJSON_ArrayForEach(h, hs)
        {
                jpath_index(ip, hp, i++);
                if (!cJSON_IsObject(h))
                        return jf_error(err, ip, "expected an object");
                JF_TRY(jf_check_keys(h, ip, keys, NULL, err));
                _cleanup_free_ char *name = NULL, *value = NULL;
                JF_TRY(jf_string(h, ip, "name", true, &name, err));
                JF_TRY(jf_string(h, ip, "value", true, &value, err));
                if (!*name || strpbrk(name, ": \t") || jf_has_control_chars(name) ||
                    jf_has_control_chars(value))
                        return jf_error(err, ip, "is not a valid HTTP header");
                char **line = vmi_grow((void **)&pr->http_headers, &pr->n_http_headers, sizeof(char *));
                if (!line || asprintf(line, "%s: %s", name, value) < 0)
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int parse_http(vmi_probe *pr, const cJSON *get, const char *path, kv_error *err)
{
        static const char *const keys[] = {"port", "host", "path", "scheme", "httpHeaders", NULL};
        static const char *const schemes[] = {"HTTP", "HTTPS", NULL};
        char p[JPATH_MAX];
        JF_TRY(jf_check_keys(get, path, keys, NULL, err));
        JF_TRY(parse_port(get, path, &pr->port, err));
        JF_TRY(parse_host(pr, get, path, err));
        JF_TRY(jf_string(get, path, "path", false, &pr->http_path, err));
        if (pr->http_path && (jf_has_control_chars(pr->http_path) || strchr(pr->http_path, ' ')))
                return jf_error(err, jpath_key(p, path, "path"), "is not a valid HTTP path");
        int scheme = 0;
        JF_TRY(jf_enum(get, path, "scheme", schemes, &scheme, err));
        if (scheme == 1)
                return jf_error(err, jpath_key(p, path, "scheme"),
                                "HTTPS is not supported (the launcher probes over plain HTTP)");
        return parse_headers(pr, get, path, err);
}

static int parse_exec(vmi_probe *pr, const cJSON *ex, const char *path, kv_error *err)
{
        static const char *const keys[] = {"command", NULL};
        const cJSON *cmd = NULL, *c;
        char p[JPATH_MAX], ip[JPATH_MAX];
        JF_TRY(jf_check_keys(ex, path, keys, NULL, err));
        JF_TRY(jf_array(ex, path, "command", &cmd, err));
        jpath_key(p, path, "command");
        int n = cJSON_GetArraySize(cmd);
        if (n < 1)
                return jf_error(err, p, "must name the command to run in the guest");
        if (!(pr->exec_argv = calloc((size_t)n + 1, sizeof(char *))))
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t i = 0;
        cJSON_ArrayForEach(c, cmd)
        {
                if (!cJSON_IsString(c))
                        return jf_error(err, jpath_index(ip, p, i), "expected a string");
                if (!(pr->exec_argv[i++] = strdup(c->valuestring)))
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int parse_handler(vmi_probe *pr, const cJSON *probe, const char *path, kv_error *err)
{
        static const char *const handlers[] = {[PROBE_TCP] = "tcpSocket",
                                               [PROBE_HTTP] = "httpGet",
                                               [PROBE_EXEC] = "exec",
                                               [PROBE_AGENT_PING] = "guestAgentPing"};
        char p[JPATH_MAX];
        for (int k = PROBE_TCP; k <= PROBE_AGENT_PING; k++) {
                const cJSON *h = NULL;
                JF_TRY(jf_object(probe, path, handlers[k], &h, err));
                if (!h)
                        continue;
                if (pr->kind != PROBE_NONE)
                        return jf_error(err, path, "may not specify more than 1 handler type");
                pr->kind = (probe_kind)k;
                jpath_key(p, path, handlers[k]);
                if (k == PROBE_TCP) {
                        static const char *const keys[] = {"port", "host", NULL};
                        JF_TRY(jf_check_keys(h, p, keys, NULL, err));
                        JF_TRY(parse_port(h, p, &pr->port, err));
                        JF_TRY(parse_host(pr, h, p, err));
                } else if (k == PROBE_HTTP) {
                        JF_TRY(parse_http(pr, h, p, err));
                } else if (k == PROBE_EXEC) {
                        JF_TRY(parse_exec(pr, h, p, err));
                } else {
                        JF_TRY(jf_check_keys(h, p, NULL, NULL, err));
                }
        }
        if (pr->kind == PROBE_NONE)
                return jf_error(err, path,
                                "must specify a handler type (tcpSocket, httpGet, exec or guestAgentPing)");
        return 0;
}

static int parse_probe(vmi_probe *pr, const cJSON *spec, const char *key, bool liveness, kv_error *err)
{
        static const char *const keys[] = {"tcpSocket",
                                           "httpGet",
                                           "exec",
                                           "guestAgentPing",
                                           "initialDelaySeconds",
                                           "periodSeconds",
                                           "timeoutSeconds",
                                           "successThreshold",
                                           "failureThreshold",
                                           NULL};
        const cJSON *probe = NULL;
        char path[JPATH_MAX], p[JPATH_MAX];
        JF_TRY(jf_object(spec, "spec", key, &probe, err));
        if (!probe)
                return 0;
        jpath_key(path, "spec", key);
        JF_TRY(jf_check_keys(probe, path, keys, NULL, err));
        JF_TRY(parse_handler(pr, probe, path, err));
        /* Kubernetes' defaults: no delay, every 10 s, 1 s to answer, 1 success, 3 failures. */
        pr->initial_delay = 0, pr->period = 10, pr->timeout = 1, pr->success_threshold = 1;
        pr->failure_threshold = 3;
        JF_TRY(jf_int(probe, path, "initialDelaySeconds", 0, 86400, &pr->initial_delay, NULL, err));
        JF_TRY(jf_int(probe, path, "periodSeconds", 1, 86400, &pr->period, NULL, err));
        JF_TRY(jf_int(probe, path, "timeoutSeconds", 1, 86400, &pr->timeout, NULL, err));
        JF_TRY(jf_int(probe, path, "successThreshold", 1, 1000, &pr->success_threshold, NULL, err));
        JF_TRY(jf_int(probe, path, "failureThreshold", 1, 1000, &pr->failure_threshold, NULL, err));
        if (liveness && pr->success_threshold != 1)
                return jf_error(err, jpath_key(p, path, "successThreshold"),
                                "must be 1 for a liveness probe");
        return 0;
}

int vmi_parse_probes(vmi *v, const cJSON *spec, kv_error *err)
{
        JF_TRY(parse_probe(&v->readiness, spec, "readinessProbe", false, err));
        return parse_probe(&v->liveness, spec, "livenessProbe", true, err);
}

void vmi_probe_free(vmi_probe *pr)
{
        free(pr->host), free(pr->http_path);
        for (size_t i = 0; i < pr->n_http_headers; i++)
                free(pr->http_headers[i]);
        free(pr->http_headers);
        for (char **a = pr->exec_argv; a && *a; a++)
                free(*a);
        free(pr->exec_argv);
        *pr = (vmi_probe){0};
}

const char *probe_kind_name(probe_kind k)
{
        static const char *const names[] = {"none", "tcpSocket", "httpGet", "exec", "guestAgentPing"};
        return k <= PROBE_AGENT_PING ? names[k] : "unknown";
}
