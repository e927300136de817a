/* The port-forward request on virt-api's channel to virt-handler (docs/portforward.md): one line,
 * "portforward POD-UID PROTOCOL ADDRESS PORT DEVICE", naming where virt-handler connects from inside the
 * launcher Pod's network namespace. Formatting and parsing, both pure; virt-api writes it, virt-handler
 * reads it. */
#pragma once

#include <stddef.h>

#define PF_VERB "portforward"
#define PF_LINE_MAX 192

typedef struct pf_request {
        char pod_uid[64]; /* the launcher Pod's uid: hex digits and '-' */
        char protocol[4]; /* "tcp" or "udp" */
        char address[16]; /* IPv4, dotted quad */
        unsigned port;    /* 1-65535 */
        char device[16];  /* the link to connect through (SO_BINDTODEVICE); "" for none, "-" on the line */
} pf_request;

/* The line, '\n' included, into out. Its length, -EINVAL when a field is not valid, -ENOBUFS. */
int pf_request_format(const pf_request *r, char *out, size_t size);
/* A line (without its '\n') into *out, each field checked as pf_request_format does. 0 or -EINVAL. */
int pf_request_parse(const char *line, pf_request *out);
