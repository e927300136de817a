/* volumes: turn each spec.volumes entry into an image file QEMU can open, and prepare firmware files.
 * Overlays and empty disks are made by `qemu-img create` (posix_spawn, argv only). The overlay is created
 * with -u and an explicit size, so qemu-img never opens the (untrusted) base image; QEMU later gets the
 * chain spelled out in JSON and never follows a backing file named in a header. */
#include "volumes.h"
#include "helperd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cidata.h"
#include "image.h"
#include "jfield.h"
#include "macro.h"
#include "subprocess.h"

#define DEFAULT_PVC_ROOT "/var/run/kvlite/pvc"
#define DEFAULT_OVMF_DIR "/usr/share/OVMF"
#define DEFAULT_SECRET_ROOT "/var/run/kvlite/secrets"
#define MAX_SECRET_BYTES (1u << 20)

static const char *field(char buf[static JPATH_MAX], size_t i, const char *rest)
{
        snprintf(buf, JPATH_MAX, "spec.volumes[%zu]%s", i, rest);
        return buf;
}

static bool is_dir(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <root>/<name> when that directory exists: 1 and *out set, else 0. */
static int image_in_root(const char *root, const char *name, char **out, kv_error *err)
{
        if (!root)
                return 0;
        if (asprintf(out, "%s/%s", root, name) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (is_dir(*out))
                return 1;
        free(*out);
        *out = NULL;
        return 0;
}

/* An image reference → its root filesystem directory (cluster: <image_root>/<name>; local: the reference
 * itself when it is an absolute directory path; last, <fallback_image_root>/<name>). */
static int resolve_image_dir(const launcher_paths *p, const char *name, const char *image, const char *fld,
                             char **out, kv_error *err)
{
        int r = image_in_root(p->image_root, name, out, err);
        if (r != 0)
                return r < 0 ? r : 0;
        if (image[0] == '/') {
                JF_TRY(jf_check_abs_path(image, fld, err));
                if (!is_dir(image))
                        return jf_error(err, fld, "\"%.200s\" is not a directory", image);
                *out = strdup(image);
                return *out ? 0 : kv_error_set(err, ENOMEM, "out of memory");
        }
        r = image_in_root(p->fallback_image_root, name, out, err);
        if (r != 0)
                return r < 0 ? r : 0;
        return jf_error(err, fld,
                        "image \"%.200s\" is not available: no %s/%s and not an absolute directory path",
                        image, p->image_root ? p->image_root : "<image-root>", name);
}

static int run_qemu_img(const launcher_paths *p, char *const args[], kv_error *err)
{
        char *argv[16] = {(char *)(p->qemu_img ? p->qemu_img : "qemu-img")};
        for (size_t i = 0; args[i] && i + 2 < ARRAY_SIZE(argv); i++)
                argv[i + 1] = args[i];
        return spawn_wait(argv, err);
}

/* A qcow2 overlay at `overlay` over the read-only `base`. */
static int create_overlay(const launcher_paths *p, const char *overlay, const char *base, image_format fmt,
                          uint64_t size, kv_error *err)
{
        char sz[32];
        snprintf(sz, sizeof(sz), "%" PRIu64, size);
        char *const args[] = {"create",
                              "-q",
                              "-f",
                              "qcow2",
                              "-u",
                              "-F",
                              (char *)image_format_name(fmt),
                              "-b",
                              (char *)base,
                              (char *)overlay,
                              sz,
                              NULL};
        return run_qemu_img(p, args, err);
}

static int set_prep(volume_prep *prep, char *path, image_format fmt, char *base, image_format base_fmt,
                    bool read_only)
{
        free(prep->path), free(prep->base);
        prep->path = path, prep->format = fmt, prep->base = base, prep->base_format = base_fmt;
        prep->read_only = read_only;
        return 0;
}

static int run_file(const launcher_paths *p, const char *prefix, const vmi_volume *vol, const char *ext,
                    char **out, kv_error *err)
{
        if (asprintf(out, "%s/%s-%s.%s", p->run_dir, prefix, vol->name, ext) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int prepare_overlay(const launcher_paths *p, vmi_volume *vol, char *base, kv_error *err)
{
        _cleanup_free_ char *b = base, *overlay = NULL;
        image_format fmt;
        uint64_t size;
        JF_TRY(image_detect_format(b, &fmt, &size, err));
        JF_TRY(run_file(p, "disk", vol, "qcow2", &overlay, err));
        JF_TRY(create_overlay(p, overlay, b, fmt, size, err));
        return set_prep(&vol->prep, TAKE_PTR(overlay), IMG_QCOW2, TAKE_PTR(b), fmt, false);
}

static int prepare_container_disk(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        char f[JPATH_MAX];
        _cleanup_free_ char *dir = NULL;
        char *disk = NULL;
        JF_TRY(resolve_image_dir(p, vol->name, vol->image, field(f, i, ".containerDisk.image"), &dir, err));
        if (vol->image_path)
                JF_TRY(
                    image_resolve_in(dir, vol->image_path, field(f, i, ".containerDisk.path"), &disk, err));
        else
                JF_TRY(image_find_disk(dir, field(f, i, ".containerDisk.image"), &disk, err));
        return prepare_overlay(p, vol, disk, err);
}

static int pvc_disk(const launcher_paths *p, const vmi_volume *vol, size_t i, const char *rest, char **out,
                    kv_error *err)
{
        char f[JPATH_MAX];
        if (asprintf(out, "%s/%s/disk.img", p->pvc_root ? p->pvc_root : DEFAULT_PVC_ROOT, vol->name) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (access(*out, vol->claim_readonly ? R_OK : R_OK | W_OK) < 0)
                return jf_error(err, field(f, i, rest), "claim \"%s\" is not available at %s: %s",
                                vol->claim_name, *out, strerror(errno));
        return 0;
}

static int prepare_pvc(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        char *path = NULL;
        JF_TRY(pvc_disk(p, vol, i, ".persistentVolumeClaim.claimName", &path, err));
        /* A writable volume the guest controls is always raw: a guest-written qcow2 header must not matter.
         */
        return set_prep(&vol->prep, path, IMG_RAW, NULL, IMG_RAW, vol->claim_readonly);
}

static int prepare_ephemeral(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        _cleanup_free_ char *base = NULL, *overlay = NULL;
        struct stat st;
        JF_TRY(pvc_disk(p, vol, i, ".ephemeral.persistentVolumeClaim.claimName", &base, err));
        if (stat(base, &st) < 0)
                return kv_error_errno(err, errno, "stat %s", base);
        JF_TRY(run_file(p, "disk", vol, "qcow2", &overlay, err));
        JF_TRY(create_overlay(p, overlay, base, IMG_RAW, (uint64_t)st.st_size, err));
        return set_prep(&vol->prep, TAKE_PTR(overlay), IMG_QCOW2, TAKE_PTR(base), IMG_RAW, false);
}

static int create_sparse(const char *path, uint64_t size, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", path);
        if (ftruncate(fd, (off_t)size) < 0)
                return kv_error_errno(err, errno, "resize %s", path);
        return 0;
}

static int prepare_host_disk(vmi_volume *vol, size_t i, kv_error *err)
{
        char f[JPATH_MAX];
        struct stat st;
        if (stat(vol->host_path, &st) < 0) {
                if (errno != ENOENT || !vol->host_create)
                        return jf_error(err, field(f, i, ".hostDisk.path"), "%s: %s", vol->host_path,
                                        strerror(errno));
                JF_TRY(create_sparse(vol->host_path, vol->capacity, err));
        } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
                return jf_error(err, field(f, i, ".hostDisk.path"),
                                "%s is not a regular file or block device", vol->host_path);
        }
        char *path = strdup(vol->host_path);
        if (!path)
                return kv_error_set(err, ENOMEM, "out of memory");
        return set_prep(&vol->prep, path, IMG_RAW, NULL, IMG_RAW, false);
}

static int prepare_empty_disk(const launcher_paths *p, vmi_volume *vol, kv_error *err)
{
        _cleanup_free_ char *path = NULL;
        char sz[32];
        JF_TRY(run_file(p, "disk", vol, "qcow2", &path, err));
        snprintf(sz, sizeof(sz), "%" PRIu64, vol->capacity);
        char *const args[] = {"create", "-q", "-f", "qcow2", path, sz, NULL};
        JF_TRY(run_qemu_img(p, args, err));
        return set_prep(&vol->prep, TAKE_PTR(path), IMG_QCOW2, NULL, IMG_RAW, false);
}

/* Reads a small text file (a Secret key) whole; refused when larger than max or holding a NUL (the
 * content becomes a C string). */
static int read_text_fd(int fd, size_t max, char **out)
{
        size_t len = 0, size = 4096;
        _cleanup_free_ char *buf = malloc(size + 1);
        for (;;) {
                if (!buf)
                        return -ENOMEM;
                ssize_t n = read(fd, buf + len, size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > max)
                        return -EFBIG;
                if (len == size) {
                        size *= 2;
                        char *bigger = realloc(buf, size + 1);
                        if (!bigger)
                                return -ENOMEM;
                        buf = bigger;
                }
        }
        buf[len] = '\0';
        if (memchr(buf, '\0', len))
                return -EINVAL;
        *out = TAKE_PTR(buf);
        return 0;
}

/* The first of two keys present in the Secret mounted at <secret_root>/<volume> (KubeVirt accepts both
 * spellings, e.g. `userdata` and `userData`). */
static int read_secret_key(const launcher_paths *p, const vmi_volume *vol, size_t i, const char *ref,
                           const char *const keys[2], char **out, kv_error *err)
{
        char fb[JPATH_MAX], rest[96];
        const char *root = p->secret_root ? p->secret_root : DEFAULT_SECRET_ROOT;
        snprintf(rest, sizeof(rest), ".cloudInitNoCloud.%s", ref);
        for (int k = 0; k < 2; k++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s/%s", root, vol->name, keys[k]) < 0)
                        return kv_error_set(err, ENOMEM, "out of memory");
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        continue;
                if (fd < 0)
                        return kv_error_errno(err, errno, "%s: open %s", field(fb, i, rest), path);
                int r = read_text_fd(fd, MAX_SECRET_BYTES, out);
                if (r == -EFBIG || r == -EINVAL)
                        return jf_error(err, field(fb, i, rest), "%s is %s", path,
                                        r == -EFBIG ? "larger than 1 MiB" : "not text (holds a NUL byte)");
                if (r < 0)
                        return kv_error_errno(err, -r, "%s: read %s", field(fb, i, rest), path);
                return 0;
        }
        return jf_error(err, field(fb, i, rest), "Secret has neither a %s nor a %s key (looked in %s/%s)",
                        keys[0], keys[1], root, vol->name);
}

/* Secret references → user_data/network_data, so the ISO is built the same way as for inline data. */
static int read_cloud_init_secrets(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        static const char *const user_keys[2] = {"userdata", "userData"};
        static const char *const network_keys[2] = {"networkdata", "networkData"};
        if (vol->user_data_secret && !vol->user_data)
                JF_TRY(read_secret_key(p, vol, i, "userDataSecretRef", user_keys, &vol->user_data, err));
        if (vol->network_data_secret && !vol->network_data)
                JF_TRY(read_secret_key(p, vol, i, "networkDataSecretRef", network_keys, &vol->network_data,
                                       err));
        return 0;
}

static int prepare_cloud_init(const vmi *v, const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        _cleanup_free_ char *path = NULL, *meta = NULL;
        JF_TRY(read_cloud_init_secrets(p, vol, i, err));
        /* KubeVirt's meta-data: instance-id <name>.<namespace>, local-hostname the VMI's hostname. */
        if (asprintf(&meta, "instance-id: %s.%s\nlocal-hostname: %s\n", v->name, v->namespace, v->hostname) <
            0)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(run_file(p, "cidata", vol, "iso", &path, err));
        cidata_files files = {
            .meta_data = meta, .user_data = vol->user_data, .network_data = vol->network_data};
        JF_TRY(cidata_write(path, &files, err));
        /* Writable like KubeVirt's seed disk (ide-hd refuses read-only nodes); it is rebuilt on every start.
         */
        return set_prep(&vol->prep, TAKE_PTR(path), IMG_RAW, NULL, IMG_RAW, false);
}

int volumes_prepare(vmi *v, const launcher_paths *p, kv_error *err)
{
        if (!p->run_dir || p->run_dir[0] != '/')
                return kv_error_set(err, EINVAL, "run directory must be an absolute path");
        for (size_t i = 0; i < v->n_volumes; i++) {
                vmi_volume *vol = &v->volumes[i];
                switch (vol->kind) {
                case VOL_CONTAINER_DISK:
                        JF_TRY(prepare_container_disk(p, vol, i, err));
                        break;
                case VOL_PVC:
                        JF_TRY(prepare_pvc(p, vol, i, err));
                        break;
                case VOL_EPHEMERAL:
                        JF_TRY(prepare_ephemeral(p, vol, i, err));
                        break;
                case VOL_HOST_DISK:
                        JF_TRY(prepare_host_disk(vol, i, err));
                        break;
                case VOL_EMPTY_DISK:
                        JF_TRY(prepare_empty_disk(p, vol, err));
                        break;
                case VOL_CLOUD_INIT_NOCLOUD:
                        JF_TRY(prepare_cloud_init(v, p, vol, i, err));
                        break;
                }
        }
        return 0;
}

static int copy_file(const char *from, const char *to, kv_error *err)
{
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return kv_error_errno(err, errno, "open %s", from);
        _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return kv_error_errno(err, errno, "create %s", to);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || write(out, buf, n) != n)
                        return kv_error_errno(err, errno ? errno : EIO, "copy %s to %s", from, to);
        }
        return 0;
}

/* EFI: a fresh copy of the VARS template per start (KubeVirt's non-persistent EFI). */
static int prepare_efi(vmi *v, const launcher_paths *p, kv_error *err)
{
        _cleanup_free_ char *tmpl = NULL, *vars = NULL;
        const char *name = v->efi_secure_boot ? "OVMF_VARS_4M.ms.fd" : "OVMF_VARS_4M.fd";
        if (asprintf(&tmpl, "%s/%s", p->ovmf_dir ? p->ovmf_dir : DEFAULT_OVMF_DIR, name) < 0 ||
            asprintf(&vars, "%s/efi-vars.fd", p->run_dir) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(copy_file(tmpl, vars, err));
        free(v->efi_vars);
        v->efi_vars = TAKE_PTR(vars);
        return 0;
}

static int prepare_kernel_boot(vmi *v, const launcher_paths *p, kv_error *err)
{
        _cleanup_free_ char *dir = NULL;
        JF_TRY(resolve_image_dir(p, VMI_KERNEL_BOOT_IMAGE_NAME, v->kernel_image,
                                 "spec.domain.firmware.kernelBoot.container.image", &dir, err));
        free(v->kernel_file), free(v->initrd_file);
        v->kernel_file = v->initrd_file = NULL;
        if (v->kernel_path)
                JF_TRY(image_resolve_in(dir, v->kernel_path,
                                        "spec.domain.firmware.kernelBoot.container.kernelPath",
                                        &v->kernel_file, err));
        if (v->initrd_path)
                JF_TRY(image_resolve_in(dir, v->initrd_path,
                                        "spec.domain.firmware.kernelBoot.container.initrdPath",
                                        &v->initrd_file, err));
        return 0;
}

/* clock.timezone: the RTC starts at the zone's local time, so its offset from UTC now (the launcher is
 * single-threaded: TZ is swapped and restored around one localtime_r). */
static int prepare_timezone(vmi *v, kv_error *err)
{
        char path[512];
        snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", v->timezone);
        if (access(path, R_OK) < 0)
                return kv_error_set(err, EINVAL,
                                    "spec.domain.clock.timezone: \"%.64s\" is not a known timezone (%s: %s)",
                                    v->timezone, path, strerror(errno));
        const char *old = getenv("TZ");
        _cleanup_free_ char *saved = old ? strdup(old) : NULL, *tz = NULL;
        if ((old && !saved) || asprintf(&tz, ":%s", v->timezone) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        setenv("TZ", tz, 1);
        tzset();
        struct tm tm;
        time_t now = time(NULL);
        bool ok = localtime_r(&now, &tm) != NULL;
        saved ? setenv("TZ", saved, 1) : unsetenv("TZ");
        tzset();
        if (!ok)
                return kv_error_set(err, EINVAL, "spec.domain.clock.timezone: cannot resolve \"%.64s\"",
                                    v->timezone);
        v->rtc_offset = tm.tm_gmtoff;
        return 0;
}

/* autoattachVSOCK needs the host's vhost-vsock device. The CID is derived from the VMI's identity (FNV-1a)
 * so the same VMI keeps it across restarts; KubeVirt allocates one per node, QEMU fails on a clash. */
static int prepare_vsock(vmi *v, kv_error *err)
{
        if (access("/dev/vhost-vsock", R_OK | W_OK) < 0)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.devices.autoattachVSOCK: needs /dev/vhost-vsock, which this host "
                    "lacks (%s)",
                    strerror(errno));
        uint32_t h = 2166136261u;
        const char *parts[] = {v->namespace, "/", v->name, "/", v->uid ? v->uid : ""};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                for (const char *c = parts[i]; *c; c++)
                        h = (h ^ (unsigned char)*c) * 16777619u;
        v->vsock_cid = 3 + h % 0x7ffffffcu;
        return 0;
}

int vmi_prepare(vmi *v, const launcher_paths *p, kv_error *err)
{
        if (v->vsock)
                JF_TRY(prepare_vsock(v, err));
        if (v->timezone)
                JF_TRY(prepare_timezone(v, err));
        JF_TRY(volumes_prepare(v, p, err));
        if (v->firmware == FW_EFI)
                JF_TRY(prepare_efi(v, p, err));
        if (v->kernel_boot)
                JF_TRY(prepare_kernel_boot(v, p, err));
        return helperd_prepare(v, p, err); /* swtpm, qemu-pr-helper, block-device volumes */
}
