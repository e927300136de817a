/* libqmp protocol layer: greeting and capabilities negotiation, command ids, id-matched replies,
 * per-command timeouts and the non-blocking entry points an epoll loop calls. */
#include "qmp-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"

static int dead_error(const qmp *q, kv_error *err)
{
        if (err)
                *err = q->dead_err;
        return q->dead;
}

/* Unlink the entry whose API id (wire == false) or wire id (wire == true) is id. */
static qmp_pending *pending_unlink(qmp *q, int64_t id, bool wire)
{
        for (qmp_pending **pp = &q->pending; *pp; pp = &(*pp)->next) {
                qmp_pending *p = *pp;
                if ((wire ? p->wire_id : p->id) == id) {
                        *pp = p->next;
                        return p;
                }
        }
        return NULL;
}

static void pending_append(qmp *q, qmp_pending *p)
{
        qmp_pending **pp = &q->pending;
        while (*pp)
                pp = &(*pp)->next;
        *pp = p;
}

/* Free an unlinked entry. Its wire id is free again once its reply came (answered) or if it was never
 * sent; otherwise a late reply may still carry it, so it stays reserved until then. */
static void pending_free(qmp *q, qmp_pending *p, bool answered)
{
        if (answered || p->awaiting_greeting)
                qmp_wire_id_release(q, p->wire_id);
        else
                qmp_wire_id_orphan(q, p->wire_id);
        free(p);
}

/* Report to one pending entry and free it. The entry is already unlinked, so the callback may send. */
static void pending_finish(qmp *q, qmp_pending *p, const cJSON *ret, const kv_error *e, bool answered)
{
        if (p->cb)
                p->cb(q, ret, e, p->userdata);
        pending_free(q, p, answered);
}

void qmp_fail_all(qmp *q)
{
        if (!q->dead || q->failed_all)
                return;
        q->failed_all = true;
        while (q->pending) {
                qmp_pending *p = q->pending;
                q->pending = p->next;
                pending_finish(q, p, NULL, &q->dead_err, true); /* no reply will come */
        }
        qmp_waiters_fail(q, &q->dead_err);
}

static int encode_and_queue(qmp *q, const char *command, const cJSON *args, int64_t id, int fd, kv_error *err)
{
        size_t len;
        char *line = qmp_command_encode(command, args, id, &len);
        if (!line)
                return kv_error_set(err, ENOMEM, "out of memory encoding QMP command %s", command);
        int r = qmp_transport_queue(q, line, len, fd, err);
        if (r < 0)
                return r;
        /* Write at once: a command usually fits the socket buffer, and waiting for EPOLLOUT costs a loop
         * iteration of latency. A failure here surfaces through qmp_handle_io. */
        qmp_transport_flush(q);
        return 0;
}

static qmp_pending *pending_new(qmp *q, const char *command, int timeout_ms, qmp_reply_cb cb, void *userdata)
{
        qmp_pending *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->id = ++q->next_id;
        p->wire_id = qmp_wire_id_alloc(q);
        p->timeout_ms = timeout_ms;
        p->deadline_ms = qmp_deadline(timeout_ms);
        p->cb = cb;
        p->userdata = userdata;
        snprintf(p->command, sizeof(p->command), "%s", command);
        return p;
}

int64_t qmp_send(qmp *q, const char *command, cJSON *args, int fd, int timeout_ms, qmp_reply_cb cb,
                 void *userdata, kv_error *err)
{
        int r;
        if (q->dead) {
                cJSON_Delete(args);
                return dead_error(q, err);
        }
        if (!command || !*command || (args && !cJSON_IsObject(args))) {
                cJSON_Delete(args);
                return kv_error_set(err, EINVAL, "QMP command %s: arguments must be a JSON object",
                                    command ? command : "(null)");
        }
        qmp_pending *p = pending_new(q, command, timeout_ms, cb, userdata);
        if (!p) {
                cJSON_Delete(args);
                return kv_error_set(err, ENOMEM, "out of memory sending QMP command %s", command);
        }
        r = encode_and_queue(q, command, args, p->wire_id, fd, err);
        cJSON_Delete(args);
        if (r < 0) {
                pending_free(q, p, true);
                return r;
        }
        int64_t id = p->id;
        pending_append(q, p);
        return id;
}

int64_t qmp_handshake_async(qmp *q, int timeout_ms, qmp_reply_cb cb, void *userdata, kv_error *err)
{
        if (q->dead)
                return dead_error(q, err);
        if (q->greeting)
                return qmp_send(q, "qmp_capabilities", NULL, -1, timeout_ms, cb, userdata, err);
        qmp_pending *p = pending_new(q, "qmp_capabilities", timeout_ms, cb, userdata);
        if (!p)
                return kv_error_set(err, ENOMEM, "out of memory starting the QMP handshake");
        p->awaiting_greeting = true;
        int64_t id = p->id;
        pending_append(q, p);
        return id;
}

static void on_greeting(qmp *q, qmp_msg *msg)
{
        cJSON_Delete(q->greeting);
        q->greeting = qmp_msg_take(msg);
        for (qmp_pending *p = q->pending; p; p = p->next) {
                if (!p->awaiting_greeting)
                        continue;
                kv_error e;
                p->awaiting_greeting = false;
                if (encode_and_queue(q, "qmp_capabilities", NULL, p->wire_id, -1, &e) < 0)
                        qmp_mark_dead(q, &e);
        }
}

static void on_reply(qmp *q, qmp_msg *msg)
{
        if (msg->has_id && qmp_wire_id_take_orphan(q, msg->id)) {
                log_debug("ignoring the late QMP reply of a command that timed out or was cancelled");
                return;
        }
        qmp_pending *p = msg->has_id ? pending_unlink(q, msg->id, true) : NULL;
        if (!p) {
                log_debug("ignoring QMP reply with unknown id");
                return;
        }
        if (msg->kind == QMP_MSG_RETURN) {
                pending_finish(q, p, msg->ret, NULL, true);
                return;
        }
        kv_error e;
        kv_error_set(&e, EREMOTEIO, "%s: %s", msg->err_class, msg->err_desc);
        pending_finish(q, p, NULL, &e, true);
}

void qmp_dispatch_line(qmp *q, const char *line, size_t len)
{
        qmp_msg msg;
        kv_error e;
        if (qmp_msg_parse(line, len, &msg, &e) < 0) {
                qmp_mark_dead(q, &e);
                return;
        }
        if (!q->greeting && msg.kind != QMP_MSG_GREETING) {
                kv_error_set(&e, EPROTO, "QMP peer did not start with a greeting");
                qmp_mark_dead(q, &e);
        } else if (msg.kind == QMP_MSG_GREETING) {
                on_greeting(q, &msg);
        } else if (msg.kind == QMP_MSG_EVENT) {
                qmp_dispatch_event(q, &msg);
        } else {
                on_reply(q, &msg);
        }
        qmp_msg_done(&msg);
}

int qmp_connection_error(const qmp *q)
{
        return q->dead;
}

int qmp_fd(const qmp *q)
{
        return q->fd;
}

uint32_t qmp_wanted_events(const qmp *q)
{
        return EPOLLIN | (q->out_head ? EPOLLOUT : 0);
}

int qmp_handle_io(qmp *q, uint32_t epoll_events, kv_error *err)
{
        if (!q->dead && q->out_head)
                qmp_transport_flush(q);
        if (!q->dead && (epoll_events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
                qmp_transport_read(q);
        if (!q->dead)
                return 0;
        qmp_fail_all(q);
        return dead_error(q, err);
}

int qmp_next_timeout_ms(const qmp *q)
{
        int64_t first = qmp_waiters_next_deadline(q);
        for (const qmp_pending *p = q->pending; p; p = p->next)
                if (p->deadline_ms && (!first || p->deadline_ms < first))
                        first = p->deadline_ms;
        if (!first)
                return -1;
        int64_t left = first - qmp_now_ms();
        return left < 0 ? 0 : left > 86400000 ? 86400000 : (int)left;
}

/* Expire one command; 1 if one expired (the list may have changed under the callback). */
static int pending_expire_one(qmp *q, int64_t now)
{
        for (qmp_pending *p = q->pending; p; p = p->next) {
                if (!p->deadline_ms || p->deadline_ms > now)
                        continue;
                pending_unlink(q, p->id, false);
                kv_error e;
                kv_error_set(&e, ETIMEDOUT, "QMP command %s timed out after %d ms", p->command,
                             p->timeout_ms);
                pending_finish(q, p, NULL, &e, false);
                return 1;
        }
        return 0;
}

void qmp_handle_timeouts(qmp *q)
{
        int64_t now = qmp_now_ms();
        while (pending_expire_one(q, now) || qmp_waiters_expire(q, now))
                ;
}

int qmp_cancel(qmp *q, int64_t id)
{
        qmp_pending *p = pending_unlink(q, id, false);
        if (p) {
                pending_free(q, p, false);
                return 0;
        }
        return qmp_waiter_cancel(q, id);
}

const cJSON *qmp_greeting(const qmp *q)
{
        return q->greeting;
}

/* Error replies are reported as "Class: desc" with EREMOTEIO; other errors have no class. */
const char *qmp_error_class(const kv_error *err)
{
        static __thread char cls[64];
        if (!err || err->code != EREMOTEIO)
                return NULL;
        const char *colon = strstr(err->msg, ": ");
        if (!colon || (size_t)(colon - err->msg) >= sizeof(cls))
                return NULL;
        memcpy(cls, err->msg, (size_t)(colon - err->msg));
        cls[colon - err->msg] = '\0';
        return cls;
}

const char *qmp_error_desc(const kv_error *err)
{
        if (!err)
                return NULL;
        const char *colon = err->code == EREMOTEIO ? strstr(err->msg, ": ") : NULL;
        return colon ? colon + 2 : err->msg;
}

void qmp_set_max_line(qmp *q, size_t max_line)
{
        q->in.max_line = max_line ? max_line : QMP_DEFAULT_MAX_LINE;
}
