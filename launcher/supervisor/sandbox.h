/* Least privilege for the launcher itself: no_new_privs, capability drop, seccomp allowlist.
 * (QEMU confines itself with -sandbox; see docs/launcher-supervisor.md.) */
#pragma once
#include <stdbool.h>

#include "caps.h" /* caps_drop_all: the capability step */
#include "error.h"

int sandbox_no_new_privs(kv_error *err);
/* Installs the allowlist; anything else fails with EPERM. allow_inet: also TCP/IP sockets (a VMI with
 * tcpSocket or httpGet probes); otherwise the launcher cannot open a network socket at all. */
int sandbox_seccomp(bool allow_inet, kv_error *err);
