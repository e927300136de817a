/* Serial console: one connection to QEMU, a backlog ring, fan-out to console clients. */
#include "console.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "control-server.h"
#include "log.h"
#include "fdio.h"
#include "unixsock.h"

static void console_on_output(loop_source *src, int fd, uint32_t events, void *data)
{
        supervisor *s = data;
        char buf[16384];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) { /* QEMU closed the chardev: it is exiting */
                console_stop(s);
                return;
        }
        ring_append(&s->backlog, buf, (size_t)n);
        if (s->cfg->serial_stdout && write(STDOUT_FILENO, buf, (size_t)n) < 0 && errno != EAGAIN)
                log_warning("serial to stdout: %m");
        for (ctl_conn *c = s->conns, *next; c; c = next) {
                next = c->next; /* sending may drop c */
                if (c->console)
                        ctl_conn_send(s, c, buf, (size_t)n);
        }
}

int console_start(supervisor *s, const char *serial_path, kv_error *err)
{
        int fd = unix_connect(serial_path, err);
        if (fd < 0)
                return fd;
        fd_set_nonblock(fd);
        int r = loop_add(s->loop, fd, EPOLLIN, console_on_output, s, &s->serial_src);
        if (r < 0) {
                close(fd);
                return kv_error_errno(err, -r, "epoll add serial");
        }
        s->serial_fd = fd;
        return 0;
}

void console_stop(supervisor *s)
{
        if (s->serial_fd < 0)
                return;
        loop_remove(s->loop, s->serial_src);
        s->serial_src = NULL;
        close(s->serial_fd);
        s->serial_fd = -1;
}

void console_input(supervisor *s, const char *data, size_t len)
{
        if (s->serial_fd < 0)
                return;
        ssize_t n = write(s->serial_fd, data, len);
        if (n < 0 && errno != EAGAIN)
                log_warning("console input: %m");
        else if ((size_t)(n < 0 ? 0 : n) < len)
                log_warning("console input: dropped %zu bytes (QEMU busy)", len - (size_t)(n < 0 ? 0 : n));
}
