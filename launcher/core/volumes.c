/* volumes: turn each spec.volumes entry into an image file QEMU can open, and prepare firmware files.
 * Overlays and empty disks are made by `qemu-img create` (posix_spawn, argv only). The overlay is created
 * with -u and an explicit size, so qemu-img never opens the (untrusted) base image; QEMU later gets the
 * chain spelled out in JSON and never follows a backing file named in a header. */
#include "volumes.h"

#include "helperd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "accesscreds.h"
#include "image.h"
#include "isoimage.h"
#include "json.h"
#include "jfield.h"
#include "macro.h"
#include "subprocess.h"

#define DEFAULT_PVC_ROOT VOLUMES_DEFAULT_PVC_ROOT
#define DEFAULT_OVMF_DIR "/usr/share/OVMF"
#define DEFAULT_SECRET_ROOT VOLUMES_DEFAULT_SECRET_ROOT
#define MAX_SECRET_BYTES (1u << 20)
#define MAX_DATA_FILES 1024
#define MAX_DATA_BYTES (16u << 20) /* a data volume's files together (a ConfigMap/Secret holds <= 1 MiB) */

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
        if (access(*out, vol->claim_readonly ? R_OK : R_OK | W_OK) < 0) {
                int r = jf_error(err, field(f, i, rest), "claim \"%s\" is not available at %s: %s",
                                 vol->claim_name, *out, strerror(errno));
                free(*out); /* the caller gets nothing to release on failure */
                *out = NULL;
                return r;
        }
        return 0;
}

static int prepare_pvc(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        char *path = NULL;
        if (vol->filesystem) { /* a filesystem claim: its directory, shared by virtiofsd */
                char f[JPATH_MAX];
                if (asprintf(&path, "%s/%s", p->pvc_root ? p->pvc_root : DEFAULT_PVC_ROOT, vol->name) < 0)
                        return kv_error_set(err, ENOMEM, "out of memory");
                if (!is_dir(path)) {
                        jf_error(err, field(f, i, ".persistentVolumeClaim.claimName"),
                                 "claim \"%s\" is not available at %s", vol->claim_name, path);
                        free(path);
                        return -EINVAL;
                }
                return set_prep(&vol->prep, path, IMG_RAW, NULL, IMG_RAW, vol->claim_readonly);
        }
        JF_TRY(pvc_disk(p, vol, i, ".persistentVolumeClaim.claimName", &path, err));
        /* A writable volume the guest controls is always raw: a guest-written qcow2 header must not matter.
         */
        return set_prep(&vol->prep, path, IMG_RAW, NULL, IMG_RAW, vol->claim_readonly);
}

/* The target Pod of a migration does not mount the source's hot-plugged claims: they come later. */
static bool hotplug_deferred(const launcher_paths *p, const vmi_volume *vol)
{
        _cleanup_free_ char *path = NULL;
        if (!p->defer_hotplug || !vol->hotpluggable || vol->filesystem ||
            asprintf(&path, "%s/%s/disk.img", p->pvc_root ? p->pvc_root : DEFAULT_PVC_ROOT, vol->name) < 0)
                return false;
        return access(path, F_OK) < 0;
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

/* downwardMetrics: a raw file of VOLUMES_METRICS_DISK_SIZE, read-only to the guest, which the launcher
 * fills with the metrics document before QEMU starts and rewrites while the guest runs (metrics.c). */
static int prepare_downward_metrics(const launcher_paths *p, vmi_volume *vol, kv_error *err)
{
        _cleanup_free_ char *path = NULL;
        JF_TRY(run_file(p, "metrics", vol, "img", &path, err));
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || ftruncate(fd, VOLUMES_METRICS_DISK_SIZE) < 0)
                return kv_error_errno(err, errno, "create %s", path);
        return set_prep(&vol->prep, TAKE_PTR(path), IMG_RAW, NULL, IMG_RAW, true);
}

/* Reads a small file (a Secret or ConfigMap key) whole; refused when larger than max (-EFBIG). The buffer
 * is NUL-terminated beyond *len. */
static int read_fd(int fd, size_t max, char **out, size_t *out_len)
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
        *out = TAKE_PTR(buf), *out_len = len;
        return 0;
}

/* Same for text that becomes a C string: refused when it holds a NUL (-EINVAL). */
static int read_text_fd(int fd, size_t max, char **out)
{
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_fd(fd, max, &buf, &len);
        if (r < 0)
                return r;
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
        snprintf(rest, sizeof(rest), ".%s.%s",
                 vol->kind == VOL_CLOUD_INIT_CONFIG_DRIVE ? "cloudInitConfigDrive" : "cloudInitNoCloud", ref);
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
                JF_TRY(read_secret_key(p, vol, i,
                                       vol->user_data_secret_short ? "secretRef" : "userDataSecretRef",
                                       user_keys, &vol->user_data, err));
        if (vol->network_data_secret && !vol->network_data)
                JF_TRY(read_secret_key(p, vol, i, "networkDataSecretRef", network_keys, &vol->network_data,
                                       err));
        return 0;
}

/* The directory a data volume (or a cloud-init Secret) of this name is mounted at. */
static char *data_dir(const launcher_paths *p, const vmi_volume *vol)
{
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s", p->secret_root ? p->secret_root : DEFAULT_SECRET_ROOT, vol->name) < 0)
                return NULL;
        return dir;
}

/* Read-only like KubeVirt's config disks, except where a sata disk (ide-hd needs a writable node) or a
 * cloud-init seed (rebuilt on every start, writable as KubeVirt's) uses it. */
static bool iso_read_only(const vmi *v, const vmi_volume *vol)
{
        if (vol->kind == VOL_CLOUD_INIT_NOCLOUD)
                return false;
        for (size_t i = 0; i < v->n_disks; i++)
                if (&v->volumes[v->disks[i].volume] == vol && v->disks[i].kind == DISK_DISK &&
                    v->disks[i].bus == BUS_SATA)
                        return false;
        return true;
}

static int write_iso(const vmi *v, const launcher_paths *p, vmi_volume *vol, const char *prefix,
                     const iso_entry *entries, size_t n, kv_error *err)
{
        _cleanup_free_ char *path = NULL;
        JF_TRY(run_file(p, prefix, vol, "iso", &path, err));
        JF_TRY(iso_image_write(path, vmi_volume_label(vol), entries, n, err));
        return set_prep(&vol->prep, TAKE_PTR(path), IMG_RAW, NULL, IMG_RAW, iso_read_only(v, vol));
}

/* The meta-data's "public-keys": the SSH keys of accessCredentials propagated by noCloud, as a YAML list of
 * JSON strings (cloud-init's NoCloud reads a list or a map). Appended to *meta. */
static int add_nocloud_keys(const vmi *v, const launcher_paths *p, char **meta, kv_error *err)
{
        _cleanup_json_ cJSON *keys = NULL;
        const cJSON *k;
        JF_TRY(access_cred_ssh_keys(p, v, CRED_VIA_NOCLOUD, &keys, err));
        if (!cJSON_GetArraySize(keys))
                return 0;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return kv_error_set(err, ENOMEM, "out of memory");
        fprintf(f, "%spublic-keys:\n", *meta);
        cJSON_ArrayForEach(k, keys)
        {
                _cleanup_free_ char *quoted = cJSON_PrintUnformatted(k);
                fprintf(f, "  - %s\n", quoted ? quoted : "\"\"");
        }
        if (fclose(f) != 0 || !text) {
                free(text);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        free(*meta);
        *meta = text;
        return 0;
}

static int prepare_cloud_init(const vmi *v, const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        _cleanup_free_ char *meta = NULL;
        JF_TRY(read_cloud_init_secrets(p, vol, i, err));
        /* KubeVirt's meta-data: instance-id <name>.<namespace>, local-hostname the VMI's hostname. */
        if (asprintf(&meta, "instance-id: %s.%s\nlocal-hostname: %s\n", v->name, v->namespace, v->hostname) <
            0)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(add_nocloud_keys(v, p, &meta, err));
        iso_entry e[3] = {{"meta-data", meta, strlen(meta)}};
        size_t n = 1;
        if (vol->user_data)
                e[n++] = (iso_entry){"user-data", vol->user_data, strlen(vol->user_data)};
        if (vol->network_data)
                e[n++] = (iso_entry){"network-config", vol->network_data, strlen(vol->network_data)};
        return write_iso(v, p, vol, "cidata", e, n, err);
}

/* OpenStack's config drive as KubeVirt writes it: openstack/latest/{meta_data.json, user_data,
 * network_data.json} on a disk labelled config-2. */
static int prepare_config_drive(const vmi *v, const launcher_paths *p, vmi_volume *vol, size_t i,
                                kv_error *err)
{
        _cleanup_free_ char *instance = NULL, *meta = NULL;
        _cleanup_json_ cJSON *keys = NULL;
        JF_TRY(read_cloud_init_secrets(p, vol, i, err));
        JF_TRY(access_cred_ssh_keys(p, v, CRED_VIA_CONFIG_DRIVE, &keys, err));
        if (asprintf(&instance, "%s.%s", v->name, v->namespace) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *m =
            jstr(jstr(jstr(cJSON_CreateObject(), "instance_id", instance), "hostname", v->hostname), "uuid",
                 v->uid       ? v->uid
                 : v->fw_uuid ? v->fw_uuid
                              : instance);
        /* OpenStack's "public_keys": {name: key}, the keys of accessCredentials propagated by configDrive */
        cJSON *named = cJSON_GetArraySize(keys) && m ? cJSON_AddObjectToObject(m, "public_keys") : NULL;
        for (int k = 0; named && k < cJSON_GetArraySize(keys); k++) {
                char name[16];
                snprintf(name, sizeof(name), "%d", k);
                cJSON_AddStringToObject(named, name, cJSON_GetArrayItem(keys, k)->valuestring);
        }
        meta = m ? cJSON_PrintUnformatted(m) : NULL;
        cJSON_Delete(m);
        if (!meta)
                return kv_error_set(err, ENOMEM, "out of memory");
        iso_entry e[3] = {{"openstack/latest/meta_data.json", meta, strlen(meta)}};
        size_t n = 1;
        if (vol->user_data)
                e[n++] = (iso_entry){"openstack/latest/user_data", vol->user_data, strlen(vol->user_data)};
        if (vol->network_data)
                e[n++] = (iso_entry){"openstack/latest/network_data.json", vol->network_data,
                                     strlen(vol->network_data)};
        return write_iso(v, p, vol, "configdrive", e, n, err);
}

typedef struct data_files {
        iso_entry e[MAX_DATA_FILES];
        char *names[MAX_DATA_FILES], *bufs[MAX_DATA_FILES];
        size_t n, total;
} data_files;

static void data_files_free(data_files **f)
{
        for (size_t i = 0; *f && i < (*f)->n; i++)
                free((*f)->names[i]), free((*f)->bufs[i]);
        free(*f);
}

static int by_path(const void *a, const void *b)
{
        return strcmp(((const iso_entry *)a)->path, ((const iso_entry *)b)->path);
}

static const char *source_field(const vmi_volume *vol)
{
        switch (vol->kind) {
        case VOL_CONFIG_MAP:
                return ".configMap.name";
        case VOL_SECRET:
                return ".secret.secretName";
        case VOL_SERVICE_ACCOUNT:
                return ".serviceAccount.serviceAccountName";
        case VOL_SYSPREP:
                return vol->source_is_secret ? ".sysprep.secret.name" : ".sysprep.configMap.name";
        default:
                return ".downwardAPI";
        }
}

/* One key of a mounted ConfigMap/Secret: a regular file (the kubelet's key links are followed; its
 * "..data" bookkeeping entries are skipped by the caller). */
static int read_data_file(int dfd, const char *name, const char *fld, data_files *f, kv_error *err)
{
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return jf_error(err, fld, "key %s: %s", name, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return 0; /* a directory (projected items with paths are not KubeVirt's) */
        if (f->n == MAX_DATA_FILES)
                return jf_error(err, fld, "more than %d keys", MAX_DATA_FILES);
        char *buf = NULL;
        size_t len = 0;
        int r = read_fd(fd, MAX_DATA_BYTES - f->total, &buf, &len);
        if (r == -EFBIG)
                return jf_error(err, fld, "the keys are larger than %u MiB together", MAX_DATA_BYTES >> 20);
        if (r < 0)
                return kv_error_errno(err, -r, "%s: read key %s", fld, name);
        f->bufs[f->n] = buf, f->names[f->n] = strdup(name);
        if (!f->names[f->n])
                return kv_error_set(err, ENOMEM, "out of memory");
        f->e[f->n] = (iso_entry){f->names[f->n], buf, len};
        f->n++;
        f->total += len;
        return 0;
}

/* Every key of the directory dir where the kubelet mounted the object `what`, sorted by name (an ISO's
 * bytes must not depend on readdir order). A missing directory has no keys when optional. */
static int read_key_dir(const char *dir, const char *fld, const char *what, bool optional, data_files *f,
                        kv_error *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 && errno == ENOENT && optional)
                return 0;
        if (dfd < 0)
                return jf_error(err, fld, "\"%s\" is not available at %s: %s", what, dir, strerror(errno));
        DIR *d = fdopendir(dup(dfd));
        if (!d)
                return kv_error_errno(err, errno, "open %s", dir);
        struct dirent *de;
        int r = 0;
        while (r >= 0 && (de = readdir(d)))
                if (de->d_name[0] != '.') /* ".", "..", the kubelet's "..data" and "..<timestamp>" */
                        r = read_data_file(dfd, de->d_name, fld, f, err);
        closedir(d);
        if (r < 0)
                return r;
        qsort(f->e, f->n, sizeof(f->e[0]), by_path);
        return 0;
}

static int read_data_dir(const launcher_paths *p, const vmi_volume *vol, size_t i, data_files *f,
                         kv_error *err)
{
        char fld[JPATH_MAX];
        _cleanup_free_ char *dir = data_dir(p, vol);
        if (!dir)
                return kv_error_set(err, ENOMEM, "out of memory");
        return read_key_dir(dir, field(fld, i, source_field(vol)),
                            vol->source_name ? vol->source_name : vol->name, vol->source_optional, f, err);
}

int volumes_read_keys(const char *dir, const char *fld, const char *what, cJSON **out, kv_error *err)
{
        _cleanup_(data_files_free) data_files *f = calloc(1, sizeof(*f));
        _cleanup_json_ cJSON *o = cJSON_CreateObject();
        if (!f || !o)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(read_key_dir(dir, fld, what, false, f, err));
        for (size_t k = 0; k < f->n; k++) {
                if (memchr(f->e[k].data, '\0', f->e[k].len))
                        return jf_error(err, fld, "\"%s\" key %s is not text", what, f->e[k].path);
                if (!cJSON_AddStringToObject(o, f->e[k].path, f->e[k].data))
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        *out = TAKE_PTR(o);
        return 0;
}

/* A data volume shared over virtiofs: its directory as it is (an optional source that is missing: an empty
 * directory in the run dir). */
static int prepare_data_share(const launcher_paths *p, vmi_volume *vol, size_t i, kv_error *err)
{
        char fld[JPATH_MAX];
        _cleanup_free_ char *dir = data_dir(p, vol);
        if (!dir)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (!is_dir(dir)) {
                if (!vol->source_optional)
                        return jf_error(err, field(fld, i, source_field(vol)),
                                        "\"%s\" is not available at %s",
                                        vol->source_name ? vol->source_name : vol->name, dir);
                free(dir);
                if (run_file(p, "empty", vol, "d", &dir, err) < 0)
                        return -ENOMEM;
                if (mkdir(dir, 0555) < 0 && errno != EEXIST)
                        return kv_error_errno(err, errno, "create %s", dir);
        }
        return set_prep(&vol->prep, TAKE_PTR(dir), IMG_RAW, NULL, IMG_RAW, true);
}

/* containerPath: the launcher's own directory at that path (in a cluster the compute container's, where
 * the Pod's volumeMounts are), shared read-only as it is, so that what the kubelet or a webhook keeps
 * rewriting there (rotating tokens) reaches the guest. */
static int prepare_container_path(vmi_volume *vol, size_t i, kv_error *err)
{
        char fld[JPATH_MAX];
        struct stat st;
        int e = stat(vol->host_path, &st) < 0 ? errno : 0;
        if (e || !S_ISDIR(st.st_mode))
                return jf_error(err, field(fld, i, ".containerPath.path"),
                                "%s is not a directory of the launcher's container%s%s", vol->host_path,
                                e ? ": " : "", e ? strerror(e) : "");
        char *dir = strdup(vol->host_path);
        if (!dir)
                return kv_error_set(err, ENOMEM, "out of memory");
        return set_prep(&vol->prep, dir, IMG_RAW, NULL, IMG_RAW, true);
}

/* sysprep: Windows setup looks for autounattend.xml or unattend.xml (any case), as KubeVirt checks. */
static int check_unattend(const data_files *f, size_t i, const vmi_volume *vol, kv_error *err)
{
        char fld[JPATH_MAX];
        for (size_t k = 0; k < f->n; k++)
                if (!strcasecmp(f->e[k].path, "autounattend.xml") ||
                    !strcasecmp(f->e[k].path, "unattend.xml"))
                        return 0;
        return jf_error(err, field(fld, i, source_field(vol)),
                        "holds neither autounattend.xml nor unattend.xml");
}

static int prepare_data_volume(const vmi *v, const launcher_paths *p, vmi_volume *vol, size_t i,
                               kv_error *err)
{
        if (vol->filesystem)
                return prepare_data_share(p, vol, i, err);
        _cleanup_(data_files_free) data_files *f = calloc(1, sizeof(*f));
        if (!f)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(read_data_dir(p, vol, i, f, err));
        if (vol->kind == VOL_SYSPREP)
                JF_TRY(check_unattend(f, i, vol, err));
        return write_iso(v, p, vol, vol->kind == VOL_SYSPREP ? "sysprep" : "data", f->e, f->n, err);
}

/* blockSize.matchVolume, as KubeVirt: a block device's logical and physical sector sizes; for a file, the
 * block size of the filesystem holding it as both (a filesystem does not tell them apart). */
static int match_block_sizes(vmi *v, kv_error *err)
{
        for (size_t i = 0; i < v->n_disks; i++) {
                vmi_disk *d = &v->disks[i];
                const volume_prep *prep = &v->volumes[d->volume].prep;
                if (!d->block_size_match_volume || !prep->path)
                        continue;
                if (prep->block_device && !prep->base) {
                        _cleanup_close_ int fd = open(prep->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                        int logical = 0;
                        unsigned physical = 0;
                        if (fd < 0 || ioctl(fd, BLKSSZGET, &logical) < 0 ||
                            ioctl(fd, BLKPBSZGET, &physical) < 0)
                                return kv_error_errno(err, errno,
                                                      "spec.domain.devices.disks[%zu].blockSize."
                                                      "matchVolume: block sizes of %s",
                                                      i, prep->path);
                        d->logical_block = (unsigned)logical;
                        d->physical_block = physical > (unsigned)logical ? physical : (unsigned)logical;
                        continue;
                }
                struct statfs fs;
                if (statfs(prep->path, &fs) < 0)
                        return kv_error_errno(err, errno,
                                              "spec.domain.devices.disks[%zu].blockSize.matchVolume: "
                                              "statfs %s",
                                              i, prep->path);
                unsigned bs = fs.f_bsize >= 512 && fs.f_bsize <= (2 << 20) && !(fs.f_bsize & (fs.f_bsize - 1))
                                  ? (unsigned)fs.f_bsize
                                  : 512;
                d->logical_block = d->physical_block = bs;
        }
        return 0;
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
                        if (!(vol->deferred = hotplug_deferred(p, vol)))
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
                case VOL_CLOUD_INIT_CONFIG_DRIVE:
                        JF_TRY(prepare_config_drive(v, p, vol, i, err));
                        break;
                case VOL_CONFIG_MAP:
                case VOL_SECRET:
                case VOL_SERVICE_ACCOUNT:
                case VOL_DOWNWARD_API:
                case VOL_SYSPREP:
                        JF_TRY(prepare_data_volume(v, p, vol, i, err));
                        break;
                case VOL_DOWNWARD_METRICS:
                        JF_TRY(prepare_downward_metrics(p, vol, err));
                        break;
                case VOL_CONTAINER_PATH:
                        JF_TRY(prepare_container_path(vol, i, err));
                        break;
                }
        }
        return match_block_sizes(v, err);
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

static int mkdir_p(const char *path, kv_error *err)
{
        char buf[4096];
        if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
                return kv_error_set(err, ENAMETOOLONG, "%s: path too long", path);
        for (char *p = buf + 1;; p++) {
                if (*p && *p != '/')
                        continue;
                char c = *p;
                *p = '\0';
                if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                        return kv_error_errno(err, errno, "mkdir %s", buf);
                if (!(*p = c))
                        return 0;
        }
}

char *volumes_backend_dir(const launcher_paths *p, const vmi *v, const char *sub, kv_error *err)
{
        char *dir = NULL;
        if (asprintf(&dir, "%s/" VMI_BACKEND_STORAGE_PREFIX "%s/%s",
                     p->pvc_root ? p->pvc_root : DEFAULT_PVC_ROOT, v->name, sub) < 0)
                return kv_error_set(err, ENOMEM, "out of memory"), NULL;
        if (mkdir_p(dir, err) < 0) {
                free(dir);
                return NULL;
        }
        return dir;
}

/* EFI: a fresh copy of the VARS template per start (KubeVirt's non-persistent EFI); with persistent, the
 * copy in the backend storage, made once and kept (as KubeVirt's NVRAM: secureBoot changed later does not
 * replace the variables the guest has). */
static int prepare_efi(vmi *v, const launcher_paths *p, kv_error *err)
{
        _cleanup_free_ char *tmpl = NULL, *vars = NULL, *dir = NULL;
        const char *name = v->efi_secure_boot ? "OVMF_VARS_4M.ms.fd" : "OVMF_VARS_4M.fd";
        if (v->efi_persistent && !(dir = volumes_backend_dir(p, v, "efi", err)))
                return -err->code;
        if (asprintf(&tmpl, "%s/%s", p->ovmf_dir ? p->ovmf_dir : DEFAULT_OVMF_DIR, name) < 0 ||
            asprintf(&vars, "%s/efi-vars.fd", dir ? dir : p->run_dir) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (!dir || access(vars, F_OK) < 0)
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
 * single-threaded: TZ is swapped and restored around one localtime_r). The tz database spells spaces as
 * underscores ("America/New_York"): a name written with spaces (as KubeVirt's user guide does) is that zone
 * when it exists. */
static int prepare_timezone(vmi *v, kv_error *err)
{
        char path[512];
        snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", v->timezone);
        if (access(path, R_OK) < 0 && strchr(v->timezone, ' ')) {
                char under[512];
                snprintf(under, sizeof(under), "%s", path);
                for (char *c = under; *c; c++)
                        *c = *c == ' ' ? '_' : *c;
                if (access(under, R_OK) == 0) {
                        for (char *c = v->timezone; *c; c++)
                                *c = *c == ' ' ? '_' : *c;
                        snprintf(path, sizeof(path), "%s", under);
                }
        }
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
