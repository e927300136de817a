/* certs: virt-api's own TLS material, as KubeVirt's operator keeps it: a self-signed CA and a serving
 * certificate for the Service's DNS names, renewed before they expire. The CA's PEM is what goes into the
 * webhook configurations' and the APIService's caBundle. */
#pragma once

#include "error.h"

/* File names inside the certificate directory (PEM; keys mode 0600). */
#define CERTS_CA_CRT "ca.crt"
#define CERTS_CA_KEY "ca.key"
#define CERTS_TLS_CRT "tls.crt"
#define CERTS_TLS_KEY "tls.key"

/* Make sure dir holds a CA and a serving certificate (EC P-256, SHA-256, validity_days long) for the
 * comma-separated DNS names (an entry that parses as an IP address becomes an IP SAN). Each is (re)made
 * when missing, unreadable, with less than a fifth of validity_days left, or (serving certificate) not
 * signed by the current CA, not matching its key, or not for exactly these names. Files are replaced
 * atomically (rename). Returns 0 when everything was kept, 1 when something was written (the caller
 * republishes the caBundle and reloads its TLS context), negative errno with err set on failure. */
int certs_ensure(const char *dir, const char *service_dns_names_csv, unsigned validity_days, kv_error *err);

/* File names of the console channel's server certificate (virt-handler's, docs/console.md). */
#define CERTS_HANDLER_CRT "handler.crt"
#define CERTS_HANDLER_KEY "handler.key"

/* Another certificate signed by the CA certs_ensure() keeps in dir (run it first): crt/key for the
 * comma-separated names, with the same renewal rules. 0 kept, 1 written, negative errno with err set. */
int certs_ensure_peer(const char *dir, const char *crt, const char *key, const char *dns_names_csv,
                      unsigned validity_days, kv_error *err);
