/* A small HTTP/1.1 client over TLS (mbedTLS) for one server: connections kept alive between requests,
 * Content-Length and chunked bodies (httpparse.h), blocking calls bounded by a deadline, and a non-blocking
 * streaming mode for a response that never ends (a watch) driven from the caller's poll loop. The
 * server's certificate is verified against the given CA, and its name against the host: DNS names by
 * mbedTLS, IP literals against the certificate's IP SANs. No libcurl (libkubelite). */
#pragma once

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"
#include "httpparse.h"

typedef struct httpc_server {
        char *host;      /* to connect to: name or IP literal, without brackets */
        char *tls_name;  /* the name the certificate must carry: host, or the configured server name */
        char port[8];    /* "443" */
        char *authority; /* Host header: "host:port", "[v6]:port" */
        bool ip;         /* tls_name is an IP literal (addr): checked against IP SANs */
        unsigned char addr[16];
        size_t addr_len;
        mbedtls_ssl_config conf;
        mbedtls_x509_crt *ca;
        char *ca_file; /* re-read when it changes (a restarted or rotated API server CA) */
        struct timespec ca_mtime;
        off_t ca_size;
        ino_t ca_ino;
        mbedtls_entropy_context entropy;
        mbedtls_ctr_drbg_context drbg;
} httpc_server;

typedef struct httpc_conn {
        httpc_server *srv;
        int fd; /* -1: not connected */
        mbedtls_ssl_context ssl;
        bool ssl_ready;
        int64_t deadline; /* monotonic ms the blocking calls may wait until; 0: never wait (streaming) */
        http_parser resp;
        bool got_bytes; /* some of the response arrived */
} httpc_conn;

/* url: "https://host[:port]" (IPv6 in brackets). ca_pem: the CA bundle (PEM, ca_len bytes), or ca_file;
 * server_name replaces the host for the name check and SNI when set; insecure skips verification. Reads
 * the CA and seeds the random generator here, so callers may confine themselves afterwards; a ca_file is
 * read again (read-only) before a new connection when it changed since, as curl did. */
int httpc_server_init(httpc_server *s, const char *url, const char *ca_pem, size_t ca_len,
                      const char *ca_file, const char *server_name, bool insecure, kv_error *err);
void httpc_server_free(httpc_server *s);

void httpc_conn_init(httpc_conn *c, httpc_server *s);
void httpc_close(httpc_conn *c);

/* Sends one request on the kept-alive connection (reconnecting when the server closed it) and starts
 * reading its response: body bytes go to fn. headers: extra "Name: value\r\n" lines, or NULL. Blocks
 * until deadline_ms at most. 0, or -errno with err. */
int httpc_send(httpc_conn *c, const char *method, const char *path, const char *headers, const char *body,
               http_body_fn fn, void *ud, int64_t deadline_ms, kv_error *err);
/* Reads until the response is complete, blocking until deadline_ms at most. 0, or -errno with err. */
int httpc_recv(httpc_conn *c, int64_t deadline_ms, kv_error *err);
/* One blocking exchange: send + recv; retried once on a fresh connection when a kept-alive one turns out
 * closed before any response byte. */
int httpc_exchange(httpc_conn *c, const char *method, const char *path, const char *headers, const char *body,
                   http_body_fn fn, void *ud, int64_t deadline_ms, kv_error *err);
/* Streaming: reads what has arrived without blocking (call when the fd is readable). 1: the response
 * ended (complete or the server closed it), 0: more to come, <0: -errno with err (the body callback's
 * stop is -ECANCELED). */
int httpc_pump(httpc_conn *c, kv_error *err);
