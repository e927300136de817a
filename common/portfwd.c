/* The port-forward request line of the console channel (portfwd.h). */
#include "portfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool only(const char *s, const char *set, size_t max)
{
        size_t n = strlen(s);
        return n > 0 && n <= max && strspn(s, set) == n;
}

static bool request_valid(const pf_request *r)
{
        struct in_addr a;
        return only(r->pod_uid, "0123456789abcdefABCDEF-", sizeof(r->pod_uid) - 1) &&
               (!strcmp(r->protocol, "tcp") || !strcmp(r->protocol, "udp")) &&
               inet_pton(AF_INET, r->address, &a) == 1 && r->port >= 1 && r->port <= 65535 &&
               (!r->device[0] ||
                only(r->device, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                     sizeof(r->device) - 1));
}

int pf_request_format(const pf_request *r, char *out, size_t size)
{
        if (!request_valid(r))
                return -EINVAL;
        int n = snprintf(out, size, PF_VERB " %s %s %s %u %s\n", r->pod_uid, r->protocol, r->address, r->port,
                         r->device[0] ? r->device : "-");
        return n < 0 || (size_t)n >= size ? -ENOBUFS : n;
}

/* The next space-separated field of *p into out (size bytes with the NUL); false when empty or too long. */
static bool field(const char **p, char *out, size_t size)
{
        size_t n = strcspn(*p, " ");
        if (n == 0 || n >= size)
                return false;
        memcpy(out, *p, n);
        out[n] = 0;
        *p += n;
        if (**p == ' ')
                (*p)++;
        return true;
}

int pf_request_parse(const char *line, pf_request *out)
{
        char verb[sizeof(PF_VERB)], port[6];
        const char *p = line;
        *out = (pf_request){0};
        if (!field(&p, verb, sizeof(verb)) || strcmp(verb, PF_VERB) ||
            !field(&p, out->pod_uid, sizeof(out->pod_uid)) ||
            !field(&p, out->protocol, sizeof(out->protocol)) ||
            !field(&p, out->address, sizeof(out->address)) || !field(&p, port, sizeof(port)) ||
            !field(&p, out->device, sizeof(out->device)) || *p || p[-1] == ' ' || port[0] == '0' ||
            strspn(port, "0123456789") != strlen(port))
                return -EINVAL;
        out->port = (unsigned)strtoul(port, NULL, 10);
        if (!strcmp(out->device, "-"))
                out->device[0] = 0;
        return request_valid(out) ? 0 : -EINVAL;
}
