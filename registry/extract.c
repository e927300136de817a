/* libarchive reading and the sparse writer (all-zero 64 KiB chunks become holes). */
#include "extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

#define CHUNK (64 * 1024)

static void archive_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

int kvreg_path_check(const char *path, kv_error *err)
{
        if (path[0] == '/')
                return kv_error_set(err, EINVAL, "archive entry \"%.300s\": absolute path", path);
        for (const char *p = path; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return kv_error_set(err, EINVAL, "archive entry \"%.300s\": \"..\" in path", path);
                p += n;
                while (*p == '/')
                        p++;
        }
        return 0;
}

/* A relative link target that climbs above the image root from the link's directory escapes it. */
static bool link_escapes(const char *linkpath, const char *target)
{
        int depth = 0;
        for (const char *p = linkpath; (p = strchr(p, '/')); p++)
                depth++;
        for (const char *p = target; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        depth--;
                else if (n > 0 && !(n == 1 && p[0] == '.'))
                        depth++;
                if (depth < 0)
                        return true;
                p += n;
                while (*p == '/')
                        p++;
        }
        return false;
}

static bool chunk_is_zero(const char *p, size_t n)
{
        static const char zero[CHUNK];
        return memcmp(p, zero, n) == 0;
}

/* Writes the current entry's data at its offsets, leaving holes for zero chunks. */
static int write_sparse(struct archive *a, int fd, int64_t limit, int64_t *size, kv_error *err)
{
        const void *buf;
        size_t len;
        la_int64_t off;
        int64_t end = 0;
        int r;
        while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
                if (limit > 0 && off + (int64_t)len > limit)
                        return kv_error_set(err, ENOSPC, "disk file is larger than the claim (%lld bytes)",
                                            (long long)limit);
                for (size_t done = 0; done < len;) {
                        size_t n = len - done < CHUNK ? len - done : CHUNK;
                        const char *p = (const char *)buf + done;
                        if (!chunk_is_zero(p, n)) {
                                ssize_t w = pwrite(fd, p, n, off + done);
                                if (w < 0 && errno == EINTR)
                                        continue;
                                if (w < 0)
                                        return kv_error_errno(err, errno, "write disk file");
                                n = w;
                        }
                        done += n;
                }
                if (off + (int64_t)len > end)
                        end = off + len;
        }
        if (r != ARCHIVE_EOF)
                return kv_error_set(err, EINVAL, "reading archive data: %s", archive_error_string(a));
        if (ftruncate(fd, end) < 0)
                return kv_error_errno(err, errno, "truncate disk file");
        *size = end;
        return 0;
}

static int write_entry(struct archive *a, kvreg_extract *x, const char *path, mode_t mode, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", path);
        int r = write_sparse(a, fd, x->limit, &x->size, err);
        if (r == 0 && fsync(fd) < 0)
                r = kv_error_errno(err, errno, "fsync %s", path);
        return r;
}

/* Files mode: the wanted file at files_dir/<path>; its directories are made here (never taken from the
 * archive), refusing any that exists as something else than a directory. */
static int write_wanted(struct archive *a, kvreg_extract *x, const char *path, kv_error *err)
{
        char out[4096];
        if ((size_t)snprintf(out, sizeof(out), "%s/%s", x->files_dir, path) >= sizeof(out))
                return kv_error_set(err, ENAMETOOLONG, "%s: path too long", path);
        for (char *p = out + strlen(x->files_dir) + 1; (p = strchr(p, '/')); *p++ = '/') {
                struct stat st;
                *p = '\0';
                if (mkdir(out, 0755) < 0 && errno != EEXIST)
                        return kv_error_errno(err, errno, "create %s", out);
                if (lstat(out, &st) < 0 || !S_ISDIR(st.st_mode))
                        return kv_error_set(err, ENOTDIR, "%s is not a directory", out);
        }
        return write_entry(a, x, out, 0644, err);
}

/* The index of path among the wanted files, or -1. */
static int wanted_index(const kvreg_extract *x, const char *path)
{
        for (size_t i = 0; i < x->n_files; i++)
                if (!strcmp(x->files[i], path))
                        return (int)i;
        return -1;
}

static const char *regular_required(const kvreg_extract *x)
{
        return x->files ? "where a wanted file must be a regular file"
                        : "where the disk file must be a regular file";
}

/* Checks one tar entry and, when it is the disk file, writes it. */
static int entry_handle(struct archive *a, struct archive_entry *ent, kvreg_extract *x, kv_error *err)
{
        const char *path = archive_entry_pathname(ent);
        if (!path)
                return kv_error_set(err, EINVAL, "archive entry without a name");
        int r = kvreg_path_check(path, err);
        if (r < 0)
                return r;
        while (path[0] == '.' && path[1] == '/')
                path += 2;
        int want = x->files ? wanted_index(x, path) : -1;
        bool in_disk = (!x->files && !strncmp(path, "disk/", 5) && path[5]) || want >= 0;
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        const char *hard = archive_entry_hardlink(ent);
        const char *sym = archive_entry_symlink(ent);
        mode_t type = archive_entry_filetype(ent);
        if (hard && (kvreg_path_check(hard, err) < 0 || in_disk))
                return kv_error_set(err, EINVAL, "archive entry \"%.300s\": hard link to \"%.300s\" %s", path,
                                    hard, in_disk ? regular_required(x) : "leaves the image");
        if (type == AE_IFLNK && (in_disk || !sym || link_escapes(path, sym)))
                return kv_error_set(err, EINVAL, "archive entry \"%.300s\": symlink to \"%.300s\" %s", path,
                                    sym ? sym : "",
                                    in_disk ? regular_required(x) : "points outside the image");
        if (type == AE_IFCHR || type == AE_IFBLK)
                return kv_error_set(err, EINVAL, "archive entry \"%.300s\": device node refused", path);
        if (!in_disk || type != AE_IFREG || hard || !strncmp(base, ".wh.", 4))
                return 0;
        if (want >= 0) {
                x->files_found |= 1u << want;
                return write_wanted(a, x, path, err);
        }
        if (x->found[0] && strcmp(x->found, path))
                return kv_error_set(err, EINVAL,
                                    "the image has more than one disk file under disk/: %s and %s", x->found,
                                    path);
        snprintf(x->found, sizeof(x->found), "%s", path);
        return write_entry(a, x, x->out_path, 0600, err);
}

static struct archive *reader_new(bool raw)
{
        struct archive *a = archive_read_new();
        if (!a)
                return NULL;
        archive_read_support_filter_all(a);
        if (raw)
                archive_read_support_format_raw(a);
        else
                archive_read_support_format_tar(a);
        return a;
}

int kvreg_extract_layer(int fd, kvreg_extract *x, kv_error *err)
{
        _cleanup_(archive_freep) struct archive *a = reader_new(false);
        if (!a)
                return kv_error_set(err, ENOMEM, "archive_read_new");
        if (archive_read_open_fd(a, fd, CHUNK) != ARCHIVE_OK)
                return kv_error_set(err, EINVAL, "layer is not a tar archive: %s", archive_error_string(a));
        struct archive_entry *ent;
        int r;
        while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
                int rc = entry_handle(a, ent, x, err);
                if (rc < 0)
                        return rc;
        }
        if (r != ARCHIVE_EOF)
                return kv_error_set(err, EINVAL, "layer is not a valid tar archive: %s",
                                    archive_error_string(a));
        return 0;
}

int kvreg_extract_raw(int fd, kvreg_extract *x, kv_error *err)
{
        _cleanup_(archive_freep) struct archive *a = reader_new(true);
        if (!a)
                return kv_error_set(err, ENOMEM, "archive_read_new");
        struct archive_entry *ent;
        if (archive_read_open_fd(a, fd, CHUNK) != ARCHIVE_OK ||
            archive_read_next_header(a, &ent) != ARCHIVE_OK)
                return kv_error_set(err, EINVAL, "cannot read the source: %s", archive_error_string(a));
        snprintf(x->found, sizeof(x->found), "data");
        return write_entry(a, x, x->out_path, 0600, err);
}
