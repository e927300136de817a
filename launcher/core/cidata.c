/* cidata: build the NoCloud seed ISO in memory with libisofs and stream it to a file. libisofs runs a
 * writer thread of its own while the image is produced; it is joined before cidata_write() returns. */
#include "cidata.h"

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

static int add_file(IsoDir *root, const char *name, const char *content)
{
        size_t n = strlen(content);
        unsigned char *buf = malloc(n ? n : 1);
        IsoStream *stream = NULL;
        if (!buf)
                return -ENOMEM;
        memcpy(buf, content, n);
        if (iso_memory_stream_new(buf, n, &stream) < 0) { /* the stream owns buf from here on */
                free(buf);
                return -ENOMEM;
        }
        /* The new file takes over our stream reference; on failure it is still ours to drop. */
        IsoFile *file = NULL;
        int r = iso_tree_add_new_file(root, name, stream, &file);
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
            opts, 1); /* keep the label lower-case `cidata`, as cloud-init looks for */
        iso_write_opts_set_replace_mode(opts, 1, 1, 1, 1); /* 0555/0444 root:root, no host ownership leaks */
        iso_write_opts_set_replace_timestamps(opts, 2);
        iso_write_opts_set_default_timestamp(opts, 946684800);
        iso_write_opts_set_pvd_times(opts, 946684800, 946684800, 0, 0, fixed_time);
        return opts;
}

static int build_image(IsoImage **out, const cidata_files *f)
{
        IsoImage *image = NULL;
        if (iso_image_new("cidata", &image) < 0)
                return -ENOMEM;
        iso_image_set_volume_id(image, "cidata");
        IsoDir *root = iso_image_get_root(image);
        int r = add_file(root, "meta-data", f->meta_data);
        if (r >= 0 && f->user_data)
                r = add_file(root, "user-data", f->user_data);
        if (r >= 0 && f->network_data)
                r = add_file(root, "network-config", f->network_data);
        if (r < 0) {
                iso_image_unref(image);
                return r;
        }
        *out = image;
        return 0;
}

int cidata_write(const char *path, const cidata_files *f, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", path);
        if (iso_init() < 0)
                return kv_error_set(err, EIO, "libisofs initialisation failed");
        iso_set_msgs_severities("NEVER", "FATAL", "cidata");
        IsoImage *image = NULL;
        IsoWriteOpts *opts = deterministic_opts();
        struct burn_source *src = NULL;
        int r = opts ? build_image(&image, f) : -ENOMEM;
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
                return kv_error_errno(err, -r, "write cloud-init ISO %s", path);
        return 0;
}
