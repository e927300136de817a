/* libqmp: a QMP client that plugs into an epoll loop (non-blocking) and also offers blocking calls for
 * tools and tests. Layers: transport (line framing, fd passing), protocol (greeting, negotiation, id
 * matching, timeouts), events (a queue, waiters for a matching event).
 *
 * CONTRACT: the launcher codes against these declarations; extend, do not break them. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct qmp qmp;

/* A reply to an asynchronous command. Exactly one of (ret, err) is set: ret is the "return" member on
 * success (owned by libqmp, valid during the call); err is set on a QMP error reply (err->msg =
 * "Class: desc", qmp_error_class(err) gives the class), on timeout (-ETIMEDOUT) or on disconnect. */
typedef void (*qmp_reply_cb)(qmp *q, const cJSON *ret, const kv_error *err, void *userdata);
/* An event message ({"event":..,"data":..,"timestamp":..}), owned by libqmp, valid during the call. */
typedef void (*qmp_event_cb)(qmp *q, const cJSON *event, void *userdata);

/* --- connection ------------------------------------------------------------------------------------- */
int qmp_connect_unix(qmp **out, const char *path, int timeout_ms, kv_error *err);
int qmp_connect_tcp(qmp **out, const char *host, int port, int timeout_ms, kv_error *err);
/* Adopt an already connected stream socket (e.g. one end of socketpair() given to QEMU). */
int qmp_new_from_fd(qmp **out, int fd, kv_error *err);
void qmp_free(qmp *q); /* closes the socket; pending callbacks get -ECANCELED */

/* --- blocking API (tools, tests) ------------------------------------------------------------------ */
/* Read the greeting and send qmp_capabilities. The greeting is kept (qmp_greeting). */
int qmp_handshake(qmp *q, int timeout_ms, kv_error *err);
const cJSON *qmp_greeting(const qmp *q);
/* Execute one command; args may be NULL and is consumed. On success *ret (if ret != NULL) receives a
 * detached copy of the "return" value that the caller frees with cJSON_Delete. QMP error reply: returns
 * -EREMOTEIO with err->msg "Class: desc". Timeout: -ETIMEDOUT. Events arriving meanwhile are queued. */
int qmp_execute(qmp *q, const char *command, cJSON *args, int timeout_ms, cJSON **ret, kv_error *err);
/* Same, passing fd with SCM_RIGHTS alongside the command (for getfd / add-fd). */
int qmp_execute_with_fd(qmp *q, const char *command, cJSON *args, int fd, int timeout_ms, cJSON **ret,
                        kv_error *err);
/* Wait for an event named `name` (whose data member `key` equals string `value`, when key != NULL),
 * first looking in the queue. The matched event is removed from the queue and returned (caller frees). */
int qmp_wait_event(qmp *q, const char *name, const char *key, const char *value, int timeout_ms,
                   cJSON **event, kv_error *err);
/* Pop the oldest queued event (caller frees), or NULL. */
cJSON *qmp_event_pop(qmp *q);

/* --- non-blocking API (epoll loops) --------------------------------------------------------------- */
int qmp_fd(const qmp *q);
/* EPOLLIN, plus EPOLLOUT while output is pending. Re-arm the fd in epoll with this after each call. */
uint32_t qmp_wanted_events(const qmp *q);
/* Handle readiness: read, parse, dispatch replies and events. Returns <0 when the connection is dead
 * (EOF: -ECONNRESET or -EPIPE; protocol violation: -EPROTO); all pending callbacks have then been called. */
int qmp_handle_io(qmp *q, uint32_t epoll_events, kv_error *err);
/* Milliseconds until the earliest pending command times out, or -1. Call qmp_handle_timeouts after. */
int qmp_next_timeout_ms(const qmp *q);
void qmp_handle_timeouts(qmp *q);
/* Queue a command; returns its id (>0) or <0 on error. args consumed. fd >= 0 is sent with SCM_RIGHTS. */
int64_t qmp_send(qmp *q, const char *command, cJSON *args, int fd, int timeout_ms, qmp_reply_cb cb,
                 void *userdata, kv_error *err);
/* When set, events are delivered to cb instead of the queue. */
void qmp_set_event_handler(qmp *q, qmp_event_cb cb, void *userdata);

/* --- extensions (beyond the first contract) ------------------------------------------------------- */
/* Timeouts: timeout_ms <= 0 means "no timeout" for commands, handshakes and event waits. For
 * qmp_connect_*, timeout_ms > 0 also retries while the socket does not exist or refuses connections
 * (QEMU still starting); timeout_ms <= 0 makes a single attempt. */

/* Non-blocking handshake: once the greeting is in, send qmp_capabilities; cb gets its reply (or the
 * error: -EPROTO if the peer did not greet, -ETIMEDOUT, ...). Returns the command id (>0) or <0. */
int64_t qmp_handshake_async(qmp *q, int timeout_ms, qmp_reply_cb cb, void *userdata, kv_error *err);

/* Called once: with the matched event (owned by libqmp, valid during the call), or with err set
 * (-ETIMEDOUT, disconnect, -ECANCELED from qmp_free). */
typedef void (*qmp_event_wait_cb)(qmp *q, const cJSON *event, const kv_error *err, void *userdata);
/* Non-blocking qmp_wait_event: register before (or right after) sending the command that causes the
 * event. A matching event already queued is delivered at once, from inside this call. A matched event
 * is consumed (not queued); the qmp_set_event_handler callback still sees every event. name == NULL
 * matches any event (also for qmp_wait_event). Returns a waiter id (>0) or <0. */
int64_t qmp_wait_event_async(qmp *q, const char *name, const char *key, const char *value, int timeout_ms,
                             qmp_event_wait_cb cb, void *userdata, kv_error *err);
/* Forget a pending command or event waiter by id, without calling its callback (a late reply is
 * ignored). Returns 0, or -ENOENT. */
int qmp_cancel(qmp *q, int64_t id);

/* Largest accepted message in bytes (default 16 MiB); a longer line kills the connection with -E2BIG. */
void qmp_set_max_line(qmp *q, size_t max_line);
/* The "desc" part of an error reply reported through err, or err->msg for other errors. */
const char *qmp_error_desc(const kv_error *err);
/* 0 while the connection is usable, else the negative errno that ended it. */
int qmp_connection_error(const qmp *q);
/* Number of events dropped because the queue (4096 events) was full and nobody popped it. */
uint64_t qmp_events_dropped(const qmp *q);

/* Blocking calls first spin on the non-blocking socket for up to usec microseconds (default
 * QMP_DEFAULT_BUSY_POLL_US), then sleep in poll(). 0 turns spinning off. The non-blocking API never spins. */
#define QMP_DEFAULT_BUSY_POLL_US 500
void qmp_set_busy_poll(qmp *q, int usec);

/* The QMP error class of the last error reply reported through err ("GenericError", "CommandNotFound",
 * "DeviceNotFound", ...), or NULL. */
const char *qmp_error_class(const kv_error *err);
