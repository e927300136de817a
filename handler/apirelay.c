/* The API-server relay (apirelay.h): one epoll loop on a thread of its own, so the device-plugin loop
 * stays untouched. Each accepted connection gets a non-blocking TCP connection to the API server and a
 * bounded buffer per direction; a side whose buffer is full is not read until the other side drained it,
 * and an end of stream is passed on as shutdown(SHUT_WR) once its bytes are delivered. */
#include "apirelay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "macro.h"
#include "unixsock.h"

/* Bytes read from one side, waiting to be written to the other. */
typedef struct flow {
        char buf[API_RELAY_BUF];
        size_t off, len;
        bool eof;  /* its source ended */
        bool shut; /* ... and the end was passed on */
} flow;

typedef struct relay relay;
typedef struct relay_conn relay_conn;

typedef struct side {
        relay_conn *conn;
        int fd;
        loop_source *src; /* NULL while nothing is awaited from it */
        uint32_t events;
        flow *in;  /* what is read from it */
        flow *out; /* what is written to it */
} side;

struct relay_conn {
        relay *r;
        side client, server;
        flow up, down; /* client -> API server, API server -> client */
        bool connecting;
};

struct relay {
        loop *l;
        int fd;
        char *host;
        char port[8];
        char *path;
        unsigned n_conns;
};

int api_relay_server_address(const char *url, char **host, char port[8], kv_error *err)
{
        bool tls = !strncmp(url, "https://", 8);
        if (!tls && strncmp(url, "http://", 7))
                return kv_error_set(err, EINVAL, "server %s: not http(s)://host[:port]", url);
        const char *h = url + (tls ? 8 : 7), *end;
        size_t hl;
        if (*h == '[') {
                end = strchr(++h, ']');
                hl = end ? (size_t)(end - h) : 0;
                end = end ? end + 1 : h;
        } else {
                hl = strcspn(h, ":/");
                end = h + hl;
        }
        const char *p = tls ? "443" : "80";
        size_t pl = strlen(p);
        if (*end == ':') {
                p = end + 1;
                pl = strcspn(p, "/");
        }
        const char *rest = p == end + 1 ? p + pl : end;
        if (!hl || !pl || pl > 5 || strspn(p, "0123456789") < pl || (*rest && strcmp(rest, "/")))
                return kv_error_set(err, EINVAL, "server %s: not http(s)://host[:port]", url);
        if (!(*host = strndup(h, hl)))
                return kv_error_errno(err, ENOMEM, "server %s", url);
        memcpy(port, p, pl);
        port[pl] = '\0';
        return 0;
}

static void conn_close(relay_conn *c)
{
        loop_remove(c->r->l, c->client.src);
        loop_remove(c->r->l, c->server.src);
        close(c->client.fd);
        if (c->server.fd >= 0)
                close(c->server.fd);
        c->r->n_conns--;
        free(c);
}

static void on_side(loop_source *src, int fd, uint32_t events, void *data);

/* Waits on a side for what it can do now: read while its flow has room, write while the other side left
 * bytes for it. Nothing to wait for: out of the epoll set, so a hung-up socket does not spin the loop. */
static int watch(side *s, uint32_t want)
{
        relay *r = s->conn->r;
        if (s->src && want == s->events)
                return 0;
        int ret = 0;
        if (!want) {
                loop_remove(r->l, s->src);
                s->src = NULL;
        } else if (s->src) {
                ret = loop_modify(r->l, s->src, want);
        } else {
                ret = loop_add(r->l, s->fd, want, on_side, s, &s->src);
        }
        s->events = want;
        return ret;
}

static uint32_t wanted(const relay_conn *c, const side *s)
{
        if (s == &c->server && c->connecting)
                return EPOLLOUT;
        return (!s->in->eof && s->in->len < sizeof(s->in->buf) ? EPOLLIN : 0) | (s->out->len ? EPOLLOUT : 0);
}

/* Reads what fits into the side's flow: 0, or <0 when the connection is to be closed. */
static int pull(side *s)
{
        flow *f = s->in;
        if (f->eof || f->len == sizeof(f->buf))
                return 0;
        if (f->off && f->off + f->len == sizeof(f->buf)) { /* room only at the front: move the bytes */
                memmove(f->buf, f->buf + f->off, f->len);
                f->off = 0;
        }
        ssize_t n = recv(s->fd, f->buf + f->off + f->len, sizeof(f->buf) - f->off - f->len, 0);
        if (n > 0)
                f->len += (size_t)n;
        else if (n == 0)
                f->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
                return -errno;
        return 0;
}

/* Writes what the other side left for this one, then passes an end of stream on. */
static int push(side *s)
{
        flow *f = s->out;
        if (f->len) {
                ssize_t n = send(s->fd, f->buf + f->off, f->len, MSG_NOSIGNAL);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                f->off = (size_t)n == f->len ? 0 : f->off + (size_t)n;
                f->len -= (size_t)n;
        }
        if (f->eof && !f->len && !f->shut) {
                shutdown(s->fd, SHUT_WR);
                f->shut = true;
        }
        return 0;
}

static int connected(relay_conn *c)
{
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->server.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
        if (soerr)
                return -soerr;
        c->connecting = false;
        return 0;
}

static void on_side(loop_source *src, int fd, uint32_t events, void *data)
{
        side *s = data;
        relay_conn *c = s->conn;
        int r = 0;
        if (s == &c->server && c->connecting) {
                if ((r = connected(c)) < 0) {
                        log_warning("api relay: connect to %s port %s: %s", c->r->host, c->r->port,
                                    strerror(-r));
                        conn_close(c);
                        return;
                }
        } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = pull(s);
        }
        side *peer = s == &c->client ? &c->server : &c->client;
        if (r == 0 && !c->connecting)
                r = push(peer);
        if (r == 0 && !c->connecting)
                r = push(s);
        if (r == 0 && c->up.shut && c->down.shut) { /* both ends finished */
                conn_close(c);
                return;
        }
        if (r == 0)
                r = watch(&c->client, wanted(c, &c->client));
        if (r == 0)
                r = watch(&c->server, wanted(c, &c->server));
        if (r < 0) {
                if (r != -ECONNRESET && r != -EPIPE)
                        log_warning("api relay: connection to %s port %s: %s", c->r->host, c->r->port,
                                    strerror(-r));
                conn_close(c);
        }
}

/* A non-blocking TCP connection to the API server, under way: the fd, or -errno. In-cluster the host is an
 * IP (KUBERNETES_SERVICE_HOST); a kubeconfig's host name is looked up here, holding the loop that long. */
static int dial(const relay *r)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
        int g = getaddrinfo(r->host, r->port, &hints, &res);
        if (g != 0)
                return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
        int ret = -EHOSTUNREACH;
        for (const struct addrinfo *a = res; a && ret < 0; a = a->ai_next) {
                int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        ret = -errno;
                } else if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        ret = -errno;
                        close(fd);
                } else {
                        ret = fd;
                }
        }
        freeaddrinfo(res);
        return ret;
}

static void relay_accept(relay *r, int fd)
{
        if (r->n_conns >= API_RELAY_MAX_CONNS) {
                log_warning("api relay: %u connections open, refusing one", r->n_conns);
                close(fd);
                return;
        }
        int up = dial(r);
        if (up < 0) {
                log_warning("api relay: connect to %s port %s: %s", r->host, r->port, strerror(-up));
                close(fd);
                return;
        }
        relay_conn *c = calloc(1, sizeof(*c));
        if (!c) {
                log_warning("api relay: out of memory, refusing a connection");
                close(up);
                close(fd);
                return;
        }
        *c = (relay_conn){.r = r,
                          .client = {.conn = c, .fd = fd, .in = &c->up, .out = &c->down},
                          .server = {.conn = c, .fd = up, .in = &c->down, .out = &c->up},
                          .connecting = true};
        r->n_conns++;
        if (watch(&c->client, wanted(c, &c->client)) < 0 || watch(&c->server, wanted(c, &c->server)) < 0) {
                log_warning("api relay: cannot watch a connection: %s", strerror(errno));
                conn_close(c);
        }
}

static void on_listen(loop_source *src, int lfd, uint32_t events, void *data)
{
        for (int i = 0; i < 16; i++) { /* a few per wake-up, so the open connections keep moving */
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning("api relay: accept: %s", strerror(errno));
                        if (errno == EMFILE || errno == ENFILE)
                                usleep(100000); /* the listener stays readable: do not spin */
                        return;
                }
                relay_accept(data, fd);
        }
}

static void *relay_run(void *arg)
{
        relay *r = arg;
        for (;;)
                if (loop_run_once(r->l, -1) < 0)
                        usleep(100000);
        return NULL;
}

static int mkdir_parents(const char *dir, kv_error *err)
{
        if (!*dir)
                return kv_error_set(err, EINVAL, "--api-relay-dir: empty path");
        _cleanup_free_ char *p = strdup(dir);
        if (!p)
                return kv_error_errno(err, ENOMEM, "--api-relay-dir");
        for (char *s = p + 1;; s++) {
                if (*s && *s != '/')
                        continue;
                char c = *s;
                *s = '\0';
                if (mkdir(p, 0755) == 0) /* the mode the launcher Pods need, whatever the umask */
                        chmod(p, 0755);
                else if (errno != EEXIST)
                        return kv_error_errno(err, errno, "--api-relay-dir: mkdir %s", p);
                if (!(*s = c))
                        return 0;
        }
}

static relay the_relay; /* one per process, for its whole life */

int api_relay_start(const char *dir, const char *url, kv_error *err)
{
        int ret = api_relay_server_address(url, &the_relay.host, the_relay.port, err);
        if (ret < 0)
                return ret;
        if ((ret = mkdir_parents(dir, err)) < 0)
                return ret;
        if (asprintf(&the_relay.path, "%s/%s", dir, API_RELAY_SOCKET) < 0)
                return kv_error_errno(err, ENOMEM, "--api-relay-dir");
        the_relay.fd = unix_listen(the_relay.path, 0666, err);
        if (the_relay.fd < 0)
                return kv_error_wrap(err, "--api-relay-dir");
        if (fcntl(the_relay.fd, F_SETFL, O_NONBLOCK) < 0)
                return kv_error_errno(err, errno, "--api-relay-dir: %s", the_relay.path);
        if ((ret = loop_new(&the_relay.l)) < 0 ||
            (ret = loop_add(the_relay.l, the_relay.fd, EPOLLIN, on_listen, &the_relay, NULL)) < 0)
                return kv_error_errno(err, -ret, "api relay loop");
        /* the main thread takes the stop signals */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        pthread_t t;
        ret = pthread_create(&t, NULL, relay_run, &the_relay);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (ret != 0)
                return kv_error_errno(err, ret, "api relay thread");
        pthread_detach(t);
        log_info("api relay on %s to %s port %s", the_relay.path, the_relay.host, the_relay.port);
        return 0;
}

void api_relay_stop(void)
{
        if (the_relay.path)
                unlink(the_relay.path);
}
