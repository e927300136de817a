/* control-link: virt-launcher-reporter's connection to the launcher's control socket. Non-blocking, driven
 * by the reporter's poll loop: reconnects with backoff, queues request lines, splits reply lines. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ctl_link {
        const char *path;
        int fd; /* -1 while not connected */
        char *out;
        size_t out_len;
        char *in;
        size_t in_len;
        bool discarding; /* inside a reply line too long to keep */
        unsigned failures;
        int64_t due_ms; /* next connection attempt */
} ctl_link;

/* Called once per reply line (NULL when it is not JSON). */
typedef void (*ctl_link_reply_fn)(const cJSON *reply, void *ud);

void ctl_link_init(ctl_link *l, const char *path);
void ctl_link_free(ctl_link *l);
/* Connects when due; returns ms until the next attempt, or -1 (connected or nothing due). */
long ctl_link_tick(ctl_link *l, int64_t now_ms);
bool ctl_link_up(const ctl_link *l);
/* The poll events the link wants on l->fd. */
short ctl_link_events(const ctl_link *l);
/* Queues one request (a newline is added). 0, or <0 when the link is down. */
int ctl_link_send(ctl_link *l, const char *line);
/* Reads/writes after poll; replies go to fn. Returns false when the link dropped (a reconnect is then
 * scheduled; requests in flight are lost). */
bool ctl_link_io(ctl_link *l, short revents, int64_t now_ms, ctl_link_reply_fn fn, void *ud);
