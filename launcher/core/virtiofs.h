/* virtiofs: spec.domain.devices.filesystems[] shared with the guest by one virtiofsd per filesystem (QEMU's
 * C daemon, Debian's /usr/lib/qemu/virtiofsd), over a vhost-user socket in the run dir. Pure: the paths and
 * the daemon's argv; the supervisor runs it. */
#pragma once

#include "error.h"
#include "strv.h"
#include "vmi.h"

#define VIRTIOFSD_DEFAULT "/usr/lib/qemu/virtiofsd"

/* <run_dir>/virtiofs-<name>.sock (malloc'd, NULL on OOM). */
char *virtiofs_socket_path(const char *run_dir, const vmi_filesystem *fs);
/* virtiofsd's argv for filesystem fs (its volume prepared: prep.path is the shared directory). */
int virtiofsd_argv(const char *binary, const vmi *v, const vmi_filesystem *fs, const char *run_dir,
                   strv *argv, kv_error *err);
