/* reporter-sandbox: virt-launcher-reporter's seccomp allowlist, installed once its setup is done
 * (docs/security.md "The reporter's filter"). */
#pragma once
#include "error.h"

/* Loads the filter. A call outside the list kills the process by SIGSYS after one JSON log line on
 * stderr naming the call ("forbidden system call NAME"); a few calls libraries only probe fail instead. */
int reporter_sandbox_apply(kv_error *err);
