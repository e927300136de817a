/* control-link: the reporter's control-socket client; see control-link.h. */
#include "control-link.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "status.h"
#include "fdio.h"
#include "log.h"
#include "unixsock.h"

#define RECONNECT_BASE_MS 200
#define RECONNECT_CAP_MS 5000
#define REPLY_MAX (256 * 1024) /* replies are small (a migrationState, an apply plan) */

void ctl_link_init(ctl_link *l, const char *path)
{
        *l = (ctl_link){.path = path, .fd = -1};
}

static void drop(ctl_link *l, int64_t now_ms, const char *why)
{
        if (l->fd >= 0) {
                log_warning("control socket %s: %s; reconnecting", l->path, why);
                close(l->fd);
        }
        l->fd = -1;
        l->out_len = l->in_len = 0;
        l->discarding = false;
        l->due_ms = now_ms + kube_backoff_ms(RECONNECT_BASE_MS, RECONNECT_CAP_MS, l->failures++);
}

void ctl_link_free(ctl_link *l)
{
        if (l->fd >= 0)
                close(l->fd);
        free(l->out);
        free(l->in);
        *l = (ctl_link){.fd = -1};
}

bool ctl_link_up(const ctl_link *l)
{
        return l->fd >= 0;
}

long ctl_link_tick(ctl_link *l, int64_t now_ms)
{
        if (l->fd >= 0)
                return -1;
        if (l->due_ms > now_ms)
                return (long)(l->due_ms - now_ms);
        kv_error err = {0};
        int fd = unix_connect(l->path, &err);
        if (fd < 0 || (!l->in && !(l->in = malloc(REPLY_MAX)))) {
                if (fd >= 0)
                        close(fd);
                /* the launcher binds it a moment after starting us: only persistent failures are news */
                if (l->failures >= 5)
                        log_warning("control socket: %s", err.msg[0] ? err.msg : "out of memory");
                drop(l, now_ms, NULL);
                return (long)(l->due_ms - now_ms);
        }
        fd_set_nonblock(fd);
        l->fd = fd;
        l->failures = 0;
        log_info("connected to the launcher's control socket %s", l->path);
        return -1;
}

short ctl_link_events(const ctl_link *l)
{
        return (short)(POLLIN | (l->out_len ? POLLOUT : 0));
}

int ctl_link_send(ctl_link *l, const char *line)
{
        if (l->fd < 0)
                return -ENOTCONN;
        size_t n = strlen(line);
        char *p = realloc(l->out, l->out_len + n + 1);
        if (!p)
                return -ENOMEM;
        l->out = p;
        memcpy(l->out + l->out_len, line, n);
        l->out[l->out_len + n] = '\n';
        l->out_len += n + 1;
        return 0;
}

static bool flush(ctl_link *l, int64_t now_ms)
{
        while (l->out_len) {
                ssize_t n = send(l->fd, l->out, l->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0) {
                        drop(l, now_ms, strerror(n < 0 ? errno : EPIPE));
                        return false;
                }
                memmove(l->out, l->out + n, l->out_len - (size_t)n);
                l->out_len -= (size_t)n;
        }
        return true;
}

static void take_lines(ctl_link *l, ctl_link_reply_fn fn, void *ud)
{
        size_t off = 0;
        char *nl;
        while ((nl = memchr(l->in + off, '\n', l->in_len - off))) {
                size_t len = (size_t)(nl - (l->in + off));
                if (l->discarding)
                        l->discarding = false;
                else {
                        cJSON *reply = cJSON_ParseWithLength(l->in + off, len);
                        fn(reply, ud);
                        cJSON_Delete(reply);
                }
                off += len + 1;
        }
        memmove(l->in, l->in + off, l->in_len - off);
        l->in_len -= off;
        if (l->in_len == REPLY_MAX) { /* no newline in sight: skip to the next one */
                log_warning("control socket: a reply over %d bytes was skipped", REPLY_MAX);
                l->discarding = true;
                l->in_len = 0;
        }
}

bool ctl_link_io(ctl_link *l, short revents, int64_t now_ms, ctl_link_reply_fn fn, void *ud)
{
        if (l->fd < 0)
                return false;
        if ((revents & POLLOUT) && !flush(l, now_ms))
                return false;
        if (!(revents & (POLLIN | POLLHUP | POLLERR)))
                return true;
        for (;;) {
                ssize_t n = recv(l->fd, l->in + l->in_len, REPLY_MAX - l->in_len, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0) {
                        drop(l, now_ms, n < 0 ? strerror(errno) : "closed by the launcher");
                        return false;
                }
                l->in_len += (size_t)n;
                take_lines(l, fn, ud);
        }
}
