/* "host:port" listen addresses of the project's servers (metrics, virt-api): one parser, one message. */
#pragma once

#include <netinet/in.h>

#include "error.h"

/* Parses "IPV4:PORT" or ":PORT" (all addresses) into *sa; flag names the option in the error. */
int hostport_parse_ipv4(const char *flag, const char *addr, struct sockaddr_in *sa, kv_error *err);
