/* The Pod's resolv.conf: the DNS servers and search domains DHCP hands to the guest. */
#pragma once

#include "error.h"

#include <netinet/in.h>
#include <stddef.h>

#define RESOLV_MAX_DNS 4
#define RESOLV_MAX_SEARCH 6
#define RESOLV_DOMAIN_MAX 254

typedef struct resolv_conf {
        struct in_addr dns[RESOLV_MAX_DNS];
        size_t n_dns;
        struct in6_addr dns6[RESOLV_MAX_DNS]; /* for DHCPv6 (dual-stack masquerade) */
        size_t n_dns6;
        char search[RESOLV_MAX_SEARCH][RESOLV_DOMAIN_MAX];
        size_t n_search;
} resolv_conf;

/* A missing file gives an empty result (no DNS); IPv6 servers go to dns6 (DHCPv4 cannot carry them). */
int resolv_conf_read(const char *path, resolv_conf *out, kv_error *err);
/* The same from a string (tests). */
void resolv_conf_parse(const char *text, resolv_conf *out);
