/* The launcher's end of the status reporter: in a Pod with in-cluster credentials it spawns
 * virt-launcher-reporter (before the sandbox goes on) and hands it every status document; the reporter
 * in turn watches the VMI and talks back only through the control socket. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The helper's file name; it is looked up next to the launcher's own executable. */
#define REPORTER_BINARY "virt-launcher-reporter"

/* POD_NAME, POD_NAMESPACE and KUBERNETES_SERVICE_HOST/PORT are all set. */
bool status_channel_wanted(void);
/* Spawns the reporter when status_channel_wanted(); 0 (nothing to do) otherwise. vmi_name and control_socket
 * (both or neither): the reporter also watches that VMI and forwards its changes to the control socket
 * (docs/cluster-live-ops.md). Must run before the seccomp filter (it forks and execs). Registers
 * status_channel_finish() with atexit(). */
int status_channel_start(const char *vmi_name, const char *control_socket, kv_error *err);
/* Queues one status document (not NUL-terminated, len bytes) for the reporter without blocking; a
 * document the reporter cannot take yet is kept and replaced by the next one. No-op when not started. */
void status_channel_publish(const char *text, size_t len);
/* Delivers the last document, closes the channel and waits (bounded) for the reporter to patch it and
 * exit, so the final phase reaches the Pod. Idempotent. */
void status_channel_finish(void);
