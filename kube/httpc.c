/* HTTP/1.1 over mbedTLS; see httpc.h. One socket mode (non-blocking) for both uses: the blocking calls
 * poll until their deadline inside the TLS layer's I/O callbacks, the streaming one returns at once. */
#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"

static int tls_error(kv_error *err, int ret, int code, const char *what)
{
        char buf[128];
        mbedtls_strerror(ret, buf, sizeof(buf));
        return kv_error_set(err, code, "%s: %s", what, buf);
}

/* The name the certificate must carry (and SNI for a DNS name). */
static int set_tls_name(httpc_server *s, const char *name)
{
        char *n = strdup(name);
        if (!n)
                return -ENOMEM;
        free(s->tls_name);
        s->tls_name = n;
        s->addr_len = 0;
        if (inet_pton(AF_INET, name, s->addr) == 1)
                s->addr_len = 4;
        else if (inet_pton(AF_INET6, name, s->addr) == 1)
                s->addr_len = 16;
        s->ip = s->addr_len > 0;
        return 0;
}

/* "https://host[:port][/]" */
static int parse_url(httpc_server *s, const char *url, kv_error *err)
{
        if (strncmp(url, "https://", 8) != 0)
                return kv_error_set(err, EINVAL, "server %s: only https:// is supported", url);
        const char *h = url + 8, *end;
        size_t hl;
        if (*h == '[') {
                end = strchr(h, ']');
                if (!end)
                        return kv_error_set(err, EINVAL, "server %s: unterminated [IPv6] host", url);
                h++;
                hl = (size_t)(end - h);
                end++;
        } else {
                hl = strcspn(h, ":/");
                end = h + hl;
        }
        const char *port = "443";
        size_t pl = 3;
        if (*end == ':') {
                port = end + 1;
                pl = strcspn(port, "/");
        }
        const char *rest = port == end + 1 ? port + pl : end;
        if (!hl || !pl || pl >= sizeof(s->port) || strspn(port, "0123456789") < pl ||
            (*rest && strcmp(rest, "/")))
                return kv_error_set(err, EINVAL, "server %s: not https://host[:port]", url);
        s->host = strndup(h, hl);
        memcpy(s->port, port, pl);
        s->port[pl] = '\0';
        if (!s->host || set_tls_name(s, s->host) < 0)
                return kv_error_errno(err, ENOMEM, "server");
        bool v6 = strchr(s->host, ':') != NULL;
        if (asprintf(&s->authority, "%s%s%s:%s", v6 ? "[" : "", s->host, v6 ? "]" : "", s->port) < 0) {
                s->authority = NULL;
                return kv_error_errno(err, ENOMEM, "server");
        }
        return 0;
}

/* IP literals: mbedTLS 2.28 checks only DNS names, so the leaf certificate's iPAddress SANs are compared
 * here (RFC 6125: an IP is never matched against the CN). */
static int verify_ip(void *ud, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
        httpc_server *s = ud;
        if (depth != 0 || !s->ip)
                return 0;
        for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san; san = san->next) {
                const mbedtls_x509_buf *b = &san->buf;
                if (b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
                    b->len == s->addr_len && memcmp(b->p, s->addr, s->addr_len) == 0)
                        return 0;
        }
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
        return 0;
}

static int file_id(const char *path, struct stat *st)
{
        return stat(path, st) < 0 ? -errno : 0;
}

/* (Re)reads the CA bundle into a new chain and makes it the one new connections verify with. */
static int load_ca(httpc_server *s, const char *ca_pem, size_t ca_len, kv_error *err)
{
        mbedtls_x509_crt *ca = malloc(sizeof(*ca));
        if (!ca)
                return kv_error_errno(err, ENOMEM, "CA");
        mbedtls_x509_crt_init(ca);
        int ret;
        struct stat st = {0};
        if (ca_pem) { /* PEM parsing wants the terminating NUL counted */
                _cleanup_free_ unsigned char *pem = malloc(ca_len + 1);
                if (!pem) {
                        free(ca);
                        return kv_error_errno(err, ENOMEM, "CA");
                }
                memcpy(pem, ca_pem, ca_len);
                pem[ca_len] = '\0';
                ret = mbedtls_x509_crt_parse(ca, pem, ca_len + 1);
        } else {
                ret = file_id(s->ca_file, &st) < 0 ? MBEDTLS_ERR_X509_FILE_IO_ERROR
                                                   : mbedtls_x509_crt_parse_file(ca, s->ca_file);
        }
        if (ret < 0) { /* >0: some certificates of the bundle were skipped */
                mbedtls_x509_crt_free(ca);
                free(ca);
                return tls_error(err, ret, EINVAL, ca_pem ? "CA data" : s->ca_file);
        }
        if (s->ca) {
                mbedtls_x509_crt_free(s->ca);
                free(s->ca);
        }
        s->ca = ca;
        s->ca_mtime = st.st_mtim;
        s->ca_size = st.st_size;
        s->ca_ino = st.st_ino;
        mbedtls_ssl_conf_ca_chain(&s->conf, s->ca, NULL);
        return 0;
}

/* Before a connection: a CA file that changed is read again (a failure keeps the one loaded). */
static void refresh_ca(httpc_server *s)
{
        struct stat st;
        if (!s->ca_file || file_id(s->ca_file, &st) < 0)
                return;
        if (st.st_ino == s->ca_ino && st.st_size == s->ca_size && st.st_mtim.tv_sec == s->ca_mtime.tv_sec &&
            st.st_mtim.tv_nsec == s->ca_mtime.tv_nsec)
                return;
        kv_error err = {0};
        load_ca(s, NULL, 0, &err);
}

int httpc_server_init(httpc_server *s, const char *url, const char *ca_pem, size_t ca_len,
                      const char *ca_file, const char *server_name, bool insecure, kv_error *err)
{
        memset(s, 0, sizeof(*s));
        mbedtls_ssl_config_init(&s->conf);
        mbedtls_entropy_init(&s->entropy);
        mbedtls_ctr_drbg_init(&s->drbg);
        int r = parse_url(s, url, err);
        if (r < 0)
                return r;
        if (server_name && *server_name && set_tls_name(s, server_name) < 0)
                return kv_error_errno(err, ENOMEM, "server");
        static const char pers[] = "kvlite-httpc";
        int ret = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
                                        (const unsigned char *)pers, sizeof(pers) - 1);
        if (ret == 0)
                ret = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_CLIENT,
                                                  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
        if (ret != 0)
                return tls_error(err, ret, EIO, "TLS setup");
        mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
        mbedtls_ssl_conf_min_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
        if (insecure) {
                mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
        } else {
                if (!ca_pem && !ca_file)
                        return kv_error_set(err, EINVAL, "no CA certificate for %s", s->authority);
                if (!ca_pem && !(s->ca_file = strdup(ca_file)))
                        return kv_error_errno(err, ENOMEM, "CA");
                r = load_ca(s, ca_pem, ca_len, err);
                if (r < 0)
                        return r;
                mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
                mbedtls_ssl_conf_verify(&s->conf, verify_ip, s);
        }
        /* a host name is resolved once here too: the resolver loads what it needs before a seccomp filter */
        struct addrinfo *ai = NULL;
        if (getaddrinfo(s->host, s->port, NULL, &ai) == 0)
                freeaddrinfo(ai);
        return 0;
}

void httpc_server_free(httpc_server *s)
{
        mbedtls_ssl_config_free(&s->conf);
        if (s->ca)
                mbedtls_x509_crt_free(s->ca);
        free(s->ca);
        free(s->ca_file);
        mbedtls_ctr_drbg_free(&s->drbg);
        mbedtls_entropy_free(&s->entropy);
        free(s->host);
        free(s->tls_name);
        free(s->authority);
}

void httpc_conn_init(httpc_conn *c, httpc_server *s)
{
        memset(c, 0, sizeof(*c));
        c->srv = s;
        c->fd = -1;
}

void httpc_close(httpc_conn *c)
{
        if (c->ssl_ready)
                mbedtls_ssl_free(&c->ssl);
        c->ssl_ready = false;
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
}

/* Waits for fd to become ready until the deadline: 0, or the mbedTLS code to return. */
static int wait_fd(httpc_conn *c, short events, int want)
{
        if (!c->deadline)
                return want;
        for (;;) {
                int64_t left = c->deadline - kv_now_ms();
                if (left <= 0)
                        return MBEDTLS_ERR_SSL_TIMEOUT;
                struct pollfd p = {.fd = c->fd, .events = events};
                int n = poll(&p, 1, (int)left);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return MBEDTLS_ERR_NET_POLL_FAILED;
        }
}

static int bio_send(void *ud, const unsigned char *buf, size_t len)
{
        httpc_conn *c = ud;
        for (;;) {
                ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
                if (n >= 0)
                        return (int)n;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return MBEDTLS_ERR_NET_SEND_FAILED;
                int w = wait_fd(c, POLLOUT, MBEDTLS_ERR_SSL_WANT_WRITE);
                if (w)
                        return w;
        }
}

static int bio_recv(void *ud, unsigned char *buf, size_t len)
{
        httpc_conn *c = ud;
        for (;;) {
                ssize_t n = recv(c->fd, buf, len, 0);
                if (n >= 0)
                        return (int)n;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
                int w = wait_fd(c, POLLIN, MBEDTLS_ERR_SSL_WANT_READ);
                if (w)
                        return w;
        }
}

static int connect_one(httpc_conn *c, const struct addrinfo *a)
{
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        c->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                int e = errno;
                httpc_close(c);
                return -e;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (wait_fd(c, POLLOUT, 0) != 0) {
                httpc_close(c);
                return -ETIMEDOUT;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
                httpc_close(c);
                return soerr ? -soerr : -EIO;
        }
        return 0;
}

static int tcp_connect(httpc_conn *c, kv_error *err)
{
        httpc_server *s = c->srv;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
        int g = getaddrinfo(s->host, s->port, &hints, &res);
        if (g != 0)
                return kv_error_set(err, EHOSTUNREACH, "resolve %s: %s", s->host, gai_strerror(g));
        int r = -EHOSTUNREACH;
        for (struct addrinfo *a = res; a && r < 0; a = a->ai_next)
                r = connect_one(c, a);
        freeaddrinfo(res);
        if (r < 0)
                return kv_error_set(err, r == -ETIMEDOUT ? ETIMEDOUT : ECONNREFUSED, "connect to %s: %s",
                                    s->authority, strerror(-r));
        return 0;
}

static int tls_connect(httpc_conn *c, kv_error *err)
{
        int r = tcp_connect(c, err);
        if (r < 0)
                return r;
        refresh_ca(c->srv);
        mbedtls_ssl_init(&c->ssl);
        c->ssl_ready = true;
        int ret = mbedtls_ssl_setup(&c->ssl, &c->srv->conf);
        if (ret == 0 && !c->srv->ip) /* SNI and the DNS name check; IP literals: verify_ip */
                ret = mbedtls_ssl_set_hostname(&c->ssl, c->srv->tls_name);
        if (ret != 0) {
                httpc_close(c);
                return tls_error(err, ret, ENOMEM, "TLS setup");
        }
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        while ((ret = mbedtls_ssl_handshake(&c->ssl)) != 0) {
                if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
                        continue;
                uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
                char why[256] = "";
                if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
                        mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags);
                httpc_close(c);
                if (*why) {
                        why[strcspn(why, "\n")] = '\0';
                        return kv_error_set(err, EACCES, "TLS handshake with %s: certificate rejected: %s",
                                            c->srv->authority, why);
                }
                return tls_error(err, ret, ret == MBEDTLS_ERR_SSL_TIMEOUT ? ETIMEDOUT : ECONNREFUSED,
                                 "TLS handshake");
        }
        return 0;
}

/* A kept-alive connection the server closed (or wrote to unasked) reads as ready. */
static bool stale(httpc_conn *c)
{
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        return poll(&p, 1, 0) != 0;
}

static int write_all(httpc_conn *c, const char *buf, size_t len, kv_error *err)
{
        while (len) {
                int n = mbedtls_ssl_write(&c->ssl, (const unsigned char *)buf, len);
                if (n == MBEDTLS_ERR_SSL_WANT_WRITE || n == MBEDTLS_ERR_SSL_WANT_READ)
                        continue;
                if (n < 0)
                        return tls_error(err, n, n == MBEDTLS_ERR_SSL_TIMEOUT ? ETIMEDOUT : EPIPE, "send");
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

int httpc_send(httpc_conn *c, const char *method, const char *path, const char *headers, const char *body,
               http_body_fn fn, void *ud, int64_t deadline_ms, kv_error *err)
{
        c->deadline = deadline_ms;
        if (c->fd >= 0 && stale(c))
                httpc_close(c);
        int r = c->fd < 0 ? tls_connect(c, err) : 0;
        if (r < 0)
                return r;
        size_t blen = body ? strlen(body) : 0;
        _cleanup_free_ char *head = NULL;
        char length[48] = "";
        if (body)
                snprintf(length, sizeof(length), "Content-Length: %zu\r\n", blen);
        if (asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kvlite-httpc\r\n%s%s\r\n", method,
                     path, c->srv->authority, length, headers ? headers : "") < 0) {
                head = NULL;
                return kv_error_errno(err, ENOMEM, "%s %s", method, path);
        }
        http_parser_init(&c->resp, fn, ud);
        c->got_bytes = false;
        r = write_all(c, head, strlen(head), err);
        if (r == 0 && body)
                r = write_all(c, body, blen, err);
        if (r < 0)
                httpc_close(c);
        return r;
}

/* Reads and parses what the TLS layer gives: 1 response ended, 0 would block, <0 error. */
static int read_some(httpc_conn *c, kv_error *err)
{
        char buf[16384];
        for (;;) {
                int n = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, sizeof(buf));
                if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
                        return 0;
                if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_NET_CONN_RESET) {
                        int e = http_parser_eof(&c->resp);
                        httpc_close(c);
                        if (e < 0)
                                return kv_error_set(err, c->got_bytes ? EPROTO : ECONNRESET, "response: %s",
                                                    c->resp.error);
                        return 1;
                }
                if (n < 0)
                        return tls_error(err, n, n == MBEDTLS_ERR_SSL_TIMEOUT ? ETIMEDOUT : EIO, "receive");
                c->got_bytes = true;
                long used = http_parser_feed(&c->resp, buf, (size_t)n);
                if (used == -1 && c->resp.state == HTTP_ERROR)
                        return kv_error_set(err, EPROTO, "response: %s", c->resp.error);
                if (used < 0)
                        return kv_error_set(err, ECANCELED, "response: stopped by its reader");
                if (http_parser_done(&c->resp)) {
                        if (used < n || !http_parser_reusable(&c->resp))
                                httpc_close(c); /* bytes after the response: nothing to trust there */
                        return 1;
                }
        }
}

int httpc_recv(httpc_conn *c, int64_t deadline_ms, kv_error *err)
{
        c->deadline = deadline_ms;
        if (c->fd < 0)
                return http_parser_done(&c->resp) ? 0 : kv_error_set(err, ENOTCONN, "receive: not connected");
        int r;
        while ((r = read_some(c, err)) == 0)
                ;
        if (r < 0)
                httpc_close(c);
        return r < 0 ? r : 0;
}

int httpc_exchange(httpc_conn *c, const char *method, const char *path, const char *headers, const char *body,
                   http_body_fn fn, void *ud, int64_t deadline_ms, kv_error *err)
{
        for (int attempt = 0;; attempt++) {
                bool reused = c->fd >= 0;
                int r = httpc_send(c, method, path, headers, body, fn, ud, deadline_ms, err);
                if (r == 0)
                        r = httpc_recv(c, deadline_ms, err);
                /* the server dropped an idle connection as the request went out: nothing was processed */
                if (r < 0 && reused && !c->got_bytes && attempt == 0 && r != -ETIMEDOUT)
                        continue;
                return r;
        }
}

int httpc_pump(httpc_conn *c, kv_error *err)
{
        c->deadline = 0;
        if (c->fd < 0)
                return 1;
        int r = read_some(c, err);
        if (r < 0)
                httpc_close(c);
        return r;
}
