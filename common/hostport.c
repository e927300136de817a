/* "host:port" listen addresses (hostport.h). */
#include "hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hostport_parse_ipv4(const char *flag, const char *addr, struct sockaddr_in *sa, kv_error *err)
{
        const char *colon = strrchr(addr, ':');
        char host[64] = "0.0.0.0";
        char *end;
        if (!colon)
                return kv_error_set(err, EINVAL, "%s \"%s\": expected host:port", flag, addr);
        if (colon > addr)
                snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        unsigned long port = strtoul(colon + 1, &end, 10);
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (!colon[1] || *end || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return kv_error_set(err, EINVAL, "%s \"%s\": expected IPv4-host:port", flag, addr);
        return 0;
}
