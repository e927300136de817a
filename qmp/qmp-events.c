/* libqmp events layer: the bounded event queue, the event handler hook and waiters for a matching
 * event (name + one data key), e.g. device_del -> DEVICE_DELETED with data.device == id. */
#include "qmp-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void waiter_free(qmp_waiter *w)
{
        free(w->name);
        free(w->key);
        free(w->value);
        free(w);
}

static qmp_waiter *waiter_unlink_if(qmp *q, const cJSON *event, int64_t id)
{
        for (qmp_waiter **pw = &q->waiters; *pw; pw = &(*pw)->next) {
                qmp_waiter *w = *pw;
                bool hit = event ? qmp_event_matches(event, w->name, w->key, w->value) : w->id == id;
                if (hit) {
                        *pw = w->next;
                        return w;
                }
        }
        return NULL;
}

static void waiter_finish(qmp *q, qmp_waiter *w, const cJSON *event, const kv_error *err)
{
        if (w->cb)
                w->cb(q, event, err, w->userdata);
        waiter_free(w);
}

static void queue_push(qmp *q, cJSON *event)
{
        if (!q->queue && !(q->queue = cJSON_CreateArray())) {
                cJSON_Delete(event);
                return;
        }
        if (q->queue_len >= QMP_EVENT_QUEUE_MAX) {
                /* Nobody is popping: keep the newest events, count what is lost. */
                cJSON_Delete(cJSON_DetachItemFromArray(q->queue, 0));
                q->queue_len--;
                q->dropped++;
        }
        cJSON_AddItemToArray(q->queue, event);
        q->queue_len++;
}

void qmp_dispatch_event(qmp *q, qmp_msg *msg)
{
        if (q->event_cb)
                q->event_cb(q, msg->json, q->event_userdata);
        qmp_waiter *w = waiter_unlink_if(q, msg->json, 0);
        if (w)
                waiter_finish(q, w, msg->json, NULL);
        else if (!q->event_cb)
                queue_push(q, qmp_msg_take(msg));
}

/* Remove and return the oldest queued event matching name/key/value (name NULL: any). */
static cJSON *queue_take(qmp *q, const char *name, const char *key, const char *value)
{
        int i = 0;
        for (cJSON *ev = q->queue ? q->queue->child : NULL; ev; ev = ev->next, i++) {
                if (qmp_event_matches(ev, name, key, value)) {
                        q->queue_len--;
                        return cJSON_DetachItemViaPointer(q->queue, ev);
                }
        }
        return NULL;
}

cJSON *qmp_event_pop(qmp *q)
{
        return queue_take(q, NULL, NULL, NULL);
}

static qmp_waiter *waiter_new(qmp *q, const char *name, const char *key, const char *value, int timeout_ms)
{
        qmp_waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        w->id = ++q->next_id;
        w->timeout_ms = timeout_ms;
        w->deadline_ms = qmp_deadline(timeout_ms);
        if ((name && !(w->name = strdup(name))) || (key && !(w->key = strdup(key))) ||
            (value && !(w->value = strdup(value)))) {
                waiter_free(w);
                return NULL;
        }
        return w;
}

int64_t qmp_wait_event_async(qmp *q, const char *name, const char *key, const char *value, int timeout_ms,
                             qmp_event_wait_cb cb, void *userdata, kv_error *err)
{
        cJSON *queued = queue_take(q, name, key, value);
        if (!queued && q->dead) {
                if (err)
                        *err = q->dead_err;
                return q->dead;
        }
        qmp_waiter *w = waiter_new(q, name, key, value, timeout_ms);
        if (!w) {
                cJSON_Delete(queued);
                return kv_error_set(err, ENOMEM, "out of memory waiting for QMP event %s",
                                    name ? name : "(any)");
        }
        w->cb = cb;
        w->userdata = userdata;
        int64_t id = w->id;
        if (queued) {
                waiter_finish(q, w, queued, NULL);
                cJSON_Delete(queued);
                return id;
        }
        w->next = q->waiters;
        q->waiters = w;
        return id;
}

int qmp_waiter_cancel(qmp *q, int64_t id)
{
        qmp_waiter *w = waiter_unlink_if(q, NULL, id);
        if (!w)
                return -ENOENT;
        waiter_free(w);
        return 0;
}

void qmp_waiters_fail(qmp *q, const kv_error *err)
{
        while (q->waiters) {
                qmp_waiter *w = q->waiters;
                q->waiters = w->next;
                waiter_finish(q, w, NULL, err);
        }
}

int qmp_waiters_expire(qmp *q, int64_t now)
{
        for (qmp_waiter *w = q->waiters; w; w = w->next) {
                if (!w->deadline_ms || w->deadline_ms > now)
                        continue;
                waiter_unlink_if(q, NULL, w->id);
                kv_error e;
                kv_error_set(&e, ETIMEDOUT, "no QMP event %s%s%s%s%s within %d ms",
                             w->name ? w->name : "(any)", w->key ? " with " : "", w->key ? w->key : "",
                             w->key ? "=" : "", w->key && w->value ? w->value : "", w->timeout_ms);
                waiter_finish(q, w, NULL, &e);
                return 1;
        }
        return 0;
}

int64_t qmp_waiters_next_deadline(const qmp *q)
{
        int64_t first = 0;
        for (const qmp_waiter *w = q->waiters; w; w = w->next)
                if (w->deadline_ms && (!first || w->deadline_ms < first))
                        first = w->deadline_ms;
        return first;
}

void qmp_set_event_handler(qmp *q, qmp_event_cb cb, void *userdata)
{
        q->event_cb = cb;
        q->event_userdata = userdata;
}

uint64_t qmp_events_dropped(const qmp *q)
{
        return q->dropped;
}

void qmp_queue_free(qmp *q)
{
        cJSON_Delete(q->queue);
        q->queue = NULL;
        q->queue_len = 0;
}
