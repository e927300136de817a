/* qmp-seq: step functions run blocking or on the launcher's loop (see qmp-seq.h). */
#include "qmp-seq.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "qmp-helpers.h"

static void sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int lo_seq_run(qmp *q, lo_step_fn step, void *ctx, kv_error *err)
{
        cJSON *ret = NULL;
        kv_error qerr = {0};
        bool failed = false;
        for (;;) {
                lo_next n = {0};
                int r = step(ctx, ret, failed ? &qerr : NULL, &n, err);
                cJSON_Delete(TAKE_PTR(ret));
                failed = false;
                if (r <= 0)
                        return r;
                if (n.command) {
                        kv_error_clear(&qerr);
                        r = lo_exec(q, n.command, n.args, &ret, &qerr);
                        if (r >= 0 && n.event) {
                                _cleanup_json_ cJSON *ev = NULL;
                                r = qmp_wait_event(q, n.event, n.key, n.value, n.wait_ms, &ev, &qerr);
                        }
                        if (r < 0 && !n.may_fail) {
                                *err = qerr;
                                cJSON_Delete(ret);
                                return r;
                        }
                        failed = r < 0;
                } else if (n.event) {
                        _cleanup_json_ cJSON *ev = NULL;
                        kv_error ignored = {0};
                        qmp_wait_event(q, n.event, n.key, n.value, n.wait_ms, &ev, &ignored);
                } else {
                        sleep_ms(n.wait_ms);
                }
        }
}

static void seq_step(lo_seq *s, const cJSON *ret, const kv_error *qerr);

static void seq_clear(lo_seq *s)
{
        qmp *q = s->h.qmp ? s->h.qmp(s->h.ctx) : NULL;
        if (q && s->pending > 0)
                qmp_cancel(q, s->pending);
        if (q && s->waiter > 0)
                qmp_cancel(q, s->waiter);
        s->pending = s->waiter = 0;
        s->pausing = s->expecting = s->replied = false;
        cJSON_Delete(TAKE_PTR(s->reply));
        kv_error_clear(&s->qerr);
        if (s->h.loop)
                loop_timer_disarm(s->h.loop, &s->timer);
}

static void seq_end(lo_seq *s, int r, kv_error *err)
{
        seq_clear(s);
        s->done(s, r, err, s->userdata);
}

/* The reply (and the expected event, if any) are in: the step goes on, or a failure ends it. */
static void seq_go_on(lo_seq *s, const cJSON *ret)
{
        if (s->qerr.code && !s->may_fail) {
                kv_error e = s->qerr;
                seq_end(s, -e.code, &e);
                return;
        }
        kv_error e = s->qerr;
        _cleanup_json_ cJSON *kept = TAKE_PTR(s->reply);
        s->replied = false;
        kv_error_clear(&s->qerr);
        seq_step(s, e.code ? NULL : ret ? ret : kept, e.code ? &e : NULL);
}

static void seq_on_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        lo_seq *s = userdata;
        s->pending = 0;
        s->replied = true;
        if (err) {
                s->qerr = *err;
                kv_error_wrap(&s->qerr, "%s", s->command);
                if (s->waiter > 0)
                        qmp_cancel(q, s->waiter);
                s->waiter = 0;
                s->expecting = false;
        }
        if (!s->expecting) {
                seq_go_on(s, ret);
                return;
        }
        s->reply = cJSON_Duplicate(ret, true); /* until the event */
}

static void seq_on_expected(qmp *q, const cJSON *event, const kv_error *err, void *userdata)
{
        lo_seq *s = userdata;
        s->waiter = 0;
        if (!s->expecting)
                return;
        s->expecting = false;
        if (err && !s->qerr.code) {
                s->qerr = *err;
                kv_error_wrap(&s->qerr, "%s: waiting for %s", s->command, event ? "the event" : "its event");
        }
        if (s->replied)
                seq_go_on(s, NULL);
}

static void seq_on_pause(loop_timer *t, void *data)
{
        seq_step(data, NULL, NULL);
}

static void seq_on_event(qmp *q, const cJSON *event, const kv_error *err, void *userdata)
{
        lo_seq *s = userdata;
        s->waiter = 0;
        if (!s->pausing)
                return;
        s->pausing = false;
        /* The event's own callback runs inside libqmp's dispatch; the step goes on from the loop. */
        loop_timer_arm(s->h.loop, &s->timer, 0, seq_on_pause, s);
}

static void seq_pause(lo_seq *s, const lo_next *n)
{
        qmp *q = s->h.qmp(s->h.ctx);
        if (!n->event || !q) {
                loop_timer_arm(s->h.loop, &s->timer, n->wait_ms, seq_on_pause, s);
                return;
        }
        kv_error ignored = {0};
        s->pausing = true;
        int64_t id =
            qmp_wait_event_async(q, n->event, n->key, n->value, n->wait_ms, seq_on_event, s, &ignored);
        if (id < 0) {
                s->pausing = false;
                loop_timer_arm(s->h.loop, &s->timer, n->wait_ms, seq_on_pause, s);
        } else if (s->pausing) { /* not delivered from inside the call */
                s->waiter = id;
        }
}

static void seq_send(lo_seq *s, lo_next *n)
{
        kv_error err = {0};
        qmp *q = s->h.qmp(s->h.ctx);
        snprintf(s->command, sizeof(s->command), "%s", n->command);
        s->may_fail = n->may_fail;
        if (!q) {
                cJSON_Delete(n->args);
                seq_end(s, kv_error_set(&err, ENOTCONN, "%s: the QMP connection is gone", n->command), &err);
                return;
        }
        if (n->event) { /* before the command: its event may follow the reply closely */
                s->expecting = true;
                int64_t w =
                    qmp_wait_event_async(q, n->event, n->key, n->value, n->wait_ms, seq_on_expected, s, &err);
                if (w < 0) {
                        s->expecting = false;
                        cJSON_Delete(n->args);
                        seq_end(s, kv_error_wrap(&err, "%s", n->command), &err);
                        return;
                }
                if (s->expecting)
                        s->waiter = w;
        }
        int64_t id = qmp_send(q, n->command, n->args, -1, LO_CMD_TIMEOUT_MS, seq_on_reply, s, &err);
        if (id < 0) {
                seq_end(s, kv_error_wrap(&err, "%s", n->command), &err);
                return;
        }
        s->pending = id;
        s->h.rearm(s->h.ctx);
}

static void seq_step(lo_seq *s, const cJSON *ret, const kv_error *qerr)
{
        lo_next n = {0};
        kv_error err = {0};
        int r = s->step(s->ctx, ret, qerr, &n, &err);
        if (r <= 0)
                seq_end(s, r, r < 0 ? &err : NULL);
        else if (!n.command)
                seq_pause(s, &n);
        else
                seq_send(s, &n);
}

void lo_seq_start(lo_seq *s, const lo_seq_host *h, lo_step_fn step, void *ctx, lo_seq_done_fn done,
                  void *userdata)
{
        *s = (lo_seq){.h = *h, .step = step, .ctx = ctx, .done = done, .userdata = userdata};
        seq_step(s, NULL, NULL);
}

void lo_seq_abort(lo_seq *s)
{
        seq_clear(s);
}

bool lo_seq_running(const lo_seq *s)
{
        return s->pending > 0 || s->waiter > 0 || s->pausing || s->expecting || s->timer.armed;
}

enum { JOB_QUERY, JOB_QUERYING, JOB_DISMISSING };

void lo_job_seq_init(lo_job_seq *j, const char *id, int timeout_ms)
{
        *j = (lo_job_seq){.timeout_ms = timeout_ms, .deadline = kv_now_ms() + timeout_ms};
        snprintf(j->id, sizeof(j->id), "%s", id);
}

static int job_on_jobs(lo_job_seq *j, const cJSON *jobs, lo_next *n, kv_error *err)
{
        j->outcome = lo_job_outcome(jobs, j->id, &j->err);
        if (j->outcome == -ENOENT) {
                *err = j->err;
                return j->outcome;
        }
        if (j->outcome != 0) {
                j->step = JOB_DISMISSING;
                *n = (lo_next){.command = "job-dismiss",
                               .args = jstr(cJSON_CreateObject(), "id", j->id),
                               .may_fail = true};
                return LO_SEQ_NEXT;
        }
        int64_t left = j->deadline - kv_now_ms();
        if (left <= 0)
                return kv_error_set(err, ETIMEDOUT, "job %s still running after %d ms", j->id, j->timeout_ms);
        j->step = JOB_QUERY;
        /* Woken by the job's next status change; the poll is the source of truth. */
        *n = (lo_next){.wait_ms = left < 200 ? (int)left : 200,
                       .event = "JOB_STATUS_CHANGE",
                       .key = "id",
                       .value = j->id};
        return LO_SEQ_NEXT;
}

int lo_job_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        lo_job_seq *j = ctx;
        switch (j->step) {
        case JOB_QUERY:
                j->step = JOB_QUERYING;
                *n = (lo_next){.command = "query-jobs"};
                return LO_SEQ_NEXT;
        case JOB_QUERYING:
                return job_on_jobs(j, ret, n, err);
        case JOB_DISMISSING:
                break;
        }
        if (j->outcome < 0) {
                *err = j->err;
                return j->outcome;
        }
        return LO_SEQ_DONE;
}
