/* libqmp connection lifecycle: adopting a socket, connecting to unix and TCP endpoints (retrying while
 * QEMU is still starting), and freeing the connection. */
#include "qmp-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"

#define QMP_CONNECT_RETRY_MS 10

int qmp_new_from_fd(qmp **out, int fd, kv_error *err)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "QMP socket fd %d", fd);
        qmp *q = calloc(1, sizeof(*q));
        if (!q)
                return kv_error_set(err, ENOMEM, "out of memory allocating a QMP connection");
        q->fd = fd;
        q->busy_poll_us = QMP_DEFAULT_BUSY_POLL_US;
        qmp_framer_init(&q->in, QMP_DEFAULT_MAX_LINE);
        *out = q;
        return 0;
}

void qmp_free(qmp *q)
{
        if (!q)
                return;
        kv_error e;
        kv_error_set(&e, ECANCELED, "QMP connection closed by its owner");
        qmp_mark_dead(q, &e);
        qmp_fail_all(q);
        qmp_transport_free(q);
        qmp_queue_free(q);
        cJSON_Delete(q->greeting);
        free(q);
}

static bool retryable(int e)
{
        return e == ENOENT || e == ECONNREFUSED || e == EAGAIN;
}

/* Sleep before the next attempt; false once the deadline has passed (or there is none). */
static bool retry_wait(int64_t deadline)
{
        if (!deadline || qmp_now_ms() >= deadline)
                return false;
        poll(NULL, 0, QMP_CONNECT_RETRY_MS);
        return true;
}

/* Finish a non-blocking connect() that returned EINPROGRESS. 0 or a positive errno. */
static int connect_finish(int fd, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        for (;;) {
                int left = deadline ? (int)(deadline - qmp_now_ms()) : -1;
                if (deadline && left <= 0)
                        return ETIMEDOUT;
                int n = poll(&p, 1, left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno;
                if (n == 0)
                        return ETIMEDOUT;
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                        return errno;
                return soerr;
        }
}

static int connect_one(const struct sockaddr *sa, socklen_t salen, int64_t deadline, int *out)
{
        _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return errno;
        int e = connect(fd, sa, salen) < 0 ? errno : 0;
        if (e == EINPROGRESS)
                e = connect_finish(fd, deadline);
        if (e)
                return e;
        *out = TAKE_FD(fd);
        return 0;
}

static int adopt(qmp **out, int fd, kv_error *err)
{
        int r = qmp_new_from_fd(out, fd, err);
        if (r < 0)
                close(fd);
        return r;
}

int qmp_connect_unix(qmp **out, const char *path, int timeout_ms, kv_error *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sun.sun_path))
                return kv_error_set(err, ENAMETOOLONG, "QMP socket path too long: %s", path);
        strcpy(sun.sun_path, path);
        int64_t deadline = qmp_deadline(timeout_ms);
        int fd = -1, e;
        while ((e = connect_one((struct sockaddr *)&sun, sizeof(sun), deadline, &fd)) && retryable(e) &&
               retry_wait(deadline))
                ;
        if (e)
                return kv_error_errno(err, e, "connect to QMP socket %s", path);
        return adopt(out, fd, err);
}

static int connect_addrinfo(const struct addrinfo *ai, int64_t deadline, int *fd)
{
        int e = EADDRNOTAVAIL;
        for (; ai; ai = ai->ai_next)
                if (!(e = connect_one(ai->ai_addr, ai->ai_addrlen, deadline, fd)))
                        return 0;
        return e;
}

int qmp_connect_tcp(qmp **out, const char *host, int port, int timeout_ms, kv_error *err)
{
        char service[16];
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (port <= 0 || port > 65535)
                return kv_error_set(err, EINVAL, "QMP TCP port out of range: %d", port);
        snprintf(service, sizeof(service), "%d", port);
        int g = getaddrinfo(host, service, &hints, &ai);
        if (g)
                return kv_error_set(err, EHOSTUNREACH, "resolve QMP host %s: %s", host, gai_strerror(g));
        int64_t deadline = qmp_deadline(timeout_ms);
        int fd = -1, e;
        while ((e = connect_addrinfo(ai, deadline, &fd)) && retryable(e) && retry_wait(deadline))
                ;
        freeaddrinfo(ai);
        if (e)
                return kv_error_errno(err, e, "connect to QMP at %s:%d", host, port);
        /* One small request, one small reply: Nagle would only add latency. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return adopt(out, fd, err);
}
