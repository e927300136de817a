/* Least privilege for the launcher itself: no_new_privs, capability drop, seccomp allowlist.
 * (QEMU confines itself with -sandbox; see docs/launcher-supervisor.md.) */
#pragma once
#include "error.h"

int sandbox_no_new_privs(kv_error *err);
/* Empties the effective, permitted, inheritable, ambient and bounding sets: once QEMU runs, the
 * launcher only talks over its own sockets, signals its own child and writes files it owns. */
int sandbox_drop_capabilities(kv_error *err);
/* Installs the allowlist; anything else fails with EPERM. */
int sandbox_seccomp(kv_error *err);
