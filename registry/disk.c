/* qemu-img probing and conversion; atomic install with a temporary name and rename(2). */
#include "disk.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

static void drain(int fd, char *buf, size_t cap, size_t *len)
{
        for (;;) {
                char tmp[4096];
                ssize_t n = read(fd, tmp, sizeof(tmp));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                size_t c = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;
                memcpy(buf + *len, tmp, c);
                *len += c;
                buf[*len] = '\0';
        }
}

int kvreg_run(char *const argv[], char *out, size_t cap, kv_error *err)
{
        int po[2], pe[2];
        if (pipe2(po, O_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "pipe");
        if (pipe2(pe, O_CLOEXEC) < 0) {
                close(po[0]);
                close(po[1]);
                return kv_error_errno(err, errno, "pipe");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, po[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
        pid_t pid;
        int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(po[1]);
        close(pe[1]);
        if (r != 0) {
                close(po[0]);
                close(pe[0]);
                return kv_error_errno(err, r, "run %s", argv[0]);
        }
        char ebuf[1024] = "", obuf_small[1];
        size_t olen = 0, elen = 0;
        /* stdout first then stderr: qemu-img writes little to either, pipes do not fill. */
        drain(po[0], out ? out : obuf_small, out ? cap : 1, &olen);
        drain(pe[0], ebuf, sizeof(ebuf), &elen);
        close(po[0]);
        close(pe[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        while (elen > 0 && ebuf[elen - 1] == '\n')
                ebuf[--elen] = '\0';
        return kv_error_set(err, EIO, "%s failed: %s", argv[0], ebuf[0] ? ebuf : "non-zero exit");
}

static int probe(const char *path, char fmt[32], int64_t *vsize, kv_error *err)
{
        char out[16384] = "";
        char *argv[] = {"qemu-img", "info", "--output=json", (char *)path, NULL};
        int r = kvreg_run(argv, out, sizeof(out), err);
        if (r < 0)
                return kv_error_set(err, EINVAL, "the disk file is not an image qemu-img can read (%s)",
                                    err->msg);
        cJSON *j = cJSON_Parse(out);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "virtual-size");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "backing-filename");
        if (!cJSON_IsString(f) || !cJSON_IsNumber(v))
                r = kv_error_set(err, EINVAL, "qemu-img info: unexpected output");
        else if (b)
                r = kv_error_set(err, EINVAL, "the disk image has a backing file, which is refused");
        else {
                snprintf(fmt, 32, "%s", f->valuestring);
                *vsize = (int64_t)v->valuedouble;
        }
        cJSON_Delete(j);
        return r;
}

static bool format_supported(const char *fmt)
{
        static const char *const ok[] = {"raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx"};
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                if (!strcmp(fmt, ok[i]))
                        return true;
        return false;
}

static int rename_into_place(const char *tmp, const char *dest_dir, kv_error *err)
{
        _cleanup_free_ char *final = NULL;
        if (asprintf(&final, "%s/%s", dest_dir, KVREG_DISK_NAME) < 0)
                return -ENOMEM;
        if (rename(tmp, final) < 0)
                return kv_error_errno(err, errno, "rename %s to %s", tmp, final);
        _cleanup_close_ int dfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                fsync(dfd);
        return 0;
}

int kvreg_disk_install(const char *src, const char *dest_dir, int64_t claim, int64_t *virtual_size,
                       kv_error *err)
{
        char fmt[32];
        int r = probe(src, fmt, virtual_size, err);
        if (r < 0)
                return r;
        if (!format_supported(fmt))
                return kv_error_set(err, EINVAL, "disk image format \"%s\" is not supported", fmt);
        if (claim > 0 && *virtual_size > claim)
                return kv_error_set(
                    err, ENOSPC,
                    "the image's virtual size (%lld bytes) is larger than the claim (%lld bytes)",
                    (long long)*virtual_size, (long long)claim);
        if (!strcmp(fmt, "raw"))
                return rename_into_place(src, dest_dir, err);
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s/.%s.converting", dest_dir, KVREG_DISK_NAME) < 0)
                return -ENOMEM;
        char *argv[] = {"qemu-img", "convert",   "-f",        fmt, "-O", "raw",
                        "-t",       "writeback", (char *)src, tmp, NULL};
        r = kvreg_run(argv, NULL, 0, err);
        if (r < 0) {
                unlink(tmp);
                err->code = strstr(err->msg, "No space") ? ENOSPC : EINVAL;
                return kv_error_wrap(err, "convert"); /* err->msg cannot be an argument of its own */
        }
        unlink(src);
        r = rename_into_place(tmp, dest_dir, err);
        if (r < 0)
                unlink(tmp);
        return r;
}

int kvreg_disk_blank(const char *dest_dir, int64_t size, kv_error *err)
{
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s/.%s.blank", dest_dir, KVREG_DISK_NAME) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", tmp);
        if (ftruncate(fd, size) < 0) {
                int e = errno;
                unlink(tmp);
                return kv_error_errno(err, e, "size %s", tmp);
        }
        return rename_into_place(tmp, dest_dir, err);
}
