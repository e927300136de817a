/* Claim clones by a short-lived kvlite-importer Pod; see claimclone.h. */
#include "claimclone.h"
#include "controller.h"
#include "log.h"
#include "podrender.h"
#include "macro.h"

#include <stdio.h>
#include <string.h>

#define CLONE_APP "containerized-data-importer" /* the importer Pods' label, as CDI's clone Pods */

const char *volume_claim(const cJSON *vol)
{
        return kube_str(vol, "persistentVolumeClaim.claimName") ?: kube_str(vol, "dataVolume.name");
}

const char *claim_node(const cJSON *pvc)
{
        return cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(pvc, "metadata.annotations"), CLAIM_ANN_SELECTED_NODE));
}

static void add_str(cJSON *a, const char *s)
{
        cJSON_AddItemToArray(a, cJSON_CreateString(s));
}

static void add_claim_volume(cJSON *vols, cJSON *mounts, const char *name, const char *claim,
                             const char *path, bool ro)
{
        cJSON *pvc = cJSON_CreateObject();
        cJSON_AddStringToObject(pvc, "claimName", claim);
        if (ro)
                cJSON_AddBoolToObject(pvc, "readOnly", true);
        pod_add_volume(vols, mounts, name, "persistentVolumeClaim", pvc, path, ro);
}

bool host_disk_parts(const cJSON *vol, char *dir, char *file, size_t size)
{
        const char *path = kube_str(vol, "hostDisk.path"), *slash = path ? strrchr(path, '/') : NULL;
        if (!slash || !slash[1] || (size_t)(slash - path) >= size || strlen(slash + 1) >= size)
                return false;
        snprintf(dir, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        snprintf(file, size, "%s", slash + 1);
        return true;
}

/* One end of the copy: the claim, or the node's directory (a hostDisk's). */
static void add_end(cJSON *vols, cJSON *mounts, const char *name, const char *claim, const char *host,
                    const char *path, bool ro)
{
        if (!host) {
                add_claim_volume(vols, mounts, name, claim, path, ro);
                return;
        }
        cJSON *hp = cJSON_CreateObject();
        cJSON_AddStringToObject(hp, "path", host);
        cJSON_AddStringToObject(hp, "type", "Directory");
        pod_add_volume(vols, mounts, name, "hostPath", hp, path, ro);
}

static cJSON *clone_pod(controller *c, const claim_clone *cc)
{
        cJSON *pod = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(pod, "metadata"),
              *spec = cJSON_AddObjectToObject(pod, "spec"), *ctr = cJSON_CreateObject();
        cJSON_AddStringToObject(pod, "apiVersion", "v1");
        cJSON_AddStringToObject(pod, "kind", "Pod");
        cJSON_AddStringToObject(md, "name", cc->pod);
        cJSON_AddStringToObject(md, "namespace", cc->ns);
        cJSON *labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_AddStringToObject(labels, "app", CLONE_APP);
        cJSON_AddStringToObject(labels, "cdi.kubevirt.io", "cdi-clone-source");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"), cJSON_Duplicate(cc->owner, true));
        cJSON_AddStringToObject(spec, "restartPolicy", "OnFailure");
        cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
        if (cc->node)
                cJSON_AddStringToObject(spec, "nodeName", cc->node);
        cJSON *vols = cJSON_AddArrayToObject(spec, "volumes"),
              *mounts = cJSON_AddArrayToObject(ctr, "volumeMounts");
        add_end(vols, mounts, "source", cc->src, cc->src_host, "/source", true);
        add_end(vols, mounts, "cdi-data-vol", cc->dst, cc->dst_host, "/data", false);
        cJSON_AddStringToObject(ctr, "name", "clone");
        cJSON_AddStringToObject(ctr, "image", c->opts.importer_image);
        cJSON *cmd = cJSON_AddArrayToObject(ctr, "command");
        const char *argv[] = {"kvlite-importer",   "--pvc-source",        "/source", "--dest", "/data",
                              "--termination-log", "/dev/termination-log"};
        for (size_t i = 0; i < ARRAY_SIZE(argv); i++)
                add_str(cmd, argv[i]);
        if (cc->src_file) {
                add_str(cmd, "--pvc-source-file");
                add_str(cmd, cc->src_file);
        }
        if (cc->dst_host) {
                add_str(cmd, "--dest-file");
                add_str(cmd, cc->dst_file);
        }
        cJSON_AddStringToObject(ctr, "terminationMessagePath", "/dev/termination-log");
        cJSON_AddStringToObject(ctr, "terminationMessagePolicy", "FallbackToLogsOnError");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), ctr);
        return pod;
}

cJSON *claim_clone_claim(const claim_clone *cc, const cJSON *src)
{
        cJSON *pvc = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(pvc, "metadata"),
              *spec = cJSON_AddObjectToObject(pvc, "spec");
        cJSON_AddStringToObject(pvc, "apiVersion", "v1");
        cJSON_AddStringToObject(pvc, "kind", "PersistentVolumeClaim");
        cJSON_AddStringToObject(md, "name", cc->dst);
        cJSON_AddStringToObject(md, "namespace", cc->ns);
        char from[1200];
        if (cc->src_host) /* hostPath <node>:<file> */
                snprintf(from, sizeof(from), "hostPath %s:%s/%s", cc->node ?: "", cc->src_host,
                         cc->src_file ?: "");
        else
                snprintf(from, sizeof(from), "%s/%s", cc->ns, cc->src);
        cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
        cJSON_AddStringToObject(ann, "kvlite.io/clone-source", from);
        if (cc->node) /* what kube-scheduler writes for a consumer on that node: the claim is made there */
                cJSON_AddStringToObject(ann, CLAIM_ANN_SELECTED_NODE, cc->node);
        if (cc->claim_owner)
                cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                                     cJSON_Duplicate(cc->claim_owner, true));
        static const char *const keep[] = {"accessModes", "resources", "storageClassName", "volumeMode"};
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(kube_obj(src, "spec"), keep[i]);
                if (v)
                        cJSON_AddItemToObject(spec, keep[i], cJSON_Duplicate(v, true));
        }
        if (!src) { /* a node's file: ReadWriteOnce, of the size given */
                cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "accessModes"),
                                     cJSON_CreateString("ReadWriteOnce"));
                cJSON *req = cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "resources"), "requests");
                cJSON_AddStringToObject(req, "storage", cc->src_size ?: "1Gi");
                cJSON_AddStringToObject(spec, "volumeMode", "Filesystem");
        }
        return pvc;
}

static const char *annotation(const cJSON *obj, const char *key)
{
        return cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.annotations"), key));
}

/* The destination claim, created when the copy makes it; NULL in *out while it does not exist. */
static int destination(kube_client *api, const claim_clone *cc, cJSON **out, char *msg, size_t size,
                       kv_error *err)
{
        int r = kube_get(api, &kube_pvc, cc->ns, cc->dst, out, err);
        if (r != -KUBE_ENOTFOUND)
                return r;
        *err = (kv_error){0};
        _cleanup_json_ cJSON *src = NULL;
        if (cc->src_host)
                r = 0;
        else if ((r = kube_get(api, &kube_pvc, cc->ns, cc->src, &src, err)) == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                snprintf(msg, size, "PersistentVolumeClaim %s/%s not found", cc->ns, cc->src);
                return CLONE_FAILED;
        }
        if (r < 0)
                return r;
        if (!cc->create_dst) {
                snprintf(msg, size, "PersistentVolumeClaim %s/%s not found", cc->ns, cc->dst);
                return CLONE_FAILED;
        }
        _cleanup_json_ cJSON *want = claim_clone_claim(cc, src);
        r = kube_create(api, &kube_pvc, cc->ns, want, out, err);
        if (r == 0)
                log_info("claim %s/%s created as a clone of %s", cc->ns, cc->dst,
                         cc->src_host ? cc->src_host : cc->src);
        return r == -KUBE_EEXISTS ? kube_get(api, &kube_pvc, cc->ns, cc->dst, out, err) : r;
}

static int mark_done(kube_client *api, const claim_clone *cc, kv_error *err)
{
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, CLONE_ANN_DONE, cc->pod);
        int r = kube_merge_patch(api, &kube_pvc, cc->ns, cc->dst, patch, false, NULL, err);
        if (r < 0)
                return r;
        log_info("claim %s/%s: copied from %s by Pod %s", cc->ns, cc->dst, cc->src_host ?: cc->src, cc->pod);
        return kube_delete(api, &kube_pod, cc->ns, cc->pod, NULL, NULL, NULL, err);
}

/* The importer's exit 2 (usage), 4 (bad image) and 5 (no space) do not change with a retry. */
static bool permanent_failure(const cJSON *pod, char *msg, size_t size)
{
        const cJSON *cs = cJSON_GetArrayItem(kube_obj(pod, "status.containerStatuses"), 0);
        const cJSON *term = kube_obj(cs, "state.terminated") ?: kube_obj(cs, "lastState.terminated");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(term, "exitCode");
        bool failed = !strcmp(kube_str(pod, "status.phase") ?: "", "Failed");
        if (!failed && !(cJSON_IsNumber(code) && (code->valueint == 2 || code->valueint >= 4)))
                return false;
        const char *text = kube_str(term, "message") ?: kube_str(pod, "status.message") ?: "no message";
        _cleanup_json_ cJSON *line = cJSON_Parse(text);
        snprintf(msg, size, "clone Pod %s failed (exit %d): %s", kube_str(pod, "metadata.name"),
                 cJSON_IsNumber(code) ? code->valueint : -1, kube_str(line, "reason") ?: text);
        return true;
}

int claim_clone_step(controller *c, kube_client *api, const claim_clone *cc, char *msg, size_t size,
                     kv_error *err)
{
        _cleanup_json_ cJSON *dst = NULL, *pod = NULL;
        int r = cc->dst_host ? 0 : destination(api, cc, &dst, msg, size, err);
        if (r != 0)
                return r;
        const char *by = annotation(dst, CLONE_ANN_DONE);
        if (by && !strcmp(by, cc->pod))
                return CLONE_DONE;
        if (!cc->dst_host && strcmp(kube_str(dst, "status.phase") ?: "", "Bound"))
                return CLONE_RUNNING;
        r = kube_get(api, &kube_pod, cc->ns, cc->pod, &pod, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                _cleanup_json_ cJSON *want = clone_pod(c, cc);
                r = kube_create(api, &kube_pod, cc->ns, want, NULL, err);
                if (r == 0)
                        log_info("clone Pod %s/%s: %s → %s", cc->ns, cc->pod, cc->src_host ?: cc->src,
                                 cc->dst_host ?: cc->dst);
                return r < 0 && r != -KUBE_EEXISTS ? r : CLONE_RUNNING;
        }
        if (r < 0)
                return r;
        if (!strcmp(kube_str(pod, "status.phase") ?: "", "Succeeded") && cc->dst_host)
                return CLONE_DONE; /* the Pod is the record: a node's file has no annotations */
        if (!strcmp(kube_str(pod, "status.phase") ?: "", "Succeeded"))
                return (r = mark_done(api, cc, err)) < 0 ? r : CLONE_DONE;
        if (permanent_failure(pod, msg, size)) {
                kv_error derr = {0};
                if (kube_delete(api, &kube_pod, cc->ns, cc->pod, NULL, NULL, NULL, &derr) < 0)
                        log_warning("delete clone Pod %s: %s", cc->pod, derr.msg);
                return CLONE_FAILED;
        }
        return CLONE_RUNNING;
}

int claim_clone_delete(kube_client *api, const char *ns, const char *dst, const char *pod, kv_error *err)
{
        int r = kube_delete(api, &kube_pod, ns, pod, NULL, NULL, NULL, err);
        return r < 0 ? r : kube_delete(api, &kube_pvc, ns, dst, NULL, NULL, "Background", err);
}

/* The node of claim `name` into node ("" when it has none, is missing, or is a node's directory: NULL). */
static int node_of(kube_client *api, const char *ns, const char *name, char *node, size_t size, kv_error *err)
{
        _cleanup_json_ cJSON *pvc = NULL;
        *node = '\0';
        if (!name)
                return 0;
        int r = kube_get(api, &kube_pvc, ns, name, &pvc, err);
        if (r == -KUBE_ENOTFOUND)
                *err = (kv_error){0};
        else if (r < 0)
                return r;
        snprintf(node, size, "%s", claim_node(pvc) ?: "");
        return 0;
}

int claim_clone_pin(kube_client *api, claim_clone *cc, char *node, size_t size, char *msg, size_t msize,
                    kv_error *err)
{
        char src[256], dst[256];
        int r = node_of(api, cc->ns, cc->src, src, sizeof(src), err);
        if (r == 0)
                r = node_of(api, cc->ns, cc->dst, dst, sizeof(dst), err);
        if (r < 0)
                return r;
        const char *want = cc->node ?: *dst ? dst : src;
        bool src_off = *src && strcmp(src, want), dst_off = *dst && strcmp(dst, want);
        if (src_off || dst_off) {
                snprintf(msg, msize,
                         "claim %s is on node %s and the copy has to run on node %s: a copy between two "
                         "nodes is not supported here",
                         src_off ? cc->src : cc->dst, src_off ? src : dst, want);
                return CLONE_FAILED;
        }
        if (want != node)
                snprintf(node, size, "%s", want);
        cc->node = *node ? node : NULL;
        return 0;
}
