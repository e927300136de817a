/* Least privilege for the launcher itself: no_new_privs, capability drop, seccomp allowlist.
 * (QEMU confines itself with -sandbox; see docs/launcher-supervisor.md.) */
#pragma once
#include "caps.h" /* caps_drop_all: the capability step */
#include "error.h"

int sandbox_no_new_privs(kv_error *err);
/* Installs the allowlist; anything else fails with EPERM. */
int sandbox_seccomp(kv_error *err);
