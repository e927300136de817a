/* helperd: the daemons virt-launcher runs beside QEMU, as libvirt does: swtpm for devices.tpm and
 * qemu-pr-helper for lun.reservation. Each listens on a socket in the run dir (QEMU_TPM_SOCKET,
 * QEMU_PR_HELPER_SOCKET) that the argv names, is started before QEMU and dies with the launcher. */
#pragma once

#include <sys/types.h>

#include "error.h"
#include "volumes.h"

typedef struct helperd_set {
        pid_t swtpm, pr_helper; /* 0 = not running */
} helperd_set;

/* Part of vmi_prepare: the helpers the VMI needs are installed (else -EINVAL naming the field and the
 * missing program), the TPM state directory (v->tpm_state_dir: <run_dir>/tpm, fresh; persistent:
 * <pvc_root>/persistent-state-for-<name>/tpm, kept) and which volumes are block devices. */
int helperd_prepare(vmi *v, const launcher_paths *p, kv_error *err);

/* Start the helpers v needs and wait until their sockets listen. On error, those started are stopped. */
int helperd_start(const vmi *v, const char *run_dir, helperd_set *set, kv_error *err);

/* SIGTERM each running helper and reap it (best effort; they also die with the launcher). */
void helperd_stop(helperd_set *set);
/* One child daemon of the launcher (a helper, virtiofsd): SIGTERM, SIGKILL if it is still there 2 s later,
 * reaped; one the supervisor already reaped is left alone. *pid becomes 0. */
void helperd_stop_pid(pid_t *pid);
