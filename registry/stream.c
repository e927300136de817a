/* Producer thread over a socketpair (send with MSG_NOSIGNAL: a consumer that gives up causes EPIPE, not
 * SIGPIPE). */
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int socket_sink(void *ctx, const void *buf, size_t len)
{
        int fd = *(int *)ctx;
        const char *p = buf;
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= n;
        }
        return 0;
}

static void *producer_main(void *arg)
{
        kvreg_stream *s = arg;
        s->rc = s->fn(s->ctx, socket_sink, &s->wfd, &s->err);
        shutdown(s->wfd, SHUT_WR);
        close(s->wfd);
        s->wfd = -1;
        return NULL;
}

int kvreg_stream_start(kvreg_stream *s, kvreg_producer fn, void *ctx, int *read_fd, kv_error *err)
{
        int sv[2];
        *s = (kvreg_stream){.fn = fn, .ctx = ctx};
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return kv_error_errno(err, errno, "socketpair");
        s->wfd = sv[1];
        int r = pthread_create(&s->thread, NULL, producer_main, s);
        if (r != 0) {
                close(sv[0]);
                close(sv[1]);
                return kv_error_errno(err, r, "pthread_create");
        }
        *read_fd = sv[0];
        return 0;
}

int kvreg_stream_finish(kvreg_stream *s, int read_fd, bool drain, kv_error *err)
{
        char buf[65536];
        for (ssize_t n = 1; drain && (n > 0 || (n < 0 && errno == EINTR));)
                n = read(read_fd, buf, sizeof(buf));
        close(read_fd);
        pthread_join(s->thread, NULL);
        if (s->rc < 0 && err)
                *err = s->err;
        return s->rc;
}
