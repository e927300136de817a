/* libFuzzer target: bytes → the parsers of port-forward (docs/portforward.md). The first byte picks one:
 * 0 the request line virt-handler reads (pf_request_parse; a line it takes formats back to itself), 1 the
 * subresource path virt-api is asked for (portforward_path_parse), 2 a VMI (JSON) → where virt-handler
 * connects (portforward_target), 3 virtctl's target and port arguments (and ssh's target). Never a crash or a
 * leak. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "port-forward-args.h"
#include "portforward.h"

static void request_line(const char *s)
{
        pf_request rq;
        char line[PF_LINE_MAX];
        if (pf_request_parse(s, &rq) < 0)
                return;
        if (pf_request_format(&rq, line, sizeof(line)) < 0 || strncmp(line, s, strlen(s)) ||
            strcmp(line + strlen(s), "\n"))
                abort(); /* what virt-handler accepts is what virt-api would have written */
}

static void path(const char *s)
{
        pf_path p;
        int r = portforward_path_parse(s, &p);
        if (r == 1 && (p.port < 1 || p.port > 65535 || !p.name[0] || !p.ns[0] ||
                       (strcmp(p.protocol, "tcp") && strcmp(p.protocol, "udp"))))
                abort();
}

static void target(const char *s)
{
        cJSON *vmi = cJSON_Parse(s);
        pf_path p = {.port = 8080, .protocol = "tcp"};
        pf_request rq = {0};
        subres_reply r = {0};
        char line[PF_LINE_MAX];
        if (portforward_target(vmi, &p, "10.244.0.5", &rq, &r) == 0) {
                snprintf(rq.pod_uid, sizeof(rq.pod_uid), "0a1b");
                snprintf(rq.protocol, sizeof(rq.protocol), "tcp");
                rq.port = p.port;
                if (pf_request_format(&rq, line, sizeof(line)) < 0)
                        abort(); /* every target it names can be sent */
        }
        subres_reply_done(&r);
        cJSON_Delete(vmi);
}

static void args(const char *s)
{
        pf_target t;
        pf_port p;
        char why[300], user[128];
        pf_target_parse(s, &t, why, sizeof(why));
        pf_ssh_target_parse(s, user, &t, why, sizeof(why));
        if (pf_port_parse(s, &p, why, sizeof(why)) == 0 &&
            (p.local > 65535 || p.remote < 1 || p.remote > 65535))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1 || size > 8192)
                return 0;
        char *s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = 0;
        switch (data[0] % 4) {
        case 0:
                request_line(s);
                break;
        case 1:
                path(s);
                break;
        case 2:
                target(s);
                break;
        default:
                args(s);
        }
        free(s);
        return 0;
}
