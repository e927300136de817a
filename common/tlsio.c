/* See tlsio.h. */
#include "tlsio.h"

#include <errno.h>
#include <unistd.h>

int kv_tls_send_all(gnutls_session_t s, const void *buf, size_t len)
{
        const char *p = buf;
        while (len) {
                ssize_t n = gnutls_record_send(s, p, len);
                if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                        continue;
                if (n < 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* read_one: 1 byte read, 0 retry, -1 error or end. */
static int recv_line(int (*read_one)(void *src, char *c), void *src, char *line, size_t size)
{
        size_t len = 0;
        while (len + 1 < size) {
                int r = read_one(src, line + len);
                if (r == 0)
                        continue;
                if (r < 0)
                        return -EIO;
                if (line[len] == '\n') {
                        line[len] = 0;
                        return 0;
                }
                len++;
        }
        return -E2BIG;
}

static int tls_one(void *src, char *c)
{
        ssize_t n = gnutls_record_recv((gnutls_session_t)src, c, 1);
        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                return 0;
        return n == 1 ? 1 : -1;
}

static int fd_one(void *src, char *c)
{
        ssize_t n = read(*(int *)src, c, 1);
        if (n < 0 && errno == EINTR)
                return 0;
        return n == 1 ? 1 : -1;
}

int kv_tls_recv_line(gnutls_session_t s, char *line, size_t size)
{
        return recv_line(tls_one, s, line, size);
}

int kv_fd_recv_line(int fd, char *line, size_t size)
{
        return recv_line(fd_one, &fd, line, size);
}
