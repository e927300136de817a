/* snapshot: online snapshot jobs over QMP (notes §5) and offline qemu-img snapshots. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu-argv.h"
#include "qmp-helpers.h"
#include "subprocess.h"

extern char **environ;

static int push_qcow2(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        const char *drv = cJSON_GetStringValue(cJSON_GetObjectItem(inserted, "drv"));
        if (cJSON_IsTrue(cJSON_GetObjectItem(inserted, "ro")) || !drv)
                return 0;
        if (strcmp(drv, "qcow2"))
                return kv_error_set(
                    err, EOPNOTSUPP,
                    "disk node %s is %s: internal snapshots need every writable disk in qcow2", node, drv);
        cJSON_AddItemToArray(ud, cJSON_CreateString(node));
        return 0;
}

/* Writable qcow2 nodes attached to devices: the snapshot spans all of them (RAM goes to the first). */
static int snapshot_devices(const cJSON *query_block, cJSON **devices, kv_error *err)
{
        cJSON *list = cJSON_CreateArray();
        int r = lo_walk_block_nodes(query_block, push_qcow2, list, err);
        if (r >= 0 && cJSON_GetArraySize(list) == 0)
                r = kv_error_set(err, EOPNOTSUPP, "no writable qcow2 disk to hold the snapshot");
        if (r < 0) {
                cJSON_Delete(list);
                return r;
        }
        *devices = list;
        return 0;
}

int snapshot_job_args(const cJSON *query_block, const char *command, const char *tag, const char *job,
                      cJSON **args, kv_error *err)
{
        if (!tag || !tag[0])
                return kv_error_set(err, EINVAL, "%s: a snapshot name is required", command);
        cJSON *devices = NULL;
        int r = snapshot_devices(query_block, &devices, err);
        if (r < 0)
                return kv_error_wrap(err, "%s %s", command, tag);
        cJSON *a = jstr(jstr(cJSON_CreateObject(), "job-id", job), "tag", tag);
        if (strcmp(command, "snapshot-delete")) /* save and load carry the RAM state */
                a = jstr(a, "vmstate", cJSON_GetArrayItem(devices, 0)->valuestring);
        *args = jobj(a, "devices", devices);
        return 0;
}

static int snapshot_job(qmp *q, const char *command, const char *tag, int timeout_ms, kv_error *err)
{
        if (!tag || !tag[0])
                return kv_error_set(err, EINVAL, "%s: a snapshot name is required", command);
        _cleanup_json_ cJSON *blocks = NULL;
        cJSON *a = NULL;
        int r = lo_exec(q, "query-block", NULL, &blocks, err);
        char job[64];
        snprintf(job, sizeof(job), "kv-%s", command);
        if (r >= 0)
                r = snapshot_job_args(blocks, command, tag, job, &a, err);
        if (r < 0)
                return r;
        lo_job_dismiss_stale(q, job);
        r = lo_exec(q, command, a, NULL, err);
        if (r >= 0)
                r = lo_job_finish(q, job, timeout_ms, err);
        return r < 0 ? kv_error_wrap(err, "%s %s", command, tag) : 0;
}

int snapshot_save(qmp *q, const char *tag, int timeout_ms, kv_error *err)
{
        return snapshot_job(q, "snapshot-save", tag, timeout_ms, err);
}

int snapshot_load(qmp *q, const char *tag, int timeout_ms, kv_error *err)
{
        return snapshot_job(q, "snapshot-load", tag, timeout_ms, err);
}

int snapshot_delete(qmp *q, const char *tag, int timeout_ms, kv_error *err)
{
        return snapshot_job(q, "snapshot-delete", tag, timeout_ms, err);
}

/* Merge one image's "snapshots" array (query-block image or qemu-img info) into out by name. */
static void merge_snapshots(cJSON *out, const cJSON *snaps, const char *disk)
{
        const cJSON *s;
        cJSON_ArrayForEach(s, snaps)
        {
                const cJSON *name = cJSON_GetObjectItem(s, "name");
                if (!cJSON_IsString(name))
                        continue;
                cJSON *e = NULL, *it;
                cJSON_ArrayForEach(it, out) if (!strcmp(cJSON_GetObjectItem(it, "name")->valuestring,
                                                        name->valuestring)) e = it;
                if (!e) {
                        e = cJSON_CreateObject();
                        cJSON_AddStringToObject(e, "name", name->valuestring);
                        const cJSON *vm = cJSON_GetObjectItem(s, "vm-state-size"),
                                    *sec = cJSON_GetObjectItem(s, "date-sec");
                        cJSON_AddNumberToObject(e, "vmStateSize", cJSON_IsNumber(vm) ? vm->valuedouble : 0);
                        cJSON_AddNumberToObject(e, "date", cJSON_IsNumber(sec) ? sec->valuedouble : 0);
                        cJSON_AddArrayToObject(e, "disks");
                        cJSON_AddItemToArray(out, e);
                }
                cJSON_AddItemToArray(cJSON_GetObjectItem(e, "disks"), cJSON_CreateString(disk));
        }
}

static int merge_node(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        merge_snapshots(ud, cJSON_GetObjectItem(cJSON_GetObjectItem(inserted, "image"), "snapshots"), node);
        return 0;
}

cJSON *snapshot_list_from(const cJSON *query_block)
{
        cJSON *list = cJSON_CreateArray();
        lo_walk_block_nodes(query_block, merge_node, list, NULL); /* merge_node never fails */
        return list;
}

int snapshot_list(qmp *q, cJSON **out, kv_error *err)
{
        _cleanup_json_ cJSON *blocks = NULL;
        int r = lo_exec(q, "query-block", NULL, &blocks, err);
        if (r < 0)
                return r;
        *out = snapshot_list_from(blocks);
        return 0;
}

/* Run argv capturing stdout (qemu-img info --output=json); never a shell. */
static int spawn_capture(char *const argv[], char *buf, size_t size, kv_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        pid_t pid;
        int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        if (r != 0) {
                close(p[0]);
                return kv_error_errno(err, r, "run %s", argv[0]);
        }
        size_t len = 0;
        ssize_t n;
        while ((n = read(p[0], buf + len, size - 1 - len)) > 0)
                len += (size_t)n;
        buf[len] = '\0';
        close(p[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                return kv_error_set(err, EIO, "%s %s failed (is the image in use by a running QEMU?)",
                                    argv[0], argv[1]);
        return 0;
}

static int offline_list(const char *qemu_img, const char *image, cJSON **out, kv_error *err)
{
        char *argv[] = {(char *)qemu_img, "info", "--output=json", "-f", "qcow2", (char *)image, NULL};
        _cleanup_free_ char *buf = malloc(1 << 20);
        if (!buf)
                return kv_error_set(err, ENOMEM, "out of memory");
        int r = spawn_capture(argv, buf, 1 << 20, err);
        if (r < 0)
                return r;
        _cleanup_json_ cJSON *info = cJSON_Parse(buf);
        if (!info)
                return kv_error_set(err, EPROTO, "qemu-img info: unparsable output");
        cJSON *list = cJSON_CreateArray();
        merge_snapshots(list, cJSON_GetObjectItem(info, "snapshots"), image);
        *out = list;
        return 0;
}

int snapshot_offline(const char *qemu_img, const char *op, const char *image, const char *tag, cJSON **out,
                     kv_error *err)
{
        static const char *const ops[][2] = {{"create", "-c"}, {"apply", "-a"}, {"delete", "-d"}};
        if (!qemu_img)
                qemu_img = "qemu-img";
        if (!strcmp(op, "list"))
                return offline_list(qemu_img, image, out, err);
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
                if (strcmp(op, ops[i][0]))
                        continue;
                if (!tag || !tag[0])
                        return kv_error_set(err, EINVAL, "offline snapshot %s: a snapshot name is required",
                                            op);
                /* --image-opts: the format is stated, never probed from a user image, and the name is a plain
                 * file name (no json:/nbd: prefixes), escaped for QemuOpts. */
                _cleanup_free_ char *esc = qemu_opt_escape(image), *opts = NULL;
                if (!esc || asprintf(&opts, "driver=qcow2,file.driver=file,file.filename=%s", esc) < 0)
                        return kv_error_set(err, ENOMEM, "out of memory");
                char *argv[] = {
                    (char *)qemu_img, "snapshot", "--image-opts", (char *)ops[i][1], (char *)tag, opts, NULL};
                int r = spawn_wait(argv, err);
                return r < 0 ? kv_error_wrap(err, "offline snapshot %s %s (only while QEMU is not running)",
                                             op, tag)
                             : 0;
        }
        return kv_error_set(err, EINVAL,
                            "offline snapshot: unknown operation \"%s\" (create, apply, delete, list)", op);
}

/* ---- backups of raw disks ---- */

static bool writable_raw(const cJSON *inserted)
{
        const char *drv = cJSON_GetStringValue(cJSON_GetObjectItem(inserted, "drv"));
        return !cJSON_IsTrue(cJSON_GetObjectItem(inserted, "ro")) && drv && !strcmp(drv, "raw");
}

static int any_raw(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        return writable_raw(inserted) ? 1 : 0;
}

bool snapshot_backup_mode(const cJSON *query_block)
{
        return lo_walk_block_nodes(query_block, any_raw, NULL, NULL) > 0;
}

typedef struct {
        const char *tag;
        cJSON *list;
        snapshot_dir_fn dir_of;
        void *ctx;
} backup_walk;

/* A hot-plugged image (/dev/fdset/N) whose directory the launcher holds: the target is made there. */
static int push_fdset(backup_walk *w, const char *node, const char *file, double size, kv_error *err)
{
        char *end;
        long fdset = strtol(file + 11, &end, 10);
        int dirfd = *end || end == file + 11 || !w->dir_of ? -1 : w->dir_of(w->ctx, (int)fdset);
        if (dirfd < 0)
                return kv_error_set(
                    err, EOPNOTSUPP,
                    "disk node %s (%s) is a hot-plugged disk whose directory virt-handler did "
                    "not hand over: it cannot be backed up while the VM runs",
                    node, file);
        char *name = NULL;
        if (asprintf(&name, "disk.img" SNAPSHOT_BACKUP_SUFFIX "%s", w->tag) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *d = jstr(jstr(jstr(cJSON_CreateObject(), "node", node), "file", file), "name", name);
        free(name);
        cJSON_AddNumberToObject(d, "dirfd", dirfd);
        cJSON_AddNumberToObject(d, "size", size);
        cJSON_AddItemToArray(w->list, d);
        return 0;
}

static int push_raw(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        backup_walk *w = ud;
        if (!writable_raw(inserted))
                return 0;
        const cJSON *image = cJSON_GetObjectItem(inserted, "image");
        const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(image, "filename"));
        const cJSON *size = cJSON_GetObjectItem(image, "virtual-size");
        if (file && cJSON_IsNumber(size) && !strncmp(file, "/dev/fdset/", 11))
                return push_fdset(w, node, file, size->valuedouble, err);
        if (!file || file[0] != '/' || !cJSON_IsNumber(size))
                return kv_error_set(
                    err, EOPNOTSUPP,
                    "disk node %s (%s) is not an image file the launcher can copy next to: it "
                    "cannot be backed up while the VM runs",
                    node, file ? file : "no file name");
        char *target = NULL;
        if (asprintf(&target, "%s" SNAPSHOT_BACKUP_SUFFIX "%s", file, w->tag) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *d = jstr(jstr(jstr(cJSON_CreateObject(), "node", node), "file", file), "target", target);
        free(target);
        cJSON_AddNumberToObject(d, "size", size->valuedouble);
        cJSON_AddItemToArray(w->list, d);
        return 0;
}

static bool tag_is_file_safe(const char *tag)
{
        size_t n = tag ? strlen(tag) : 0;
        if (n < 1 || n > 128)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", tag[i]))
                        return false;
        return tag[0] != '.';
}

int snapshot_backup_disks(const cJSON *query_block, const char *tag, snapshot_dir_fn dir_of, void *ctx,
                          cJSON **out, kv_error *err)
{
        if (!tag_is_file_safe(tag))
                return kv_error_set(err, EINVAL,
                                    "a backup's tag must be 1-128 characters of [A-Za-z0-9._-], not starting "
                                    "with '.'");
        backup_walk w = {.tag = tag, .list = cJSON_CreateArray(), .dir_of = dir_of, .ctx = ctx};
        int r = lo_walk_block_nodes(query_block, push_raw, &w, err);
        if (r < 0) {
                cJSON_Delete(w.list);
                return r;
        }
        *out = w.list;
        return 0;
}

cJSON *snapshot_backup_transaction(const cJSON *disks, const char *job_prefix)
{
        cJSON *actions = cJSON_CreateArray();
        const cJSON *d;
        int i = 0;
        cJSON_ArrayForEach(d, disks)
        {
                char job[64];
                snprintf(job, sizeof(job), "%s%d", job_prefix, i++);
                cJSON *data = jstr(jstr(cJSON_CreateObject(), "job-id", job), "device",
                                   cJSON_GetStringValue(cJSON_GetObjectItem(d, "node")));
                data = jstr(data, "target", cJSON_GetStringValue(cJSON_GetObjectItem(d, "target")));
                data = jstr(jstr(data, "format", "raw"), "sync", "full");
                data = jstr(data, "mode", "existing"); /* the file the launcher made */
                cJSON_AddBoolToObject(data, "auto-dismiss", false);
                cJSON_AddItemToArray(actions,
                                     jobj(jstr(cJSON_CreateObject(), "type", "drive-backup"), "data", data));
        }
        cJSON *props = jstr(cJSON_CreateObject(), "completion-mode", "grouped");
        return jobj(jobj(cJSON_CreateObject(), "actions", actions), "properties", props);
}

/* A target: its path, or its name in the directory dirfd (a hot-plugged disk's); *dirfd AT_FDCWD for a path.
 */
static const char *target_of(const cJSON *d, int *dirfd)
{
        const cJSON *dir = cJSON_GetObjectItem(d, "dirfd");
        *dirfd = cJSON_IsNumber(dir) ? dir->valueint : AT_FDCWD;
        return cJSON_GetStringValue(cJSON_GetObjectItem(d, cJSON_IsNumber(dir) ? "name" : "target"));
}

int snapshot_backup_open(const cJSON *disks, int *index, kv_error *err)
{
        const cJSON *d;
        int i = 0;
        cJSON_ArrayForEach(d, disks)
        {
                int dirfd;
                const char *name = target_of(d, &dirfd);
                if (dirfd == AT_FDCWD || cJSON_GetObjectItem(d, "target")) {
                        i++;
                        continue;
                }
                /* read-write: QEMU's fd set lookup matches the access mode it opens the target with */
                int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return kv_error_errno(err, errno, "open %s (disk node %s)", name,
                                              cJSON_GetStringValue(cJSON_GetObjectItem(d, "node")));
                *index = i;
                return fd;
        }
        return -1;
}

int snapshot_backup_create(const cJSON *disks, kv_error *err)
{
        const cJSON *d;
        cJSON_ArrayForEach(d, disks)
        {
                int dirfd;
                const char *target = target_of(d, &dirfd);
                int fd = openat(dirfd, target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return kv_error_errno(err, errno, "create %s", target);
                /* sized by its last byte: the launcher's seccomp policy allows pwrite, not ftruncate */
                off_t size = (off_t)cJSON_GetObjectItem(d, "size")->valuedouble;
                int r = size > 0 && pwrite(fd, "", 1, size - 1) != 1 ? -errno : 0;
                close(fd);
                if (r < 0)
                        return kv_error_errno(err, -r, "size %s", target);
        }
        return 0;
}

int snapshot_backup_remove(const cJSON *disks, kv_error *err)
{
        const cJSON *d;
        int r = 0;
        cJSON_ArrayForEach(d, disks)
        {
                int dirfd;
                const char *target = target_of(d, &dirfd);
                if (unlinkat(dirfd, target, 0) < 0 && errno != ENOENT && r == 0)
                        r = kv_error_errno(err, errno, "remove %s", target);
        }
        return r;
}
