/* subprocess: run a helper program (qemu-img) with posix_spawnp — never a shell — and wait for it. */
#pragma once

#include "error.h"

/* Run argv[0] (looked up on PATH) with stdin/stdout on /dev/null; on failure err->msg holds the exit status
 * and the first line the program wrote to stderr. */
int spawn_wait(char *const argv[], kv_error *err);
