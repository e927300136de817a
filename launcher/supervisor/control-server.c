/* Control socket server: accept (SO_PEERCRED), JSON-line framing, dispatch through ctl_handlers,
 * buffered non-blocking replies, and the switch of a connection to the raw console stream. */
#include "control-server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console.h"
#include "log.h"
#include "macro.h"
#include "unixsock.h"

static void drop_passed_fds(ctl_conn *c)
{
        for (int i = 0; i < CTL_PASSED_FDS; i++)
                if (c->passed_fd[i] >= 0)
                        close(TAKE_FD(c->passed_fd[i]));
}

static void conn_close(supervisor *s, ctl_conn *c)
{
        for (ctl_conn **p = &s->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        loop_remove(s->loop, c->src);
        close(c->fd);
        drop_passed_fds(c);
        free(c->in);
        free(c->out);
        free(c);
}

ctl_conn *ctl_conn_find(supervisor *s, uint64_t serial)
{
        for (ctl_conn *c = s->conns; c; c = c->next)
                if (c->serial == serial)
                        return c;
        return NULL;
}

int ctl_take_fd(ctl_request *req, int i)
{
        ctl_conn *c = ctl_conn_find(req->s, req->conn_serial);
        return c && i >= 0 && i < CTL_PASSED_FDS ? TAKE_FD(c->passed_fd[i]) : -1;
}

/* recv() that also takes up to CTL_PASSED_FDS SCM_RIGHTS descriptors (virt-handler's hotplug-attach: the
 * image and its directory); the ones of a later message replace those of an earlier one not yet taken. */
static ssize_t conn_recv(ctl_conn *c, char *buf, size_t size)
{
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(int) * CTL_PASSED_FDS)];
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = size};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        for (struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
                if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                drop_passed_fds(c);
                for (size_t i = 0; i < nfd; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(fd));
                        if (i < CTL_PASSED_FDS)
                                c->passed_fd[i] = fd;
                        else
                                close(fd);
                }
        }
        return n;
}

static void conn_update_events(supervisor *s, ctl_conn *c)
{
        uint32_t ev = (c->read_eof ? 0 : EPOLLIN) | (c->out_len ? EPOLLOUT : 0);
        loop_modify(s->loop, c->src, ev);
}

/* Returns false when the connection was closed. */
static bool conn_flush(supervisor *s, ctl_conn *c)
{
        while (c->out_len) {
                ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        conn_close(s, c);
                        return false;
                }
                memmove(c->out, c->out + n, c->out_len - (size_t)n);
                c->out_len -= (size_t)n;
        }
        conn_update_events(s, c);
        return true;
}

void ctl_conn_send(supervisor *s, ctl_conn *c, const char *data, size_t len)
{
        if (c->out_len + len > CTL_OUT_MAX) {
                log_warning("control client %llu is not reading; dropping it", (unsigned long long)c->serial);
                conn_close(s, c);
                return;
        }
        if (c->out_len + len > c->out_cap) {
                size_t cap = c->out_cap ? c->out_cap : 4096;
                while (cap < c->out_len + len)
                        cap *= 2;
                char *p = realloc(c->out, cap);
                if (!p) {
                        conn_close(s, c);
                        return;
                }
                c->out = p;
                c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
        conn_flush(s, c);
}

static void conn_send_json(supervisor *s, ctl_conn *c, cJSON *msg)
{
        _cleanup_free_ char *text = cJSON_PrintUnformatted(msg);
        cJSON_Delete(msg);
        if (!text) {
                conn_close(s, c);
                return;
        }
        size_t len = strlen(text);
        text[len] = '\n'; /* sent by length: the NUL becomes the line end */
        ctl_conn_send(s, c, text, len + 1);
}

static void request_free(ctl_request *req)
{
        supervisor_trim_soon(req->s);
        cJSON_Delete(req->id);
        free(req);
}

static cJSON *reply_new(ctl_request *req, bool ok)
{
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddBoolToObject(msg, "ok", ok);
        if (req->id)
                cJSON_AddItemToObject(msg, "id", cJSON_Duplicate(req->id, true));
        return msg;
}

void ctl_reply_ok(ctl_request *req, cJSON *result)
{
        ctl_conn *c = ctl_conn_find(req->s, req->conn_serial);
        if (c) {
                cJSON *msg = reply_new(req, true);
                for (cJSON *it = result ? result->child : NULL; it;) {
                        cJSON *next = it->next;
                        cJSON_AddItemToObject(msg, it->string, cJSON_DetachItemViaPointer(result, it));
                        it = next;
                }
                conn_send_json(req->s, c, msg);
        }
        cJSON_Delete(result);
        request_free(req);
}

void ctl_reply_error(ctl_request *req, const char *fmt, ...)
{
        ctl_conn *c = ctl_conn_find(req->s, req->conn_serial);
        if (c) {
                char text[1024];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(text, sizeof(text), fmt, ap);
                va_end(ap);
                cJSON *msg = reply_new(req, false);
                cJSON_AddStringToObject(msg, "error", text);
                conn_send_json(req->s, c, msg);
        }
        request_free(req);
}

static void forward_done(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        ctl_request *req = userdata;
        if (err) {
                ctl_reply_error(req, "%s", err->msg);
                return;
        }
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "return", ret ? cJSON_Duplicate(ret, true) : cJSON_CreateObject());
        ctl_reply_ok(req, result);
}

int ctl_forward_qmp(ctl_request *req, const char *command, cJSON *qmp_args)
{
        if (!req->s->qmp) {
                cJSON_Delete(qmp_args);
                ctl_reply_error(req, "QMP is not connected");
                return 0;
        }
        kv_error err = {0};
        int64_t id = qmp_send(req->s->qmp, command, qmp_args, -1, 10000, forward_done, req, &err);
        if (id < 0) {
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        supervisor_qmp_rearm(req->s);
        return 0;
}

int ctl_attach_console(ctl_request *req)
{
        supervisor *s = req->s;
        if (s->serial_fd < 0) {
                ctl_reply_error(req, "no serial console (autoattachSerialConsole is false, or QEMU is gone)");
                return 0;
        }
        uint64_t serial = req->conn_serial;
        cJSON *result = cJSON_CreateObject();
        cJSON *info = cJSON_AddObjectToObject(result, "console");
        cJSON_AddNumberToObject(info, "backlog", (double)s->backlog.len);
        ctl_reply_ok(req, result);
        ctl_conn *c = ctl_conn_find(s, serial);
        if (!c)
                return 0;
        c->console = true;
        const char *a, *b;
        size_t alen, blen;
        ring_spans(&s->backlog, &a, &alen, &b, &blen);
        ctl_conn_send(s, c, a, alen);
        if (blen && (c = ctl_conn_find(s, serial)))
                ctl_conn_send(s, c, b, blen);
        return 0;
}

static ctl_handler command_lookup(const char *name)
{
        int v = ctl_verb_from_name(name);
        return v < 0 ? NULL : ctl_handlers[v];
}

static void dispatch_line(supervisor *s, ctl_conn *c, const char *line)
{
        ctl_request *req = calloc(1, sizeof(*req));
        if (!req)
                return;
        *req = (ctl_request){.s = s, .conn_serial = c->serial};
        cJSON *msg = cJSON_Parse(line);
        if (!cJSON_IsObject(msg)) {
                cJSON_Delete(msg);
                ctl_reply_error(req, "request is not a JSON object");
                return;
        }
        cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
        if (id)
                req->id = cJSON_Duplicate(id, true);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "cmd"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(msg, "args");
        ctl_handler handler = name ? command_lookup(name) : NULL;
        if (!name)
                ctl_reply_error(req, "request has no \"cmd\" string");
        else if (!handler)
                ctl_reply_error(req, "unknown command \"%s\" (try \"help\")", name);
        else if (args && !cJSON_IsObject(args))
                ctl_reply_error(req, "\"args\" must be an object");
        else {
                req->args = args;
                log_info("control: %s", name);
                handler(req); /* answers now or later; args is not kept */
        }
        cJSON_Delete(msg);
}

/* Consume complete lines; stop early when the connection switched to console mode. */
static void process_lines(supervisor *s, uint64_t serial)
{
        ctl_conn *c;
        while ((c = ctl_conn_find(s, serial)) && !c->console) {
                char *nl = memchr(c->in, '\n', c->in_len);
                if (!nl)
                        return;
                *nl = '\0';
                size_t used = (size_t)(nl - c->in) + 1;
                _cleanup_free_ char *line = strdup(c->in);
                memmove(c->in, c->in + used, c->in_len - used);
                c->in_len -= used;
                if (line)
                        dispatch_line(s, c, line);
                if ((c = ctl_conn_find(s, serial))) /* the ones not taken by the request */
                        drop_passed_fds(c);
        }
        if (c && c->console && c->in_len) { /* typed-ahead bytes after the console request */
                console_input(s, c->in, c->in_len);
                c->in_len = 0;
        }
}

static void conn_on_readable(supervisor *s, ctl_conn *c)
{
        char buf[4096];
        ssize_t n = conn_recv(c, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                /* Half-close: a console client whose stdin ended still wants the output. */
                if (n == 0 && (c->console || c->out_len)) {
                        c->read_eof = true;
                        conn_update_events(s, c);
                } else
                        conn_close(s, c);
                return;
        }
        if (c->console) {
                console_input(s, buf, (size_t)n);
                return;
        }
        if (c->in_len + (size_t)n > CTL_LINE_MAX) {
                log_warning("control client %llu sent a line over %d bytes; dropping it",
                            (unsigned long long)c->serial, CTL_LINE_MAX);
                conn_close(s, c);
                return;
        }
        memcpy(c->in + c->in_len, buf, (size_t)n);
        c->in_len += (size_t)n;
        process_lines(s, c->serial);
}

static void conn_on_event(loop_source *src, int fd, uint32_t events, void *data)
{
        ctl_conn *c = data;
        supervisor *s = c->owner;
        uint64_t serial = c->serial;
        if (events & EPOLLOUT && !conn_flush(s, c))
                return;
        if (events & EPOLLIN)
                conn_on_readable(s, c);
        else if (events & (EPOLLHUP | EPOLLERR) && (c = ctl_conn_find(s, serial)))
                conn_close(s, c);
}

static void control_on_accept(loop_source *src, int fd, uint32_t events, void *data)
{
        supervisor *s = data;
        _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return;
        if (!unix_peer_allowed(cfd)) {
                log_warning("control: refused a client with another uid");
                return;
        }
        ctl_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return;
        c->in = malloc(CTL_LINE_MAX);
        if (!c->in || loop_add(s->loop, cfd, EPOLLIN, conn_on_event, c, &c->src) < 0) {
                free(c->in);
                free(c);
                return;
        }
        c->owner = s;
        for (int i = 0; i < CTL_PASSED_FDS; i++)
                c->passed_fd[i] = -1;
        c->fd = TAKE_FD(cfd);
        c->serial = ++s->next_conn_serial;
        c->next = s->conns;
        s->conns = c;
}

int control_start(supervisor *s)
{
        for (int v = 0; v < CTL_VERB__MAX; v++)
                if (!ctl_handlers[v]) { /* a verb added to ctl-protocol.h without its handler */
                        log_error("control: no handler for \"%s\"", ctl_verb_name(v));
                        return -ENOSYS;
                }
        return loop_add(s->loop, s->control_fd, EPOLLIN, control_on_accept, s, NULL);
}

void control_stop(supervisor *s)
{
        while (s->conns) { /* one last non-blocking flush so final replies get out */
                ctl_conn *c = s->conns;
                if (conn_flush(s, c))
                        conn_close(s, c);
        }
}
