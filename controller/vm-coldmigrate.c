/* Cold migration of a stopped VM (vmcoldmigrate.h): per node-local claim, a source Pod on the claim's node
 * exports its disk.img read-only with qemu-nbd, and a target Pod, placed by the scheduler, copies it into a
 * new claim with qemu-img convert and checks the copy with qemu-img compare. Only then are the VM's volumes
 * switched to the copies and the old claims deleted; any failure deletes the copies and keeps the VM as it
 * was. */
#include "vmcoldmigrate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claimclone.h"
#include "controller.h"
#include "datavolume.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "podrender.h"

#define COLD_RECHECK_MS 500 /* Pods and claims are not watched for this: looked at again after that */
#define COLD_ANN_OF "kvlite.io/cold-migration-of"
#define COLD_LABEL "kvlite.io/cold-migration" /* on the copy Pods: the VM's name */

/* "Succeeded" on a claim: a DataVolume over it takes it as filled (reconcile-dv.c) */
#define DV_ANN_POPULATED "cdi.kubevirt.io/storage.pod.phase"
#define DV_ANN_PREPOPULATED "cdi.kubevirt.io/storage.prePopulated"

enum { COPY_RUNNING, COPY_DONE, COPY_FAILED };

typedef struct cold_ctx {
        controller *c;
        kube_client *api;
        const cJSON *vm;
        const char *ns, *name;
        cJSON *st; /* the progress annotation, parsed */
        char msg[1024];
} cold_ctx;

static const char *annotation(const cJSON *obj, const char *key)
{
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.annotations"), key);
        return cJSON_IsString(a) ? a->valuestring : NULL;
}

bool vm_cold_migrate_holds(const cJSON *vm)
{
        return annotation(vm, VM_ANN_COLD_MIGRATE) != NULL;
}

char *cold_migration_claim_name(const char *from)
{
        const char *cut = strrchr(from, '-');
        unsigned long n = 0;
        size_t base = strlen(from);
        if (cut && cut[1] == 'c' && cut[2] == 'm' && cut[3] >= '1' && cut[3] <= '9' &&
            strspn(cut + 3, "0123456789") == strlen(cut + 3) && strlen(cut + 3) < 9) {
                n = strtoul(cut + 3, NULL, 10);
                base = (size_t)(cut - from);
        }
        char *out = NULL;
        if (asprintf(&out, "%.*s-cm%lu", (int)base, from, n + 1) < 0)
                return NULL;
        return out;
}

static const char *st_str(const cold_ctx *x, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x->st, key));
}

static void st_set(cold_ctx *x, const char *key, const char *value)
{
        cJSON_DeleteItemFromObjectCaseSensitive(x->st, key);
        if (value)
                cJSON_AddStringToObject(x->st, key, value);
}

/* The progress annotation written; the request removed with it when done. */
static int write_status(cold_ctx *x, bool done, kv_error *err)
{
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        _cleanup_free_ char *text = cJSON_PrintUnformatted(x->st);
        cJSON_AddStringToObject(ann, VM_ANN_COLD_MIGRATION, text);
        if (done)
                cJSON_AddNullToObject(ann, VM_ANN_COLD_MIGRATE);
        return kube_merge_patch(x->api, &kube_vm, x->ns, x->name, patch, false, NULL, err);
}

/* A plan entry for a dataVolume volume: the DataVolume and its claim have one name. */
static bool is_dv(const cJSON *p)
{
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "dataVolume"));
}

static void pod_names(const char *to, char *src, char *dst, size_t size)
{
        snprintf(src, size, "coldmig-%s-src", to);
        snprintf(dst, size, "coldmig-%s-dst", to);
}

/* The copies' Pods and claims deleted, the VM untouched: the old claims still hold the data. */
static int fail(cold_ctx *x, const char *why, kv_error *err)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(x->st, "claims"))
        {
                const char *to = kube_str(p, "to");
                char src[300], dst[300];
                pod_names(to, src, dst, sizeof(src));
                int r = kube_delete(x->api, &kube_pod, x->ns, src, NULL, NULL, NULL, err);
                if (r >= 0)
                        r = kube_delete(x->api, &kube_pod, x->ns, dst, NULL, NULL, NULL, err);
                if (r >= 0 && is_dv(p))
                        r = kube_delete(x->api, &kube_datavolume, x->ns, to, NULL, NULL, "Background", err);
                if (r >= 0)
                        r = kube_delete(x->api, &kube_pvc, x->ns, to, NULL, NULL, "Background", err);
                if (r < 0)
                        return r;
        }
        log_warning("VM %s/%s: cold migration failed: %s", x->ns, x->name, why);
        st_set(x, "phase", "Failed");
        st_set(x, "message", why);
        return write_status(x, true, err);
}

static int failf(cold_ctx *x, kv_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(cold_ctx *x, kv_error *err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
        va_end(ap);
        return fail(x, x->msg, err);
}

/* A dataVolume volume moves once its DataVolume has filled its claim: 0, or >0 after failing the move. */
static int dv_ready(cold_ctx *x, const char *name, kv_error *err)
{
        _cleanup_json_ cJSON *dv = NULL;
        int r = kube_get(x->api, &kube_datavolume, x->ns, name, &dv, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                r = failf(x, err, "DataVolume %s/%s not found", x->ns, name);
        } else if (r == 0 && strcmp(kube_str(dv, "status.phase") ?: "", "Succeeded")) {
                r = failf(x, err, "DataVolume %s is %s, not Succeeded: it moves once it is filled", name,
                          kube_str(dv, "status.phase") ?: "without a phase");
        } else {
                return r;
        }
        return r < 0 ? r : 1;
}

/* The plan: each persistentVolumeClaim or dataVolume volume whose claim lives on one node, and its copy's
 * name. */
static int plan(cold_ctx *x, kv_error *err)
{
        char source[256] = "";
        const char *vm = x->name;
        _cleanup_json_ cJSON *claims = cJSON_CreateArray();
        const cJSON *v;
        cJSON_ArrayForEach(v, kube_obj(x->vm, "spec.template.spec.volumes"))
        {
                const char *claim = volume_claim(v);
                _cleanup_json_ cJSON *pvc = NULL;
                if (!claim)
                        continue;
                int r = kube_get(x->api, &kube_pvc, x->ns, claim, &pvc, err);
                if (r == -KUBE_ENOTFOUND) {
                        *err = (kv_error){0};
                        return failf(x, err, "PersistentVolumeClaim %s/%s not found", x->ns, claim);
                }
                if (r < 0)
                        return r;
                const char *node = claim_node(pvc);
                if (!node) /* storage every node reaches: nothing to copy */
                        continue;
                bool dv = kube_obj(v, "dataVolume") != NULL;
                if (dv && (r = dv_ready(x, claim, err)) != 0)
                        return r < 0 ? r : 0;
                if (*source && strcmp(source, node))
                        return failf(x, err, "VirtualMachine %s: its claims are on nodes %s and %s", vm,
                                     source, node);
                snprintf(source, sizeof(source), "%s", node);
                _cleanup_free_ char *to = cold_migration_claim_name(claim);
                if (!to)
                        return -ENOMEM;
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "volume", kube_str(v, "name") ?: "");
                cJSON_AddStringToObject(p, "from", claim);
                cJSON_AddStringToObject(p, "to", to);
                if (dv)
                        cJSON_AddTrueToObject(p, "dataVolume");
                cJSON_AddItemToArray(claims, p);
        }
        if (!*source)
                return failf(
                    x, err,
                    "VirtualMachine %s has no node-local claim (volume.kubernetes.io/selected-node): "
                    "it starts on any node as it is",
                    vm);
        const char *want = annotation(x->vm, VM_ANN_COLD_MIGRATE);
        if (want && *want && !strcmp(want, source))
                return failf(x, err, "VirtualMachine %s: its claims are on node %s already", vm, source);
        st_set(x, "phase", "Copying");
        st_set(x, "message", NULL);
        st_set(x, "sourceNode", source);
        st_set(x, "targetNode", want && *want ? want : NULL);
        cJSON_DeleteItemFromObjectCaseSensitive(x->st, "claims");
        cJSON_AddItemToObject(x->st, "claims", cJSON_Duplicate(claims, true));
        log_info("VM %s/%s: cold migration from node %s to %s", x->ns, vm, source,
                 want && *want ? want : "a node the scheduler picks");
        return write_status(x, false, err);
}

static void add_cmd(cJSON *ctr, const char *const *argv, size_t n)
{
        cJSON *cmd = cJSON_AddArrayToObject(ctr, "command");
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
}

static cJSON *container(cJSON *containers, const char *name, const char *image)
{
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", name);
        cJSON_AddStringToObject(c, "image", image);
        cJSON_AddItemToArray(containers, c);
        return c;
}

static cJSON *copy_pod(cold_ctx *x, const char *name, const char *claim, const char *path, bool ro)
{
        cJSON *pod = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(pod, "metadata"),
              *spec = cJSON_AddObjectToObject(pod, "spec");
        cJSON_AddStringToObject(pod, "apiVersion", "v1");
        cJSON_AddStringToObject(pod, "kind", "Pod");
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", x->ns);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), COLD_LABEL, x->name);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(x->vm, kube_vm.api_version, kube_vm.kind));
        cJSON_AddStringToObject(spec, "restartPolicy", "Never");
        cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
        cJSON *pvc = cJSON_CreateObject(), *vols = cJSON_AddArrayToObject(spec, "volumes"),
              *ctrs = cJSON_AddArrayToObject(spec, "containers"),
              *ctr = container(ctrs, ro ? "export" : "verify", x->c->opts.importer_image);
        cJSON_AddStringToObject(pvc, "claimName", claim);
        if (ro)
                cJSON_AddBoolToObject(pvc, "readOnly", true);
        pod_add_volume(vols, cJSON_AddArrayToObject(ctr, "volumeMounts"), "disk", "persistentVolumeClaim",
                       pvc, path, ro);
        return pod;
}

/* The source Pod: the claim's disk.img read-only over NBD; the scheduler puts it on the claim's node. */
static cJSON *source_pod(cold_ctx *x, const char *name, const char *claim, int port)
{
        cJSON *pod = copy_pod(x, name, claim, "/source", true);
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        const char *argv[] = {"qemu-nbd",        "--read-only",    "--persistent", "--shared=4",
                              "--format=raw",    "--bind=0.0.0.0", "--port",       p,
                              "/source/disk.img"};
        add_cmd(cJSON_GetArrayItem(kube_obj(pod, "spec.containers"), 0), argv, ARRAY_SIZE(argv));
        return pod;
}

/* nodeSelectorTerms each with `expr` added (terms are ORed, a term's expressions ANDed). */
static void require_node(cJSON *spec, const cJSON *tmpl, cJSON *expr)
{
        cJSON *aff = cJSON_Duplicate(kube_obj(tmpl, "affinity"), true) ?: cJSON_CreateObject();
        cJSON *na = cJSON_GetObjectItemCaseSensitive(aff, "nodeAffinity")
                        ?: cJSON_AddObjectToObject(aff, "nodeAffinity");
        const char *req = "requiredDuringSchedulingIgnoredDuringExecution";
        cJSON *r = cJSON_GetObjectItemCaseSensitive(na, req) ?: cJSON_AddObjectToObject(na, req);
        cJSON *terms = cJSON_GetObjectItemCaseSensitive(r, "nodeSelectorTerms")
                           ?: cJSON_AddArrayToObject(r, "nodeSelectorTerms");
        if (!cJSON_GetArraySize(terms))
                cJSON_AddItemToArray(terms, cJSON_CreateObject());
        cJSON *t;
        cJSON_ArrayForEach(t, terms)
        {
                cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "matchFields")
                               ?: cJSON_AddArrayToObject(t, "matchFields");
                cJSON_AddItemToArray(f, cJSON_Duplicate(expr, true));
        }
        cJSON_Delete(expr);
        cJSON_AddItemToObject(spec, "affinity", aff);
}

/* The target Pod: copies, then compares, on the node the VM's template allows, not the source node (or the
 * node named or already chosen). Its claim is unbound: the node it lands on is where the copy lives. */
static cJSON *target_pod(cold_ctx *x, const char *name, const char *claim, const char *addr, int port)
{
        cJSON *pod = copy_pod(x, name, claim, "/data", false), *spec = kube_obj(pod, "spec");
        const cJSON *tmpl = kube_obj(x->vm, "spec.template.spec");
        const cJSON *tol = cJSON_GetObjectItemCaseSensitive(tmpl, "tolerations");
        if (tol)
                cJSON_AddItemToObject(spec, "tolerations", cJSON_Duplicate(tol, true));
        /* a node the VM's launcher Pod may go to (render_placement) */
        cJSON *sel = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tmpl, "nodeSelector"), true);
        if (!cJSON_IsObject(sel)) {
                cJSON_Delete(sel);
                sel = cJSON_CreateObject();
        }
        cJSON_DeleteItemFromObjectCaseSensitive(sel, POD_NODE_SELECTOR_SCHEDULABLE);
        cJSON_AddStringToObject(sel, POD_NODE_SELECTOR_SCHEDULABLE, "true");
        cJSON_AddItemToObject(spec, "nodeSelector", sel);
        const char *target = st_str(x, "targetNode");
        cJSON *expr = cJSON_CreateObject();
        cJSON_AddStringToObject(expr, "key", "metadata.name");
        cJSON_AddStringToObject(expr, "operator", target ? "In" : "NotIn");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(expr, "values"),
                             cJSON_CreateString(target ?: st_str(x, "sourceNode")));
        require_node(spec, tmpl, expr);
        /* open-timeout: the source's qemu-nbd may not listen yet when its Pod is Running */
        char src[256];
        snprintf(src, sizeof(src),
                 "driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=%s,file.server.port=%d,"
                 "file.open-timeout=60",
                 addr, port);
        cJSON *verify = cJSON_GetArrayItem(kube_obj(spec, "containers"), 0);
        cJSON *copy = cJSON_Duplicate(verify, true);
        cJSON_ReplaceItemInObject(copy, "name", cJSON_CreateString("copy"));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "initContainers"), copy);
        const char *cp[] = {"qemu-img", "convert", "--image-opts", src, "-O", "raw", "/data/disk.img"};
        const char *cmp[] = {"qemu-img", "compare", "--image-opts", src,
                             "driver=raw,file.driver=file,file.filename=/data/disk.img"};
        add_cmd(copy, cp, ARRAY_SIZE(cp));
        add_cmd(verify, cmp, ARRAY_SIZE(cmp));
        return pod;
}

/* Why a Pod cannot go on: it failed, or the scheduler found no node for it; NULL while it may. */
static const char *pod_failure(const cJSON *pod, char *msg, size_t size)
{
        const char *name = kube_str(pod, "metadata.name");
        if (!strcmp(kube_str(pod, "status.phase") ?: "", "Failed")) {
                const cJSON *cs;
                cJSON_ArrayForEach(cs, kube_obj(pod, "status.initContainerStatuses"))
                {
                        const cJSON *t = kube_obj(cs, "state.terminated");
                        if (t && kube_obj(t, "exitCode") && kube_obj(t, "exitCode")->valueint != 0) {
                                snprintf(msg, size, "Pod %s: container %s exited %d", name,
                                         kube_str(cs, "name") ?: "?", kube_obj(t, "exitCode")->valueint);
                                return msg;
                        }
                }
                cJSON_ArrayForEach(cs, kube_obj(pod, "status.containerStatuses"))
                {
                        const cJSON *t = kube_obj(cs, "state.terminated");
                        int code = t && kube_obj(t, "exitCode") ? kube_obj(t, "exitCode")->valueint : -1;
                        snprintf(msg, size, "Pod %s: container %s exited %d%s", name,
                                 kube_str(cs, "name") ?: "?", code,
                                 code == 1 && strstr(name, "-dst") ? " (the copy differs from the source)"
                                                                   : "");
                        return msg;
                }
                snprintf(msg, size, "Pod %s failed: %s", name,
                         kube_str(pod, "status.message") ?: "no message");
                return msg;
        }
        const cJSON *cond;
        cJSON_ArrayForEach(cond, kube_obj(pod, "status.conditions"))
        {
                if (!strcmp(kube_str(cond, "type") ?: "", "PodScheduled") &&
                    !strcmp(kube_str(cond, "status") ?: "", "False") &&
                    !strcmp(kube_str(cond, "reason") ?: "", "Unschedulable")) {
                        snprintf(msg, size, "Pod %s cannot be scheduled: %s", name,
                                 kube_str(cond, "message") ?: "no message");
                        return msg;
                }
        }
        return NULL;
}

/* The Pod `name`, created by `make` when missing; NULL in *out while it is being created. */
static int ensure_pod(cold_ctx *x, const char *name,
                      cJSON *(*make)(cold_ctx *, const char *, const char *, const char *, int),
                      const char *claim, const char *addr, int port, cJSON **out, kv_error *err)
{
        int r = kube_get(x->api, &kube_pod, x->ns, name, out, err);
        if (r != -KUBE_ENOTFOUND)
                return r;
        *err = (kv_error){0};
        _cleanup_json_ cJSON *want = make(x, name, claim, addr, port);
        r = kube_create(x->api, &kube_pod, x->ns, want, NULL, err);
        if (r == 0)
                log_info("VM %s/%s: cold migration Pod %s for claim %s", x->ns, x->name, name, claim);
        return r < 0 && r != -KUBE_EEXISTS ? r : 0;
}

static cJSON *make_source(cold_ctx *x, const char *name, const char *claim, const char *addr, int port)
{
        (void)addr;
        return source_pod(x, name, claim, port);
}

/* The copy claim, created like the old one but unbound: it is bound where the target Pod is scheduled. It has
 * the old one's owners; a DataVolume's copy is owned by the VM (not as controller) until its DataVolume takes
 * it over. */
static int ensure_claim(cold_ctx *x, const cJSON *p, cJSON **out, kv_error *err)
{
        const char *from = kube_str(p, "from"), *to = kube_str(p, "to");
        int r = kube_get(x->api, &kube_pvc, x->ns, to, out, err);
        if (r != -KUBE_ENOTFOUND)
                return r;
        *err = (kv_error){0};
        _cleanup_json_ cJSON *src = NULL;
        if ((r = kube_get(x->api, &kube_pvc, x->ns, from, &src, err)) < 0)
                return r;
        claim_clone cc = {.ns = x->ns, .src = from, .dst = to};
        _cleanup_json_ cJSON *want = claim_clone_claim(&cc, src);
        cJSON *md = kube_obj(want, "metadata");
        cJSON_AddStringToObject(kube_obj(want, "metadata.annotations"), COLD_ANN_OF, x->name);
        const cJSON *owners = kube_obj(src, "metadata.ownerReferences");
        if (is_dv(p)) {
                cJSON *ref = kube_controller_ref_of(x->vm, kube_vm.api_version, kube_vm.kind);
                cJSON_ReplaceItemInObject(ref, "controller", cJSON_CreateFalse());
                cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"), ref);
        } else if (owners) {
                cJSON_AddItemToObject(md, "ownerReferences", cJSON_Duplicate(owners, true));
        }
        r = kube_create(x->api, &kube_pvc, x->ns, want, out, err);
        return r == -KUBE_EEXISTS ? kube_get(x->api, &kube_pvc, x->ns, to, out, err) : r;
}

/* One claim's copy: claim, source Pod, target Pod; done once the target Pod has compared the copy. */
static int copy_step(cold_ctx *x, const cJSON *p, int port, kv_error *err)
{
        const char *from = kube_str(p, "from"), *to = kube_str(p, "to");
        char src[300], dst[300];
        pod_names(to, src, dst, sizeof(src));
        _cleanup_json_ cJSON *claim = NULL, *spod = NULL, *tpod = NULL;
        int r = ensure_claim(x, p, &claim, err);
        if (r < 0)
                return r;
        const char *by = annotation(claim, CLONE_ANN_DONE);
        if (by && !strcmp(by, dst))
                return COPY_DONE;
        if ((r = ensure_pod(x, src, make_source, from, NULL, port, &spod, err)) < 0)
                return r;
        if (pod_failure(spod, x->msg, sizeof(x->msg)))
                return COPY_FAILED;
        const char *addr = kube_str(spod, "status.podIP");
        if (strcmp(kube_str(spod, "status.phase") ?: "", "Running") || !addr ||
            strspn(addr, "0123456789abcdefABCDEF.:") != strlen(addr))
                return COPY_RUNNING;
        if ((r = ensure_pod(x, dst, target_pod, to, addr, port, &tpod, err)) < 0 || !tpod)
                return r < 0 ? r : COPY_RUNNING;
        if (pod_failure(tpod, x->msg, sizeof(x->msg)))
                return COPY_FAILED;
        const char *node = kube_str(tpod, "spec.nodeName");
        if (node && !st_str(x, "targetNode")) {
                st_set(x, "targetNode", node);
                if ((r = write_status(x, false, err)) < 0)
                        return r;
        }
        if (strcmp(kube_str(tpod, "status.phase") ?: "", "Succeeded"))
                return COPY_RUNNING;
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, CLONE_ANN_DONE, dst);
        if (is_dv(p)) /* the DataVolume made over it finds it filled, as CDI a pre-populated claim */
                cJSON_AddStringToObject(ann, DV_ANN_POPULATED, "Succeeded");
        if ((r = kube_merge_patch(x->api, &kube_pvc, x->ns, to, patch, false, NULL, err)) < 0)
                return r;
        log_info("VM %s/%s: claim %s copied to %s on node %s and verified", x->ns, x->name, from, to,
                 node ?: "?");
        if ((r = kube_delete(x->api, &kube_pod, x->ns, dst, NULL, NULL, NULL, err)) < 0)
                return r;
        return (r = kube_delete(x->api, &kube_pod, x->ns, src, NULL, NULL, NULL, err)) < 0 ? r : COPY_DONE;
}

/* The old DataVolume's labels, annotations, owners and spec under the copy's name. */
static cJSON *datavolume_copy(const cold_ctx *x, const cJSON *old, const char *name)
{
        cJSON *dv = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(dv, "metadata");
        cJSON_AddStringToObject(dv, "apiVersion", kube_datavolume.api_version);
        cJSON_AddStringToObject(dv, "kind", kube_datavolume.kind);
        cJSON_AddStringToObject(md, "name", name);
        cJSON_AddStringToObject(md, "namespace", x->ns);
        static const char *const keep[] = {"labels", "annotations", "ownerReferences"};
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(kube_obj(old, "metadata"), keep[i]);
                if (v)
                        cJSON_AddItemToObject(md, keep[i], cJSON_Duplicate(v, true));
        }
        cJSON *ann =
            cJSON_GetObjectItemCaseSensitive(md, "annotations") ?: cJSON_AddObjectToObject(md, "annotations");
        cJSON_DeleteItemFromObjectCaseSensitive(ann, DV_ANN_ALLOW_ADOPTION);
        cJSON_AddStringToObject(ann, DV_ANN_ALLOW_ADOPTION, "true");
        cJSON_DeleteItemFromObjectCaseSensitive(ann, COLD_ANN_OF);
        cJSON_AddStringToObject(ann, COLD_ANN_OF, x->name);
        /* CDI's word for a DataVolume whose claim holds its data already (CDI does not import into it) */
        cJSON_DeleteItemFromObjectCaseSensitive(ann, DV_ANN_PREPOPULATED);
        cJSON_AddStringToObject(ann, DV_ANN_PREPOPULATED, name);
        const cJSON *spec = kube_obj(old, "spec");
        cJSON_AddItemToObject(dv, "spec", spec ? cJSON_Duplicate(spec, true) : cJSON_CreateObject());
        return dv;
}

/* The copy's DataVolume, made once the copy is verified: it adopts the copy claim, filled already, and is
 * Succeeded without importing. Done when it is. */
static int datavolume_step(cold_ctx *x, const cJSON *p, kv_error *err)
{
        const char *from = kube_str(p, "from"), *to = kube_str(p, "to");
        _cleanup_json_ cJSON *dv = NULL, *old = NULL;
        int r = kube_get(x->api, &kube_datavolume, x->ns, to, &dv, err);
        if (r == -KUBE_ENOTFOUND) {
                *err = (kv_error){0};
                if ((r = kube_get(x->api, &kube_datavolume, x->ns, from, &old, err)) == -KUBE_ENOTFOUND) {
                        *err = (kv_error){0};
                        snprintf(x->msg, sizeof(x->msg), "DataVolume %s/%s not found", x->ns, from);
                        return COPY_FAILED;
                }
                if (r < 0)
                        return r;
                _cleanup_json_ cJSON *want = datavolume_copy(x, old, to);
                r = kube_create(x->api, &kube_datavolume, x->ns, want, NULL, err);
                if (r == 0)
                        log_info("VM %s/%s: DataVolume %s made for claim %s", x->ns, x->name, to, to);
                return r < 0 && r != -KUBE_EEXISTS ? r : COPY_RUNNING;
        }
        if (r < 0)
                return r;
        const char *phase = kube_str(dv, "status.phase") ?: "";
        if (!strcmp(phase, "Succeeded"))
                return COPY_DONE;
        if (!strcmp(phase, "Failed")) {
                snprintf(x->msg, sizeof(x->msg), "DataVolume %s failed", to);
                return COPY_FAILED;
        }
        return COPY_RUNNING;
}

static void rename_field(cJSON *obj, const char *key, const char *from, const char *to)
{
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key)) ?: "", from))
                cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateString(to));
}

static int switch_volumes(cJSON *vm, void *ud)
{
        cold_ctx *x = ud;
        const cJSON *p;
        cJSON *v;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(x->st, "claims"))
        {
                const char *from = kube_str(p, "from"), *to = kube_str(p, "to");
                cJSON_ArrayForEach(v, kube_obj(vm, "spec.template.spec.volumes"))
                {
                        rename_field(cJSON_GetObjectItemCaseSensitive(v, "persistentVolumeClaim"),
                                     "claimName", from, to);
                        rename_field(cJSON_GetObjectItemCaseSensitive(v, "dataVolume"), "name", from, to);
                }
                cJSON_ArrayForEach(v, kube_obj(vm, "spec.dataVolumeTemplates"))
                {
                        if (is_dv(p))
                                rename_field(kube_obj(v, "metadata"), "name", from, to);
                }
        }
        cJSON *ann = kube_obj(vm, "metadata.annotations");
        st_set(x, "phase", "Switching");
        _cleanup_free_ char *text = cJSON_PrintUnformatted(x->st);
        cJSON_DeleteItemFromObjectCaseSensitive(ann, VM_ANN_COLD_MIGRATION);
        cJSON_AddStringToObject(ann, VM_ANN_COLD_MIGRATION, text);
        return 1;
}

/* The VM names the copies: the old DataVolumes and claims go, then the request. */
static int finish(cold_ctx *x, kv_error *err)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(x->st, "claims"))
        {
                const char *from = kube_str(p, "from");
                int r = is_dv(p) ? kube_delete(x->api, &kube_datavolume, x->ns, from, NULL, NULL,
                                               "Background", err)
                                 : 0;
                if (r >= 0)
                        r = kube_delete(x->api, &kube_pvc, x->ns, from, NULL, NULL, "Background", err);
                if (r < 0)
                        return r;
        }
        log_info("VM %s/%s: cold migration to node %s done", x->ns, x->name, st_str(x, "targetNode") ?: "?");
        st_set(x, "phase", "Succeeded");
        return write_status(x, true, err);
}

int vm_cold_migrate_step(controller *c, kube_client *api, const cJSON *vm, const cJSON *vmi, kv_error *err)
{
        if (!vm_cold_migrate_holds(vm) || kube_obj(vm, "metadata.deletionTimestamp"))
                return 0;
        cold_ctx x = {.c = c,
                      .api = api,
                      .vm = vm,
                      .ns = kube_str(vm, "metadata.namespace"),
                      .name = kube_str(vm, "metadata.name")};
        _cleanup_json_ cJSON *st = cJSON_Parse(annotation(vm, VM_ANN_COLD_MIGRATION) ?: "");
        if (!cJSON_IsObject(st) ||
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(st, "phase")) ?: "", "Succeeded") ||
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(st, "phase")) ?: "", "Failed")) {
                cJSON_Delete(st); /* a new request: what an earlier one left is replaced */
                st = cJSON_CreateObject();
        }
        x.st = st;
        const char *phase = st_str(&x, "phase") ?: "";
        if (!strcmp(phase, "Switching")) {
                int r = finish(&x, err);
                return r < 0 ? r : 0;
        }
        if (vmi) {
                int r = failf(&x, err,
                              "VirtualMachine %s is running: stop it first, or move it live with a "
                              "VirtualMachineInstanceMigration",
                              x.name);
                return r < 0 ? r : 0;
        }
        if (strcmp(phase, "Copying")) {
                int r = plan(&x, err);
                return r < 0 ? r : COLD_RECHECK_MS;
        }
        int port = COLD_MIGRATION_NBD_PORT;
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(st, "claims"))
        {
                int r = copy_step(&x, p, port++, err);
                if (r < 0)
                        return r;
                if (r == COPY_FAILED) {
                        char why[1024];
                        snprintf(why, sizeof(why), "%s", x.msg);
                        return (r = fail(&x, why, err)) < 0 ? r : 0;
                }
                if (r == COPY_RUNNING)
                        return COLD_RECHECK_MS;
        }
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(st, "claims"))
        {
                int r = is_dv(p) ? datavolume_step(&x, p, err) : COPY_DONE;
                if (r < 0)
                        return r;
                if (r == COPY_FAILED)
                        return (r = fail(&x, x.msg, err)) < 0 ? r : 0;
                if (r == COPY_RUNNING)
                        return COLD_RECHECK_MS;
        }
        /* finished at the next step, with the VM as switched: a VM read before the switch, which names the
         * old DataVolumes, is not taken for one whose DataVolumes are missing */
        int r = kube_update_retry(api, &kube_vm, x.ns, x.name, NULL, false, switch_volumes, &x, NULL, err);
        return r < 0 ? r : COLD_RECHECK_MS;
}
