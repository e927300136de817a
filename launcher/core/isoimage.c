/* isoimage: build an ISO in memory with libisofs and stream it to a file. libisofs runs a writer thread of
 * its own while the image is produced; it is joined before iso_image_write() returns. */
#include "isoimage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/types.h>
/* libisofs declares struct burn_source itself only when libburn is not in use. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

/* The directory for `path`'s parent under root (created as needed); *name points at its last component. */
static int parent_dir(IsoDir *root, char *path, IsoDir **out, const char **name)
{
        IsoDir *dir = root;
        char *slash;
        while ((slash = strchr(path, '/'))) {
                *slash = '\0';
                IsoNode *node = NULL;
                if (iso_dir_get_node(dir, path, &node) == 1) {
                        if (iso_node_get_type(node) != LIBISO_DIR)
                                return -EEXIST;
                        dir = (IsoDir *)node;
                } else if (iso_tree_add_new_dir(dir, path, &dir) < 0) {
                        return -EIO;
                }
                path = slash + 1;
        }
        *out = dir, *name = path;
        return 0;
}

static int add_file(IsoDir *root, const iso_entry *e)
{
        _cleanup_free_ char *copy = strdup(e->path);
        const char *name;
        IsoDir *dir;
        if (!copy)
                return -ENOMEM;
        int r = parent_dir(root, copy, &dir, &name);
        if (r < 0)
                return r;
        size_t n = e->len;
        unsigned char *buf = malloc(n ? n : 1);
        IsoStream *stream = NULL;
        if (!buf)
                return -ENOMEM;
        memcpy(buf, e->data, n);
        if (iso_memory_stream_new(buf, n, &stream) < 0) { /* the stream owns buf from here on */
                free(buf);
                return -ENOMEM;
        }
        /* The new file takes over our stream reference; on failure it is still ours to drop. */
        IsoFile *file = NULL;
        r = iso_tree_add_new_file(dir, name, stream, &file);
        if (r < 0) {
                iso_stream_unref(stream);
                return -EIO;
        }
        return 0;
}

static int write_source(struct burn_source *src, int fd)
{
        unsigned char buf[2048];
        for (;;) {
                int n = src->read_xt(src, buf, sizeof(buf));
                if (n < 0)
                        return -EIO;
                if (n == 0)
                        return 0;
                for (int off = 0; off < n;) {
                        ssize_t w = write(fd, buf + off, n - off);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        off += w;
                }
        }
}

static IsoWriteOpts *deterministic_opts(void)
{
        IsoWriteOpts *opts = NULL;
        static char fixed_time[] = "2000010100000000";
        if (iso_write_opts_new(&opts, 0) < 0)
                return NULL;
        iso_write_opts_set_rockridge(opts, 1);
        iso_write_opts_set_joliet(opts, 1);
        iso_write_opts_set_relaxed_vol_atts(
            opts, 1); /* keep labels as given (lower-case `cidata`, `config-2`), as cloud-init looks for */
        iso_write_opts_set_replace_mode(opts, 1, 1, 1, 1); /* 0555/0444 root:root, no host ownership leaks */
        iso_write_opts_set_replace_timestamps(opts, 2);
        iso_write_opts_set_default_timestamp(opts, 946684800);
        iso_write_opts_set_pvd_times(opts, 946684800, 946684800, 0, 0, fixed_time);
        return opts;
}

static int build_image(IsoImage **out, const char *label, const iso_entry *entries, size_t n)
{
        IsoImage *image = NULL;
        if (iso_image_new(label, &image) < 0)
                return -ENOMEM;
        iso_image_set_volume_id(image, label);
        IsoDir *root = iso_image_get_root(image);
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = add_file(root, &entries[i]);
        if (r < 0) {
                iso_image_unref(image);
                return r;
        }
        *out = image;
        return 0;
}

int iso_image_write(const char *path, const char *label, const iso_entry *entries, size_t n, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", path);
        if (iso_init() < 0)
                return kv_error_set(err, EIO, "libisofs initialisation failed");
        iso_set_msgs_severities("NEVER", "FATAL", "isoimage");
        IsoImage *image = NULL;
        IsoWriteOpts *opts = deterministic_opts();
        struct burn_source *src = NULL;
        int r = opts ? build_image(&image, label, entries, n) : -ENOMEM;
        if (r >= 0 && iso_image_create_burn_source(image, opts, &src) < 0)
                r = -EIO;
        if (r >= 0)
                r = write_source(src, fd);
        if (src) {
                src->free_data(src);
                free(src);
        }
        if (image)
                iso_image_unref(image);
        if (opts)
                iso_write_opts_free(opts);
        iso_finish();
        if (r < 0)
                return kv_error_errno(err, -r, "write ISO %s (label %s)", path, label);
        return 0;
}
