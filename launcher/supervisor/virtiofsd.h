/* virtiofsd: one daemon per spec.domain.devices.filesystems[] entry, a child of the launcher started before
 * QEMU (which connects to its socket at start-up), killed with the launcher (PR_SET_PDEATHSIG) and stopped on
 * exit. Its output goes to <run>/virtiofsd-<name>.log. */
#pragma once

#include <sys/types.h>

#include "error.h"
#include "vmi.h"

typedef struct virtiofsd_set {
        pid_t *pids;
        size_t n;
} virtiofsd_set;

/* Start every filesystem's daemon and wait for its socket. A failure names
 * spec.domain.devices.filesystems[i] (-EINVAL when the host cannot run virtiofsd). binary NULL: the default.
 */
int virtiofsd_start_all(const vmi *v, const char *run_dir, const char *binary, virtiofsd_set *set,
                        kv_error *err);
/* SIGTERM, then reap, each daemon the supervisor has not reaped already. */
void virtiofsd_stop_all(virtiofsd_set *set);
