/* virt-handler's hot-plug agent (hotplug.h): one thread, one informer over the attachment Pods of this node
 * (label kubevirt.io=hotplug-disk, field spec.nodeName). For a Running one, each persistentVolumeClaim
 * volume's disk.img is opened from the node's Pod directory and sent, with SCM_RIGHTS, to the control socket
 * of the launcher Pod named in its ownerReferences: {"cmd":"hotplug-attach","args":{"volume":NAME}}. A volume
 * is sent once per attachment Pod (the launcher's answer is idempotent anyway); failures are tried again
 * every second while the Pod is there. */
#include "hotplug.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "api.h"
#include "client.h"
#include "config.h"
#include "console.h"
#include "informer.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "tlsio.h"
#include "unixsock.h"

#define ATTACH_LABEL "kubevirt.io=hotplug-disk"
#define RETRY_MS 1000
#define REPLY_TIMEOUT_S 10

typedef struct agent {
        hotplug_config cfg;
        CURLM *multi;
        kube_client *api;
        kube_informer pods;
        strv sent; /* "<attachment pod uid>/<volume>" handed over */
        bool retry;
} agent;

static bool name_safe(const char *s)
{
        return s && *s && strlen(s) < 254 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static bool is_file(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* <base>/<dir>/disk.img or <base>/<dir>/mount/disk.img (CSI). */
static bool found_in(const char *base, const char *dir, char *out, size_t size)
{
        for (int csi = 0; csi < 2 && dir; csi++) {
                int w = snprintf(out, size, "%s/%s/%sdisk.img", base, dir, csi ? "mount/" : "");
                if (w > 0 && (size_t)w < size && is_file(out))
                        return true;
        }
        return false;
}

int hotplug_disk_path(const char *pods_dir, const char *uid, const char *volume, const char *pv_name,
                      char *out, size_t size)
{
        if (!name_safe(uid) || !name_safe(volume) || (pv_name && !name_safe(pv_name)))
                return -EINVAL;
        char vols[4096];
        snprintf(vols, sizeof(vols), "%s/%s/volumes", pods_dir, uid);
        if (found_in(vols, volume, out, size)) /* the kubelet stand-in */
                return 0;
        DIR *d = opendir(vols);
        int r = -ENOENT;
        for (struct dirent *e; d && r < 0 && (e = readdir(d));) {
                char base[4400];
                snprintf(base, sizeof(base), "%s/%s", vols, e->d_name);
                if (!strncmp(e->d_name, "kubernetes.io~", 14) &&
                    (found_in(base, volume, out, size) || found_in(base, pv_name, out, size)))
                        r = 0;
        }
        if (d)
                closedir(d);
        return r;
}

/* The bound PersistentVolume's name (the kubelet names CSI mount directories after it), or NULL. */
static char *pv_name_of(agent *a, const char *ns, const char *claim)
{
        _cleanup_json_ cJSON *pvc = NULL;
        kv_error err = {0};
        if (kube_get(a->api, &kube_pvc, ns, claim, &pvc, &err) < 0)
                return NULL;
        const char *pv = kube_str(pvc, "spec.volumeName");
        return pv ? strdup(pv) : NULL;
}

static const char *launcher_uid(const cJSON *pod)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(pod, "metadata.ownerReferences"))
        {
                const char *kind = kube_str(o, "kind");
                if (kind && !strcmp(kind, "Pod"))
                        return kube_str(o, "uid");
        }
        return NULL;
}

/* One request with the image's fd and its directory's (dirfd, -1 = none: the launcher makes a running VM's
 * backups of the disk there) over the launcher's control socket; its answer. */
static int send_attach(const char *sock, const char *volume, int fd, int dirfd, kv_error *err)
{
        _cleanup_close_ int s = unix_connect(sock, err);
        if (s < 0)
                return s;
        _cleanup_json_ cJSON *req = jstr(cJSON_CreateObject(), "cmd", "hotplug-attach");
        cJSON_AddItemToObject(req, "args", jstr(cJSON_CreateObject(), "volume", volume));
        _cleanup_free_ char *line = cJSON_PrintUnformatted(req);
        _cleanup_free_ char *msg = line ? malloc(strlen(line) + 2) : NULL;
        if (!msg)
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t len = (size_t)sprintf(msg, "%s\n", line);
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(2 * sizeof(int))];
        } ctl = {0};
        int fds[2] = {fd, dirfd};
        size_t nfd = dirfd >= 0 ? 2 : 1;
        struct iovec iov = {.iov_base = msg, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = &ctl,
                            .msg_controllen = CMSG_SPACE(nfd * sizeof(int))};
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(nfd * sizeof(int));
        memcpy(CMSG_DATA(h), fds, nfd * sizeof(int));
        struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (sendmsg(s, &mh, MSG_NOSIGNAL) != (ssize_t)len)
                return kv_error_errno(err, errno, "send to %s", sock);
        char reply[1024];
        if (kv_fd_recv_line(s, reply, sizeof(reply)) < 0)
                return kv_error_set(err, EIO, "no answer from %s", sock);
        _cleanup_json_ cJSON *r = cJSON_Parse(reply);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")))
                return kv_error_set(err, EIO, "the launcher refused: %s",
                                    cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")) ?: reply);
        return 0;
}

/* The claim's directory for the launcher's backups of the disk, as the root of a detached bind mount
 * (open_tree OPEN_TREE_CLONE): ".." from there is the directory itself, so the descriptor reaches nothing
 * else on the node, whatever a launcher does with it (an open(O_DIRECTORY) of the path would let it walk up
 * to every Pod's files). -1, logged, when it cannot be made so: then no backups of the disk while it runs. */
static int confined_dir(const char *volume, const char *dir)
{
        _cleanup_close_ int tree = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        struct stat root, up;
        if (tree < 0 || fstat(tree, &root) < 0 || fstatat(tree, "..", &up, 0) < 0) {
                log_warning("volume %s: a detached mount of %s: %s (no backups of it while the VM runs)",
                            volume, dir, strerror(errno));
                return -1;
        }
        if (root.st_dev != up.st_dev || root.st_ino != up.st_ino) {
                log_warning(
                    "volume %s: \"..\" leaves the detached mount of %s (no backups of it while the VM "
                    "runs)",
                    volume, dir);
                return -1;
        }
        return TAKE_FD(tree);
}

static int attach_volume(agent *a, const cJSON *pod, const cJSON *vol, kv_error *err)
{
        const char *uid = kube_str(pod, "metadata.uid"), *ns = kube_str(pod, "metadata.namespace");
        const char *name = kube_str(vol, "name"), *claim = kube_str(vol, "persistentVolumeClaim.claimName");
        const char *owner = launcher_uid(pod);
        char sock[4096], disk[4096];
        if (!owner || console_socket_path(a->cfg.pods_dir, owner, "control.sock", sock, sizeof(sock)) < 0)
                return kv_error_set(err, ENOENT, "no launcher control socket for owner pod %s",
                                    owner ?: "(none)");
        _cleanup_free_ char *pv = NULL;
        int r = hotplug_disk_path(a->cfg.pods_dir, uid, name, NULL, disk, sizeof(disk));
        if (r == -ENOENT && (pv = pv_name_of(a, ns, claim)))
                r = hotplug_disk_path(a->cfg.pods_dir, uid, name, pv, disk, sizeof(disk));
        if (r < 0)
                return kv_error_set(err, -r, "claim %s: no disk.img in the attachment Pod's volume %s", claim,
                                    name);
        _cleanup_close_ int fd = open(disk, O_RDWR | O_CLOEXEC);
        if (fd < 0 && (errno == EROFS || errno == EACCES))
                fd = open(disk, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return kv_error_errno(err, errno, "open %s", disk);
        *strrchr(disk, '/') = '\0'; /* the claim's directory: where the launcher's backups of it go */
        _cleanup_close_ int dirfd = confined_dir(name, disk);
        if ((r = send_attach(sock, name, fd, dirfd, err)) < 0)
                return r;
        log_info("volume %s (claim %s) handed to launcher pod %s from %s/disk.img", name, claim, owner, disk);
        return 0;
}

static bool sent(agent *a, const char *key)
{
        for (size_t i = 0; i < a->sent.n; i++)
                if (!strcmp(a->sent.v[i], key))
                        return true;
        return false;
}

/* Forgets what was sent for a Pod that is gone. */
static void forget(agent *a, const char *uid)
{
        size_t n = strlen(uid), k = 0;
        for (size_t i = 0; i < a->sent.n; i++) {
                if (!strncmp(a->sent.v[i], uid, n) && a->sent.v[i][n] == '/')
                        free(a->sent.v[i]);
                else
                        a->sent.v[k++] = a->sent.v[i];
        }
        a->sent.n = k;
        if (a->sent.v)
                a->sent.v[k] = NULL;
}

static void pod_changed(agent *a, const cJSON *pod)
{
        const char *uid = kube_str(pod, "metadata.uid"), *phase = kube_str(pod, "status.phase");
        if (!uid || kube_obj(pod, "metadata.deletionTimestamp") || !phase || strcmp(phase, "Running"))
                return;
        const cJSON *vol;
        cJSON_ArrayForEach(vol, kube_obj(pod, "spec.volumes"))
        {
                char key[400];
                const char *name = kube_str(vol, "name");
                if (!name || !kube_obj(vol, "persistentVolumeClaim"))
                        continue;
                snprintf(key, sizeof(key), "%s/%s", uid, name);
                if (sent(a, key))
                        continue;
                kv_error err = {0};
                if (attach_volume(a, pod, vol, &err) < 0) {
                        log_warning("attachment pod %s, volume %s: %s (trying again)",
                                    kube_str(pod, "metadata.name"), name, err.msg);
                        a->retry = true;
                } else
                        strv_push(&a->sent, key);
        }
}

static void on_pod(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        agent *a = ud;
        if (type == KUBE_DELETED)
                forget(a, kube_str(obj, "metadata.uid") ?: "");
        else
                pod_changed(a, obj);
}

static void retry_one(const char *key, const char *tag, void *ud)
{
        agent *a = ud;
        _cleanup_json_ cJSON *pod = kube_store_get(&a->pods.store, key);
        if (pod)
                pod_changed(a, pod);
}

static void *agent_loop(void *arg)
{
        agent *a = arg;
        uint64_t next_retry = 0;
        for (;;) {
                uint64_t now = kv_now_ms();
                if (a->retry && now >= next_retry) {
                        a->retry = false;
                        kube_store_foreach(&a->pods.store, retry_one, a);
                        next_retry = now + RETRY_MS;
                }
                long t = kube_informer_tick(&a->pods, now);
                int timeout = t < 0 || t > RETRY_MS ? RETRY_MS : (int)t;
                curl_multi_poll(a->multi, NULL, 0, timeout, NULL);
                int running;
                curl_multi_perform(a->multi, &running);
                CURLMsg *m;
                int left;
                while ((m = curl_multi_info_read(a->multi, &left)))
                        if (m->msg == CURLMSG_DONE)
                                kube_informer_transfer_done(&a->pods, m->easy_handle, m->data.result,
                                                            kv_now_ms());
        }
        return NULL;
}

int hotplug_agent_start(const hotplug_config *cfg, kv_error *err)
{
        static const kube_store_ops ops = {NULL, NULL, NULL};
        static agent a; /* one per process, for its whole life */
        a = (agent){.cfg = *cfg};
        char sel[300];
        snprintf(sel, sizeof(sel), "spec.nodeName=%s", cfg->node_name);
        a.multi = curl_multi_init();
        a.api = kube_client_new(cfg->kc);
        if (!a.multi || !a.api ||
            kube_informer_init(&a.pods, cfg->kc, a.multi, &kube_pod, NULL, ATTACH_LABEL, &ops, on_pod, &a) <
                0 ||
            kube_informer_set_field_selector(&a.pods, sel) < 0)
                return kv_error_set(err, ENOMEM, "hot-plug agent: out of memory");
        pthread_t t;
        int r = pthread_create(&t, NULL, agent_loop, &a);
        if (r)
                return kv_error_errno(err, r, "hot-plug agent thread");
        pthread_detach(t);
        return 0;
}
