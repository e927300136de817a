/* Tap devices (/dev/net/tun): created persistent and owned by QEMU's uid/gid, so QEMU opens them by name
 * without CAP_NET_ADMIN. Tun/tap has no rtnetlink "create", hence the ioctl. */
#pragma once

#include "error.h"

#include <sys/types.h>

/* queues > 1: a multi-queue tap (IFF_MULTI_QUEUE), which QEMU must then open with as many queues. */
int tap_create(const char *name, uid_t owner, gid_t group, unsigned queues, kv_error *err);
