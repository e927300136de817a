/* credsync: spec.accessCredentials propagated by qemuGuestAgent. While the guest agent is connected, the
 * launcher keeps each listed user's ~/.ssh/authorized_keys equal to the keys of their Secrets
 * (guest-ssh-add-authorized-keys with reset) and sets the passwords a userPassword Secret holds
 * (guest-set-user-password). The Secrets are read again every CREDSYNC_POLL_MS, so a change the kubelet
 * makes to a mounted Secret reaches the guest; a reconnected agent (a rebooted guest) is synced again.
 * The outcome is KubeVirt's AccessCredentialsSynchronized condition. docs/access-credentials.md */
#pragma once
#include "agent.h"
#include "loop.h"
#include "status.h"
#include "vmi.h"
#include "volumes.h"

#define CREDSYNC_POLL_MS 2000
#define CREDSYNC_RETRY_MS 30000 /* after a failure, unless the Secrets change */

typedef struct credsync credsync;
/* v: the running spec (replaced by `apply`); *out NULL when no credential uses the guest agent. */
int credsync_start(loop *l, agent *a, status *st, const vmi *const *v, const launcher_paths *paths,
                   void (*publish)(void *ctx), void *ctx, credsync **out);
void credsync_free(credsync *c);
