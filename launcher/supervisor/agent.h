/* agent: virt-launcher's guest agent client on the supervisor's loop. It talks to Debian's (or any)
 * qemu-ga over the virtio-serial channel org.qemu.guest_agent.0 (a socketpair QEMU's chardev holds the
 * other end of): guest-sync-delimited until the agent answers, then guest-info, guest-get-osinfo and
 * guest-network-get-interfaces, which fill the status (AgentConnected, guestOSInfo, interface names);
 * every command has a deadline on a loop timer and nothing blocks. See docs/guest-agent.md. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "loop.h"
#include "status.h"

typedef struct agent agent;
/* ret: the command's "return" (borrowed), or NULL with why ("timed out", the agent's error). */
typedef void (*agent_cb)(const cJSON *ret, const char *why, void *data);

/* fd: the launcher's end of the channel (owned). publish(ctx) is called after each status change. */
int agent_new(loop *l, int fd, status *st, void (*publish)(void *ctx), void *ctx, agent **out);
void agent_free(agent *a);
bool agent_connected(const agent *a);
/* Counts the agent's connections: a new value means a new (or restarted) agent in the guest. */
unsigned agent_generation(const agent *a);
/* Queues `execute` with args (consumed; may be NULL); cb runs once with the reply, or the failure (the
 * agent not connected included). Returns a handle for agent_cancel. */
unsigned agent_command(agent *a, const char *execute, cJSON *args, int timeout_ms, agent_cb cb, void *data);
/* Forgets a queued or running command: its callback will not run. */
void agent_cancel(agent *a, unsigned handle);
