/* The guest agent client (agent.h): one command at a time on the channel, each with a loop timer as its
 * deadline; a missed deadline means the agent is gone, and the client syncs again with a backoff. */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-proto.h"
#include "fdio.h"
#include "log.h"
#include "macro.h"

#define SYNC_TIMEOUT_MS 2000
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 4000
#define INFO_TIMEOUT_MS 10000
#define POLL_MS                                                                                              \
        10000 /* guest interfaces, users, host name, time zone: as often as KubeVirt's virt-handler asks */
#define FSINFO_EVERY                                                                                         \
        6 /* polls: the filesystems' usage every minute (each change rewrites the Pod's status) */

/* The guest agent info commands (agent_info_apply), each with its agent as the callback's data. */
static const char *const info_commands[] = {"guest-get-host-name", "guest-get-timezone", "guest-get-users",
                                            "guest-get-fsinfo"};
typedef struct info_req {
        struct agent *a;
        const char *command;
} info_req;

typedef struct agent_cmd {
        struct agent_cmd *next;
        unsigned handle;
        char *line;
        int timeout_ms;
        agent_cb cb;
        void *data;
} agent_cmd;

enum agent_state { AGENT_DOWN, AGENT_SYNCING, AGENT_UP, AGENT_CLOSED };

struct agent {
        loop *loop;
        int fd;
        loop_source *src;
        status *st;
        void (*publish)(void *ctx);
        void *ctx;
        agent_framer framer;
        enum agent_state state;
        uint64_t sync_id;
        int retry_ms;
        loop_timer sync_timer; /* the next sync, or the deadline of the current one */
        loop_timer cmd_timer;  /* the deadline of the running command (head) */
        loop_timer poll_timer;
        agent_cmd *head, *tail;
        bool running;
        unsigned next_handle;
        unsigned generation; /* connections so far */
        unsigned polls;
        info_req info[sizeof(info_commands) / sizeof(info_commands[0]) + 1]; /* + guest-info */
};

static void agent_sync(agent *a);
static void run_next(agent *a);

static void publish(agent *a)
{
        a->publish(a->ctx);
}

/* Non-blocking and whole, or not at all: a channel nobody drains (no agent in the guest) fills up, and a
 * partial command is harmless since the next sync's 0xFF resets the agent's parser. */
static int send_line(agent *a, const char *line)
{
        size_t len = strlen(line);
        ssize_t n = send(a->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        return n == (ssize_t)len ? 0 : -1;
}

static void fail_all(agent *a, const char *why)
{
        while (a->head) {
                agent_cmd *c = a->head;
                a->head = c->next;
                if (!a->head)
                        a->tail = NULL;
                if (c->cb)
                        c->cb(NULL, why, c->data);
                free(c->line);
                free(c);
        }
        a->running = false;
}

static void go_down(agent *a, const char *why)
{
        bool was_up = a->state == AGENT_UP;
        a->state = a->state == AGENT_CLOSED ? AGENT_CLOSED : AGENT_DOWN;
        loop_timer_disarm(a->loop, &a->cmd_timer);
        loop_timer_disarm(a->loop, &a->poll_timer);
        fail_all(a, "the guest agent is not connected");
        if (was_up) {
                log_warning("guest agent disconnected: %s", why);
                status_set_condition(a->st, COND_AGENT_CONNECTED, false, false, NULL, NULL);
                publish(a);
        }
}

static void on_sync_timer(loop_timer *t, void *data)
{
        agent *a = data;
        if (a->state == AGENT_SYNCING) { /* no answer: try again later, less and less often */
                a->state = AGENT_DOWN;
                loop_timer_arm(a->loop, &a->sync_timer, a->retry_ms, on_sync_timer, a);
                a->retry_ms = a->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : a->retry_ms * 2;
                return;
        }
        if (a->state == AGENT_DOWN)
                agent_sync(a);
}

static void agent_sync(agent *a)
{
        char line[128];
        a->sync_id = ((uint64_t)loop_now_ms() << 16 ^ (uint64_t)getpid()) & 0x7fffffffffffULL;
        snprintf(line, sizeof(line),
                 "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%" PRIu64 "}}\n",
                 a->sync_id);
        a->state = AGENT_SYNCING;
        send_line(a, line); /* a full channel: the deadline below tries again */
        loop_timer_arm(a->loop, &a->sync_timer, SYNC_TIMEOUT_MS, on_sync_timer, a);
}

static void on_cmd_timer(loop_timer *t, void *data)
{
        agent *a = data;
        agent_cmd *c = a->head;
        if (!c || !a->running)
                return;
        a->head = c->next;
        if (!a->head)
                a->tail = NULL;
        a->running = false;
        char why[128];
        snprintf(why, sizeof(why), "the guest agent did not answer within %d ms", c->timeout_ms);
        if (c->cb)
                c->cb(NULL, why, c->data);
        free(c->line);
        free(c);
        /* Its reply may still come and would be taken for the next one's: sync again first. */
        go_down(a, why);
        loop_timer_arm(a->loop, &a->sync_timer, 0, on_sync_timer, a);
}

static void run_next(agent *a)
{
        if (a->running || !a->head || a->state != AGENT_UP)
                return;
        agent_cmd *c = a->head;
        a->running = true;
        if (send_line(a, c->line) < 0) {
                c->timeout_ms = 0; /* fails at once through the deadline path */
                loop_timer_arm(a->loop, &a->cmd_timer, 0, on_cmd_timer, a);
                return;
        }
        loop_timer_arm(a->loop, &a->cmd_timer, c->timeout_ms, on_cmd_timer, a);
}

unsigned agent_command(agent *a, const char *execute, cJSON *args, int timeout_ms, agent_cb cb, void *data)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "execute", execute);
        if (args)
                cJSON_AddItemToObject(o, "arguments", args);
        _cleanup_free_ char *json = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        agent_cmd *c = calloc(1, sizeof(*c));
        if (!c || !json || asprintf(&c->line, "%s\n", json) < 0 || a->state != AGENT_UP) {
                free(c);
                cb(NULL, json && c ? "the guest agent is not connected" : "out of memory", data);
                return 0;
        }
        c->handle = ++a->next_handle ? a->next_handle : ++a->next_handle;
        c->timeout_ms = timeout_ms, c->cb = cb, c->data = data;
        if (a->tail)
                a->tail->next = c;
        else
                a->head = c;
        a->tail = c;
        run_next(a);
        return c->handle;
}

void agent_cancel(agent *a, unsigned handle)
{
        for (agent_cmd **p = &a->head; handle && *p; p = &(*p)->next) {
                agent_cmd *c = *p;
                if (c->handle != handle)
                        continue;
                if (c == a->head && a->running) { /* in flight: its reply must still be consumed */
                        c->cb = NULL;
                        return;
                }
                *p = c->next;
                if (a->tail == c) {
                        a->tail = NULL;
                        for (agent_cmd *t = a->head; t; t = t->next)
                                a->tail = t;
                }
                free(c->line);
                free(c);
                return;
        }
}

/* ---- what the launcher asks by itself ----------------------------------------------------------- */

static void on_interfaces(const cJSON *ret, const char *why, void *data)
{
        agent *a = data;
        if (ret && agent_interfaces_apply(a->st, ret))
                publish(a);
}

static void on_osinfo(const cJSON *ret, const char *why, void *data)
{
        agent *a = data;
        cJSON *info = agent_osinfo_to_status(ret);
        if (!info)
                return;
        status_set_json(&a->st->guest_os_info, info);
        publish(a);
}

static void on_agent_info(const cJSON *ret, const char *why, void *data)
{
        info_req *q = data;
        if (ret && agent_info_apply(&q->a->st->guest_agent_info, q->command, ret))
                publish(q->a);
}

static void on_info(const cJSON *ret, const char *why, void *data)
{
        const char *version = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ret, "version"));
        if (version)
                log_info("guest agent version %s", version);
        on_agent_info(ret, why, data);
}

static void on_poll_timer(loop_timer *t, void *data)
{
        agent *a = data;
        agent_command(a, "guest-network-get-interfaces", NULL, INFO_TIMEOUT_MS, on_interfaces, a);
        for (size_t i = 0; i < ARRAY_SIZE(info_commands); i++) {
                bool fs = !strcmp(info_commands[i], "guest-get-fsinfo");
                if (!fs || a->polls % FSINFO_EVERY == 0)
                        agent_command(a, info_commands[i], NULL, INFO_TIMEOUT_MS, on_agent_info, &a->info[i]);
        }
        a->polls++;
        loop_timer_arm(a->loop, &a->poll_timer, POLL_MS, on_poll_timer, a);
}

static void went_up(agent *a)
{
        a->state = AGENT_UP;
        a->generation++;
        a->retry_ms = RETRY_MIN_MS;
        loop_timer_disarm(a->loop, &a->sync_timer);
        log_info("guest agent connected");
        status_set_condition(a->st, COND_AGENT_CONNECTED, true, true, "", "");
        publish(a);
        a->polls = 0;
        agent_command(a, "guest-info", NULL, INFO_TIMEOUT_MS, on_info, &a->info[ARRAY_SIZE(info_commands)]);
        agent_command(a, "guest-get-osinfo", NULL, INFO_TIMEOUT_MS, on_osinfo, a);
        on_poll_timer(&a->poll_timer, a);
}

static void on_line(char *text, void *data)
{
        agent *a = data;
        agent_reply r;
        if (agent_reply_parse(text, &r) < 0)
                return;
        if (a->state == AGENT_SYNCING || a->state == AGENT_DOWN) { /* a late answer to the last sync counts */
                if (a->sync_id && cJSON_IsNumber(r.ret) && (uint64_t)r.ret->valuedouble == a->sync_id)
                        went_up(a);
        } else if (a->state == AGENT_UP && a->running && a->head) {
                agent_cmd *c = a->head;
                a->head = c->next;
                if (!a->head)
                        a->tail = NULL;
                a->running = false;
                loop_timer_disarm(a->loop, &a->cmd_timer);
                if (c->cb)
                        c->cb(r.error[0] ? NULL : r.ret, r.error[0] ? r.error : NULL, c->data);
                free(c->line);
                free(c);
                run_next(a);
        }
        agent_reply_fini(&r);
}

static void on_io(loop_source *src, int fd, uint32_t events, void *data)
{
        agent *a = data;
        char buf[4096];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n > 0) {
                        agent_framer_feed(&a->framer, buf, (size_t)n, on_line, a);
                        continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                break; /* EOF or error: QEMU closed the channel (it is exiting) */
        }
        loop_remove(a->loop, a->src);
        a->src = NULL;
        a->state = AGENT_CLOSED;
        go_down(a, "the channel closed");
        loop_timer_disarm(a->loop, &a->sync_timer);
}

int agent_new(loop *l, int fd, status *st, void (*publish_cb)(void *ctx), void *ctx, agent **out)
{
        agent *a = calloc(1, sizeof(*a));
        if (!a) {
                close(fd);
                return -ENOMEM;
        }
        *a = (agent){
            .loop = l, .fd = fd, .st = st, .publish = publish_cb, .ctx = ctx, .retry_ms = RETRY_MIN_MS};
        for (size_t i = 0; i < ARRAY_SIZE(a->info); i++)
                a->info[i] = (info_req){a, i < ARRAY_SIZE(info_commands) ? info_commands[i] : "guest-info"};
        fd_set_nonblock(fd);
        int r = loop_add(l, fd, EPOLLIN, on_io, a, &a->src);
        if (r < 0) {
                close(fd);
                free(a);
                return r;
        }
        loop_timer_arm(l, &a->sync_timer, 0, on_sync_timer, a);
        *out = a;
        return 0;
}

void agent_free(agent *a)
{
        if (!a)
                return;
        loop_timer_disarm(a->loop, &a->sync_timer);
        loop_timer_disarm(a->loop, &a->cmd_timer);
        loop_timer_disarm(a->loop, &a->poll_timer);
        fail_all(a, "the launcher is stopping");
        if (a->src)
                loop_remove(a->loop, a->src);
        close(a->fd);
        free(a);
}

bool agent_connected(const agent *a)
{
        return a && a->state == AGENT_UP;
}

unsigned agent_generation(const agent *a)
{
        return a ? a->generation : 0;
}
