/* libqmp internals shared by its layers: the connection object, pending commands, event waiters. */
#pragma once

#include <time.h>

#include "qmp-codec.h"
#include "qmp-framer.h"
#include "qmp.h"

#define QMP_EVENT_QUEUE_MAX 4096

/* One unit of output; fd (owned, a dup of the caller's) rides on its first byte. */
typedef struct qmp_out {
        struct qmp_out *next;
        char *data;
        size_t len, off;
        int fd;
} qmp_out;

/* A sent command (or the handshake while it waits for the greeting) expecting its reply. */
typedef struct qmp_pending {
        struct qmp_pending *next;
        int64_t id;          /* the API's id (qmp_send's return value), never reused */
        int64_t wire_id;     /* the "id" member on the wire: short, reused (qmp-wireid.c) */
        int64_t deadline_ms; /* monotonic; 0 = none */
        int timeout_ms;
        bool awaiting_greeting;
        qmp_reply_cb cb;
        void *userdata;
        char command[64]; /* for error messages */
} qmp_pending;

typedef struct qmp_waiter {
        struct qmp_waiter *next;
        int64_t id;
        int64_t deadline_ms;
        int timeout_ms;
        char *name, *key, *value;
        qmp_event_wait_cb cb;
        void *userdata;
} qmp_waiter;

struct qmp {
        int fd;
        qmp_framer in;
        qmp_out *out_head, *out_tail;
        qmp_pending *pending;
        qmp_waiter *waiters;
        cJSON *greeting;
        cJSON *queue; /* a JSON array used as a FIFO: append is O(1), detaching the head too */
        int queue_len;
        uint64_t dropped;
        int64_t next_id;
        /* Wire ids 0..63 in use: by a pending command, or by a cancelled/expired one whose late reply may
         * still come (orphan). Beyond 64 in flight, ids count up from 64 (64 + wire_next_big) and are never
         * reused. */
        uint64_t wire_busy, wire_orphan;
        int64_t wire_next_big;
        int busy_poll_us; /* blocking calls spin this long on a non-blocking read before poll() */
        int dead;         /* 0, or the negative errno that ended the connection */
        bool failed_all;  /* every callback has been told about `dead` */
        kv_error dead_err;
        qmp_event_cb event_cb;
        void *event_userdata;
};

static inline int64_t qmp_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t qmp_deadline(int timeout_ms)
{
        return timeout_ms > 0 ? qmp_now_ms() + timeout_ms : 0;
}

/* transport (qmp-transport.c) */
int qmp_transport_queue(qmp *q, char *data, size_t len, int fd, kv_error *err); /* takes data */
int qmp_transport_flush(qmp *q);
int qmp_transport_read(qmp *q); /* reads and dispatches what is complete */
int qmp_mark_dead(qmp *q, const kv_error *why);
void qmp_transport_free(qmp *q);

/* wire ids (qmp-wireid.c) */
int64_t qmp_wire_id_alloc(qmp *q);
void qmp_wire_id_release(qmp *q, int64_t wire_id);     /* its reply came, or it was never sent */
void qmp_wire_id_orphan(qmp *q, int64_t wire_id);      /* sent, but nobody waits for the reply any more */
bool qmp_wire_id_take_orphan(qmp *q, int64_t wire_id); /* a late reply: true (and released) if orphaned */

/* protocol (qmp-protocol.c) */
void qmp_dispatch_line(qmp *q, const char *line, size_t len);
void qmp_fail_all(qmp *q);

/* events (qmp-events.c) */
void qmp_dispatch_event(qmp *q, qmp_msg *msg);
void qmp_waiters_fail(qmp *q, const kv_error *err);
int qmp_waiters_expire(qmp *q, int64_t now); /* 1 when one expired (lists may have changed) */
int64_t qmp_waiters_next_deadline(const qmp *q);
int qmp_waiter_cancel(qmp *q, int64_t id); /* 0 or -ENOENT */
void qmp_queue_free(qmp *q);
