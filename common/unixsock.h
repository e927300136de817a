/* Unix stream sockets of the run directory: listening with a fixed mode, connecting, and the
 * SO_PEERCRED check that guards the control socket. */
#pragma once
#include <stdbool.h>

#include "error.h"

/* Bind and listen on path with the given mode (umask-independent); a stale socket file is replaced.
 * Returns the CLOEXEC listening fd or <0. */
int unix_listen(const char *path, unsigned mode, kv_error *err);
/* Connect (blocking), returning a CLOEXEC fd or <0. */
int unix_connect(const char *path, kv_error *err);
/* Same uid as this process, or root. */
bool unix_peer_allowed(int fd);
