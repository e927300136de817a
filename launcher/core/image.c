/* image: reading images safely. In-image paths are resolved with realpath() and must stay inside the
 * image directory; the qcow2 header is read only to learn the format and virtual size. */
#include "image.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jfield.h"
#include "macro.h"
#include "volumes.h"

#define QCOW2_MAGIC 0x514649fbu            /* "QFI\xfb" */
#define QCOW2_INCOMPAT_DATA_FILE (1u << 2) /* external data file: would open another host file */

static bool is_image_file(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

int image_resolve_in(const char *dir, const char *rel, const char *field, char **out, kv_error *err)
{
        _cleanup_free_ char *root = realpath(dir, NULL), *joined = NULL, *real = NULL;
        if (!root)
                return kv_error_errno(err, errno, "%s: image directory %s", field, dir);
        while (*rel == '/')
                rel++;
        if (asprintf(&joined, "%s/%s", root, rel) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (!(real = realpath(joined, NULL)))
                return jf_error(err, field, "%s: %s", joined, strerror(errno));
        size_t n = strlen(root);
        if (strncmp(real, root, n) || (real[n] != '/' && strcmp(root, "/")))
                return jf_error(err, field, "%s resolves outside the image directory", joined);
        if (!is_image_file(real))
                return jf_error(err, field, "%s is not a regular file", joined);
        *out = TAKE_PTR(real);
        return 0;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

int image_find_disk(const char *dir, const char *field, char **out, kv_error *err)
{
        _cleanup_free_ char *disk_dir = NULL, *found = NULL;
        if (asprintf(&disk_dir, "%s/disk", dir) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        _cleanup_(closedirp) DIR *d = opendir(disk_dir);
        if (!d)
                return jf_error(err, field, "%s: %s (a containerDisk image keeps its disk in /disk)",
                                disk_dir, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                if (found)
                        return jf_error(err, field, "%s holds more than one file; set containerDisk.path",
                                        disk_dir);
                if (!(found = strdup(e->d_name)))
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        if (!found)
                return jf_error(err, field, "%s is empty", disk_dir);
        _cleanup_free_ char *rel = NULL;
        if (asprintf(&rel, "disk/%s", found) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        return image_resolve_in(dir, rel, field, out, err);
}

static uint32_t be32_at(const unsigned char *b, size_t off)
{
        uint32_t v;
        memcpy(&v, b + off, sizeof(v));
        return be32toh(v);
}

static uint64_t be64_at(const unsigned char *b, size_t off)
{
        uint64_t v;
        memcpy(&v, b + off, sizeof(v));
        return be64toh(v);
}

int image_detect_format(const char *path, image_format *out, uint64_t *virtual_size, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return kv_error_errno(err, errno, "open %s", path);
        unsigned char h[104] = {0};
        ssize_t n = pread(fd, h, sizeof(h), 0);
        if (n < 0)
                return kv_error_errno(err, errno, "read %s", path);
        if (n >= 72 && be32_at(h, 0) == QCOW2_MAGIC) {
                uint32_t version = be32_at(h, 4);
                if (version != 2 && version != 3)
                        return kv_error_set(err, EINVAL, "%s: unsupported qcow2 version %u", path, version);
                if (version == 3 && (n < 104 || (be64_at(h, 72) & QCOW2_INCOMPAT_DATA_FILE)))
                        return kv_error_set(err, EINVAL,
                                            "%s: qcow2 images with an external data file are refused", path);
                *out = IMG_QCOW2;
                *virtual_size = be64_at(h, 24);
                return 0;
        }
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
                return kv_error_errno(err, errno, "size of %s", path);
        *out = IMG_RAW;
        *virtual_size = (uint64_t)end;
        return 0;
}
