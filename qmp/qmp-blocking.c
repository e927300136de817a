/* libqmp blocking API for tools and tests: the same non-blocking machinery driven by poll() until the
 * awaited callback has run. */
#include "qmp-internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>

/* Result slot filled by the callbacks below. */
typedef struct qmp_wait {
        bool done;
        int r;
        cJSON *json;
        kv_error err;
} qmp_wait;

static void wait_fail(qmp_wait *w, const kv_error *err)
{
        w->err = *err;
        w->r = -(err->code > 0 ? err->code : EIO);
}

/* Serves both qmp_reply_cb and qmp_event_wait_cb: they share one signature. */
static void on_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        qmp_wait *w = userdata;
        w->done = true;
        if (err)
                wait_fail(w, err);
        else if (ret && !(w->json = cJSON_Duplicate(ret, true)))
                w->r = kv_error_set(&w->err, ENOMEM, "out of memory copying a QMP reply");
}

static uint32_t poll_to_epoll(short revents)
{
        return (revents & POLLIN ? EPOLLIN : 0) | (revents & POLLOUT ? EPOLLOUT : 0) |
               (revents & POLLHUP ? EPOLLHUP : 0) | (revents & POLLERR ? EPOLLERR : 0);
}

static int64_t now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Before sleeping in poll(), try the non-blocking socket for a moment: QEMU usually answers within a few
 * hundred microseconds, and waking a sleeping thread costs tens of microseconds on these machines
 * (docs/qmp.md "Latency"). Bounded by busy_poll_us, so a slow command costs that much CPU at most. */
static void busy_poll(qmp *q, const qmp_wait *w)
{
        if (q->busy_poll_us <= 0 || q->out_head)
                return;
        int64_t end = now_us() + q->busy_poll_us;
        while (!w->done && !q->dead && now_us() < end)
                qmp_handle_io(q, EPOLLIN, NULL);
}

/* Drive the connection until w->done; the callback always runs (reply, timeout or disconnect). */
static int run_until(qmp *q, qmp_wait *w, int64_t id, kv_error *err)
{
        busy_poll(q, w);
        while (!w->done) {
                struct pollfd p = {.fd = q->fd, .events = POLLIN | (q->out_head ? POLLOUT : 0)};
                int n = poll(&p, 1, qmp_next_timeout_ms(q));
                if (n < 0 && errno != EINTR) {
                        int e = errno;
                        qmp_cancel(q, id);
                        return kv_error_errno(err, e, "poll on QMP socket");
                }
                if (n > 0)
                        qmp_handle_io(q, poll_to_epoll(p.revents), NULL);
                qmp_handle_timeouts(q);
        }
        if (w->r < 0 && err)
                *err = w->err;
        return w->r;
}

static int finish(qmp_wait *w, cJSON **out)
{
        if (out && w->r >= 0)
                *out = w->json;
        else
                cJSON_Delete(w->json);
        return w->r;
}

int qmp_handshake(qmp *q, int timeout_ms, kv_error *err)
{
        qmp_wait w = {0};
        int64_t id = qmp_handshake_async(q, timeout_ms, on_reply, &w, err);
        if (id < 0)
                return (int)id;
        int r = run_until(q, &w, id, err);
        finish(&w, NULL);
        return r < 0 ? r : 0;
}

int qmp_execute_with_fd(qmp *q, const char *command, cJSON *args, int fd, int timeout_ms, cJSON **ret,
                        kv_error *err)
{
        qmp_wait w = {0};
        int64_t id = qmp_send(q, command, args, fd, timeout_ms, on_reply, &w, err);
        if (id < 0)
                return (int)id;
        run_until(q, &w, id, err);
        return finish(&w, ret);
}

int qmp_execute(qmp *q, const char *command, cJSON *args, int timeout_ms, cJSON **ret, kv_error *err)
{
        return qmp_execute_with_fd(q, command, args, -1, timeout_ms, ret, err);
}

int qmp_wait_event(qmp *q, const char *name, const char *key, const char *value, int timeout_ms,
                   cJSON **event, kv_error *err)
{
        qmp_wait w = {0};
        int64_t id = qmp_wait_event_async(q, name, key, value, timeout_ms, on_reply, &w, err);
        if (id < 0)
                return (int)id;
        run_until(q, &w, id, err);
        return finish(&w, event);
}

void qmp_set_busy_poll(qmp *q, int usec)
{
        q->busy_poll_us = usec > 0 ? usec : 0;
}
