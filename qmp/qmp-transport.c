/* libqmp transport layer: non-blocking socket reads into the line framer, an output queue written with
 * send()/sendmsg() (SCM_RIGHTS for fd passing) and the "connection is dead" state. */
#include "qmp-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QMP_READ_CHUNK 65536
/* Bytes read per qmp_handle_io call before yielding to the caller's loop (level-triggered). */
#define QMP_READ_BUDGET (4u * 1024 * 1024)

int qmp_mark_dead(qmp *q, const kv_error *why)
{
        if (!q->dead) {
                q->dead = -(why->code > 0 ? why->code : EIO);
                q->dead_err = *why;
        }
        return q->dead;
}

static void out_free(qmp_out *o)
{
        if (o->fd >= 0)
                close(o->fd);
        free(o->data);
        free(o);
}

int qmp_transport_queue(qmp *q, char *data, size_t len, int fd, kv_error *err)
{
        qmp_out *o = calloc(1, sizeof(*o));
        if (!o) {
                free(data);
                return kv_error_set(err, ENOMEM, "out of memory queueing a QMP command");
        }
        *o = (qmp_out){.data = data, .len = len, .fd = -1};
        if (fd >= 0) {
                /* Our own copy: the caller may close its fd as soon as qmp_send returns. */
                o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (o->fd < 0) {
                        int e = errno;
                        out_free(o);
                        return kv_error_errno(err, e, "dup fd %d for SCM_RIGHTS", fd);
                }
        }
        if (q->out_tail)
                q->out_tail->next = o;
        else
                q->out_head = o;
        q->out_tail = o;
        return 0;
}

static ssize_t send_with_fd(int sock, const char *buf, size_t len, int fd)
{
        char control[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Write as much queued output as the socket takes. 0, or <0 when the connection died. */
int qmp_transport_flush(qmp *q)
{
        while (q->out_head && !q->dead) {
                qmp_out *o = q->out_head;
                ssize_t n = o->fd >= 0 && o->off == 0
                                ? send_with_fd(q->fd, o->data, o->len, o->fd)
                                : send(q->fd, o->data + o->off, o->len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        kv_error e;
                        kv_error_errno(&e, errno, "QMP send");
                        return qmp_mark_dead(q, &e);
                }
                o->off += (size_t)n;
                if (o->fd >= 0) { /* delivered with the first byte; the peer holds its own copy now */
                        close(o->fd);
                        o->fd = -1;
                }
                if (o->off < o->len)
                        continue;
                q->out_head = o->next;
                if (!q->out_head)
                        q->out_tail = NULL;
                out_free(o);
        }
        return q->dead;
}

static void dispatch_lines(qmp *q)
{
        const char *line;
        size_t len;
        kv_error e;
        int r = 0;
        while (!q->dead && (r = qmp_framer_next(&q->in, &line, &len, &e)) > 0)
                qmp_dispatch_line(q, line, len);
        if (!q->dead && r < 0)
                qmp_mark_dead(q, &e);
}

static int read_eof(qmp *q)
{
        kv_error e;
        if (qmp_framer_pending(&q->in))
                kv_error_set(&e, ECONNRESET,
                             "QMP connection closed in the middle of a message (%zu bytes pending)",
                             qmp_framer_pending(&q->in));
        else
                kv_error_set(&e, ECONNRESET, "QMP connection closed by peer");
        return qmp_mark_dead(q, &e);
}

int qmp_transport_read(qmp *q)
{
        size_t total = 0;
        while (!q->dead && total < QMP_READ_BUDGET) {
                char *dst;
                size_t avail;
                if (qmp_framer_reserve(&q->in, QMP_READ_CHUNK, &dst, &avail) < 0) {
                        kv_error e;
                        kv_error_set(&e, ENOMEM, "out of memory reading QMP");
                        return qmp_mark_dead(q, &e);
                }
                ssize_t n = recv(q->fd, dst, avail, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        kv_error e;
                        kv_error_errno(&e, errno, "QMP recv");
                        return qmp_mark_dead(q, &e);
                }
                if (n == 0)
                        return read_eof(q);
                qmp_framer_commit(&q->in, (size_t)n);
                total += (size_t)n;
                dispatch_lines(q);
        }
        return q->dead;
}

void qmp_transport_free(qmp *q)
{
        while (q->out_head) {
                qmp_out *o = q->out_head;
                q->out_head = o->next;
                out_free(o);
        }
        q->out_tail = NULL;
        qmp_framer_free(&q->in);
        if (q->fd >= 0)
                close(q->fd);
        q->fd = -1;
}
