/* qemu-argv-fs: virtiofs filesystems (vhost-user-fs-pci on a vhost-user chardev, tag = the filesystem's
 * name as KubeVirt) and virtiofsd's argv. vhost-user needs the guest RAM shared with the daemon: the
 * memory backend is memfd share=on whenever a filesystem is present (add_memory in qemu-argv.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "jfield.h"
#include "json.h"
#include "macro.h"
#include "qemu-argv-internal.h"
#include "virtiofs.h"

char *virtiofs_socket_path(const char *run_dir, const vmi_filesystem *fs)
{
        char *path = NULL;
        return asprintf(&path, "%s/virtiofs-%s.sock", run_dir, fs->name) < 0 ? NULL : path;
}

int virtiofsd_argv(const char *binary, const vmi *v, const vmi_filesystem *fs, const char *run_dir,
                   strv *argv, kv_error *err)
{
        const char *dir = v->volumes[fs->volume].prep.path;
        _cleanup_free_ char *sock = virtiofs_socket_path(run_dir, fs);
        if (!dir)
                return kv_error_set(err, EINVAL, "filesystem \"%s\" not prepared (vmi_prepare not run)",
                                    fs->name);
        /* sandbox=chroot: the daemon confines itself to the shared directory without needing the mount, pid
         * and net namespaces (CAP_SYS_ADMIN) a Pod does not have */
        if (!sock || strv_push(argv, binary) < 0 || strv_pushf(argv, "--socket-path=%s", sock) < 0 ||
            strv_push(argv, "-o") < 0 || strv_pushf(argv, "source=%s", dir) < 0 ||
            strv_push(argv, "-o") < 0 || strv_push(argv, "sandbox=chroot") < 0 || strv_push(argv, "-o") < 0 ||
            strv_push(argv, "cache=auto") < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int argv_add_filesystems(argv_builder *b)
{
        for (size_t i = 0; i < b->v->n_filesystems; i++) {
                const vmi_filesystem *fs = &b->v->filesystems[i];
                char chardev[80], id[80], port[16];
                snprintf(chardev, sizeof(chardev), "fs-%s", fs->name);
                snprintf(id, sizeof(id), "ua-fs-%s", fs->name);
                _cleanup_free_ char *sock = virtiofs_socket_path(b->o->run_dir, fs);
                _cleanup_free_ char *esc = sock ? qemu_opt_escape(sock) : NULL;
                if (!esc)
                        return kv_error_set(b->err, ENOMEM, "out of memory");
                JF_TRY(push_optf(b->argv, "-chardev", b->err, "socket,id=%s,path=%s", chardev, esc));
                cJSON *dev =
                    jstr(jstr(jstr(jstr(jstr(cJSON_CreateObject(), "driver", "vhost-user-fs-pci"), "id", id),
                                   "bus", builder_take_port(b, port)),
                              "chardev", chardev),
                         "tag", fs->name);
                JF_TRY(push_json(&b->devs, "-device", dev, b->err));
        }
        return 0;
}
