/* DataVolume reconciler: a DataVolume → its PersistentVolumeClaim (same name, owned by the DataVolume) → an
 * importer Pod running kvlite-importer into the claim → CDI's phases, progress, conditions and restart count.
 * Progress comes from the importer's stdout through pods/log, the result from its termination message (the
 * importer writes its result line there); docs/datavolumes.md. */
#include "controller.h"
#include "datavolume.h"
#include "log.h"
#include "podrender.h"
#include "statusfields.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DATA_MOUNT "/data"
#define CLONE_SOURCE_MOUNT "/source" /* a pvc source's claim */
#define REGISTRY_MOUNT "/etc/kvlite/registries"
#define SOURCE_AUTH_MOUNT "/etc/kvlite/source-auth"     /* secretRef */
#define SOURCE_CERTS_MOUNT "/etc/kvlite/source-certs"   /* certConfigMap */
#define EXTRA_HEADERS_MOUNT "/etc/kvlite/extra-headers" /* secretExtraHeaders, one folder each */
#define ANN_STORAGE "cdi.kubevirt.io/storage."
#define ANN_RESTART_BASE "kvlite.io/restart-base" /* the DataVolume's restartCount when the Pod was made */
#define POD_RETRY_MIN_S 5
#define POD_RETRY_MAX_S 300

/* Importer exit codes (docs/importer.md) that no retry can fix: usage, bad image, no space. */
static bool permanent_exit(int code)
{
        return code == 2 || code == 4 || code == 5;
}

const cJSON *dv_controller_ref(const cJSON *obj)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences")) if (
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "controller"))) return o;
        return NULL;
}

bool owned_by_controller(const cJSON *obj, const cJSON *owner)
{
        const char *uid = kube_str(dv_controller_ref(obj), "uid"), *ouid = kube_str(owner, "metadata.uid");
        return uid && ouid && !strcmp(uid, ouid);
}

static const char *claim_size(const cJSON *dv)
{
        return kube_str(dv, "spec.pvc.resources.requests.storage")
                   ?: kube_str(dv, "spec.storage.resources.requests.storage");
}

/* The source's kind ("registry", "http", "blank", ...): exactly one key of spec.source. */
static const char *source_kind(const cJSON *dv)
{
        const cJSON *src = kube_obj(dv, "spec.source");
        return cJSON_IsObject(src) && src->child && !src->child->next ? src->child->string : NULL;
}

/* ---- the claim ---- */

static void add_str(cJSON *obj, const char *key, const char *value)
{
        if (value)
                cJSON_AddStringToObject(obj, key, value);
}

/* spec.pvc as it is, or spec.storage with CDI's defaults for what it leaves out (ReadWriteOnce). */
static cJSON *claim_spec(const cJSON *dv)
{
        const cJSON *pvc = kube_obj(dv, "spec.pvc"), *storage = kube_obj(dv, "spec.storage");
        if (pvc)
                return cJSON_Duplicate(pvc, true);
        /* neither: an empty spec (it used to leak the access modes added to nothing) */
        cJSON *spec = storage ? cJSON_Duplicate(storage, true) : cJSON_CreateObject();
        if (!cJSON_GetObjectItemCaseSensitive(spec, "accessModes")) {
                cJSON *modes = cJSON_AddArrayToObject(spec, "accessModes");
                cJSON_AddItemToArray(modes, cJSON_CreateString("ReadWriteOnce"));
        }
        const char *mode = kube_str(spec, "volumeMode");
        if (mode && !strcmp(mode, "FromStorageProfile"))
                cJSON_DeleteItemFromObjectCaseSensitive(spec, "volumeMode");
        return spec;
}

static cJSON *claim_for(const cJSON *dv)
{
        const char *kind = source_kind(dv);
        cJSON *pvc = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(pvc, "metadata");
        cJSON_AddStringToObject(pvc, "apiVersion", "v1");
        cJSON_AddStringToObject(pvc, "kind", "PersistentVolumeClaim");
        add_str(md, "name", kube_str(dv, "metadata.name"));
        add_str(md, "namespace", kube_str(dv, "metadata.namespace"));
        cJSON *labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_AddStringToObject(labels, "app", DV_IMPORTER_APP);
        cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
        const char *endpoint =
            kube_str(dv, "spec.source.registry.url") ?: kube_str(dv, "spec.source.http.url");
        add_str(ann, ANN_STORAGE "import.endpoint", endpoint);
        cJSON_AddStringToObject(ann, ANN_STORAGE "import.source",
                                kind && !strcmp(kind, "blank") ? "none"
                                : kind                         ? kind
                                                               : "none");
        cJSON_AddStringToObject(ann, ANN_STORAGE "contentType", "kubevirt");
        char pod[300];
        snprintf(pod, sizeof(pod), DV_IMPORTER_PREFIX "%s", kube_str(dv, "metadata.name"));
        cJSON_AddStringToObject(ann, ANN_STORAGE "import.importPodName", pod);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(dv, "cdi.kubevirt.io/v1beta1", "DataVolume"));
        cJSON_AddItemToObject(pvc, "spec", claim_spec(dv));
        return pvc;
}

/* ---- the importer Pod ---- */

static void add_arg(cJSON *cmd, const char *a, const char *b)
{
        cJSON_AddItemToArray(cmd, cJSON_CreateString(a));
        if (b)
                cJSON_AddItemToArray(cmd, cJSON_CreateString(b));
}

static cJSON *secret_source(const char *name)
{
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "secretName", name);
        return s;
}

static cJSON *configmap_source(const char *name)
{
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", name);
        return s;
}

/* CDI's secretRef (a Secret with accessKeyId and secretKey: the user name and password) and certConfigMap
 * (a ConfigMap whose *.crt and *.pem keys are CA certificates), shared by the registry and http sources:
 * mounted, and read by the importer from the files. For a registry source they go to the registry the
 * reference names only (docs/importer.md). */
static void source_auth_args(const cJSON *src, cJSON *cmd, cJSON *vols, cJSON *mounts)
{
        const char *secret = kube_str(src, "secretRef"), *certs = kube_str(src, "certConfigMap");
        if (secret) {
                add_arg(cmd, "--username-file", SOURCE_AUTH_MOUNT "/accessKeyId");
                add_arg(cmd, "--password-file", SOURCE_AUTH_MOUNT "/secretKey");
                pod_add_volume(vols, mounts, "cdi-source-auth", "secret", secret_source(secret),
                               SOURCE_AUTH_MOUNT, true);
        }
        if (certs) {
                add_arg(cmd, "--cert-dir", SOURCE_CERTS_MOUNT);
                pod_add_volume(vols, mounts, "cdi-cert-vol", "configMap", configmap_source(certs),
                               SOURCE_CERTS_MOUNT, true);
        }
}

/* spec.source.http → flags: checksum, extraHeaders, insecureSkipVerify, and secretExtraHeaders (each Secret
 * mounted; every key of it is one "Name: value" header). */
static void http_args(const cJSON *http, cJSON *cmd, cJSON *vols, cJSON *mounts)
{
        add_arg(cmd, "--http-url", kube_str(http, "url"));
        if (kube_str(http, "checksum"))
                add_arg(cmd, "--checksum", kube_str(http, "checksum"));
        const cJSON *h;
        cJSON_ArrayForEach(h, kube_obj(http, "extraHeaders")) if (cJSON_IsString(h))
            add_arg(cmd, "--header", h->valuestring);
        int i = 0;
        cJSON_ArrayForEach(h, kube_obj(http, "secretExtraHeaders")) if (cJSON_IsString(h) && i < 8)
        {
                char vol[32], path[64];
                snprintf(vol, sizeof(vol), "cdi-extra-headers-%d", i);
                snprintf(path, sizeof(path), EXTRA_HEADERS_MOUNT "/%d", i++);
                add_arg(cmd, "--header-dir", path);
                pod_add_volume(vols, mounts, vol, "secret", secret_source(h->valuestring), path, true);
        }
        if (cJSON_IsTrue(kube_obj(http, "insecureSkipVerify")))
                add_arg(cmd, "--insecure", NULL);
        source_auth_args(http, cmd, vols, mounts);
}

/* CDI's pvc clone source: the claim mounted read-only, its disk.img copied (kvlite-importer --pvc-source). A
 * Pod mounts claims of its own namespace only: a clone from another namespace is refused. */
static int clone_args(const cJSON *dv, cJSON *cmd, cJSON *vols, cJSON *mounts, kv_error *err)
{
        const char *name = kube_str(dv, "spec.source.pvc.name"),
                   *ns = kube_str(dv, "spec.source.pvc.namespace"), *own = kube_str(dv, "metadata.namespace");
        if (!name)
                return kv_error_set(err, EINVAL, "spec.source.pvc.name: required");
        if (ns && own && strcmp(ns, own))
                return kv_error_set(err, EINVAL,
                                    "spec.source.pvc.namespace: cloning from another namespace (%s) is not "
                                    "supported by kvlite",
                                    ns);
        cJSON *claim = cJSON_CreateObject();
        cJSON_AddStringToObject(claim, "claimName", name);
        cJSON_AddBoolToObject(claim, "readOnly", true);
        pod_add_volume(vols, mounts, "cdi-source-vol", "persistentVolumeClaim", claim, CLONE_SOURCE_MOUNT,
                       true);
        add_arg(cmd, "--pvc-source", CLONE_SOURCE_MOUNT);
        return 0;
}

/* The command for the DataVolume's source; -EINVAL (message for the DataVolume's condition) when kvlite
 * cannot import it. */
static int importer_command(const cJSON *dv, const char *regcfg_secret, cJSON *cmd, cJSON *vols,
                            cJSON *mounts, kv_error *err)
{
        const char *kind = source_kind(dv), *size = claim_size(dv);
        add_arg(cmd, "kvlite-importer", NULL);
        if (!kind)
                return kv_error_set(err, EINVAL, "spec.source: exactly one source is required");
        if (!strcmp(kind, "registry")) {
                const char *url = kube_str(dv, "spec.source.registry.url");
                if (!url)
                        return kv_error_set(
                            err, EINVAL, "spec.source.registry.url: required (imageStream is not supported)");
                add_arg(cmd, "--registry-url", url);
                if (regcfg_secret) {
                        add_arg(cmd, "--registry-config", REGISTRY_MOUNT "/registries.yaml");
                        pod_add_volume(vols, mounts, "registries", "secret", secret_source(regcfg_secret),
                                       REGISTRY_MOUNT, true);
                }
                source_auth_args(kube_obj(dv, "spec.source.registry"), cmd, vols, mounts);
        } else if (!strcmp(kind, "http")) {
                if (!kube_str(dv, "spec.source.http.url"))
                        return kv_error_set(err, EINVAL, "spec.source.http.url: required");
                http_args(kube_obj(dv, "spec.source.http"), cmd, vols, mounts);
        } else if (!strcmp(kind, "blank")) {
                if (!size)
                        return kv_error_set(err, EINVAL, "a blank DataVolume needs a storage size");
                add_arg(cmd, "--blank", size);
        } else if (!strcmp(kind, "pvc")) {
                int r = clone_args(dv, cmd, vols, mounts, err);
                if (r < 0)
                        return r;
        } else {
                return kv_error_set(
                    err, EINVAL,
                    "spec.source.%s: not supported by kvlite (registry, http, blank and pvc are)", kind);
        }
        add_arg(cmd, "--dest", DATA_MOUNT);
        if (size)
                add_arg(cmd, "--size", size);
        add_arg(cmd, "--termination-log", "/dev/termination-log");
        return 0;
}

static cJSON *importer_pod(controller *c, const cJSON *dv, const char *regcfg_secret, int restart_base,
                           kv_error *err)
{
        _cleanup_json_ cJSON *pod = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(pod, "metadata"), *spec = cJSON_CreateObject(),
              *ctr = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(ctr, "command"),
              *mounts = cJSON_AddArrayToObject(ctr, "volumeMounts");
        cJSON *vols = cJSON_AddArrayToObject(spec, "volumes");
        cJSON_AddStringToObject(pod, "apiVersion", "v1");
        cJSON_AddStringToObject(pod, "kind", "Pod");
        char name[300], base[16];
        snprintf(name, sizeof(name), DV_IMPORTER_PREFIX "%s", kube_str(dv, "metadata.name"));
        snprintf(base, sizeof(base), "%d", restart_base);
        cJSON_AddStringToObject(md, "name", name);
        add_str(md, "namespace", kube_str(dv, "metadata.namespace"));
        cJSON *labels = cJSON_AddObjectToObject(md, "labels");
        cJSON_AddStringToObject(labels, "app", DV_IMPORTER_APP);
        cJSON_AddStringToObject(labels, "cdi.kubevirt.io", "importer");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), ANN_RESTART_BASE, base);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(dv, "cdi.kubevirt.io/v1beta1", "DataVolume"));
        cJSON_AddItemToObject(pod, "spec", spec);
        cJSON_AddStringToObject(spec, "restartPolicy", "OnFailure");
        cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
        cJSON *claim = cJSON_CreateObject();
        cJSON_AddStringToObject(claim, "claimName", kube_str(dv, "metadata.name"));
        pod_add_volume(vols, mounts, "cdi-data-vol", "persistentVolumeClaim", claim, DATA_MOUNT, false);
        if (importer_command(dv, regcfg_secret, cmd, vols, mounts, err) < 0)
                return NULL;
        cJSON_AddStringToObject(ctr, "name", "importer");
        cJSON_AddStringToObject(ctr, "image", c->opts.importer_image);
        cJSON_AddStringToObject(ctr, "terminationMessagePath", "/dev/termination-log");
        cJSON_AddStringToObject(ctr, "terminationMessagePolicy", "FallbackToLogsOnError");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), ctr);
        cJSON *ret = pod;
        pod = NULL;
        return ret;
}

int registry_config_copy(controller *c, kube_client *api, const cJSON *owner, const char *api_version,
                         const char *kind, const char *copy_name, char **name, kv_error *err)
{
        *name = NULL;
        if (!c->opts.registry_config)
                return 0;
        _cleanup_free_ char *ref = strdup(c->opts.registry_config);
        char *ns, *sname;
        if (!ref || key_split(ref, &ns, &sname) < 0)
                return kv_error_set(err, EINVAL, "--registry-config %s: want NAMESPACE/NAME",
                                    c->opts.registry_config);
        _cleanup_json_ cJSON *src = NULL;
        int r = kube_get(api, &kube_secret, ns, sname, &src, err);
        if (r == -KUBE_ENOTFOUND) {
                log_debug("registry configuration Secret %s/%s not found: importing without it", ns, sname);
                return 0;
        }
        if (r < 0)
                return r;
        _cleanup_json_ cJSON *copy = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(copy, "metadata");
        if (!(*name = strdup(copy_name)))
                return kv_error_errno(err, ENOMEM, "secret name");
        cJSON_AddStringToObject(copy, "apiVersion", "v1");
        cJSON_AddStringToObject(copy, "kind", "Secret");
        cJSON_AddStringToObject(md, "name", *name);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(owner, api_version, kind));
        cJSON_AddStringToObject(copy, "type", "Opaque");
        const cJSON *data = kube_obj(src, "data"), *sdata = kube_obj(src, "stringData");
        cJSON_AddItemToObject(copy, "data", data ? cJSON_Duplicate(data, true) : cJSON_CreateObject());
        if (sdata) /* what an API server that keeps it as written returns */
                cJSON_AddItemToObject(copy, "stringData", cJSON_Duplicate(sdata, true));
        r = kube_create(api, &kube_secret, kube_str(owner, "metadata.namespace"), copy, NULL, err);
        return r == -KUBE_EEXISTS ? 0 : r;
}

int launcher_pod_opts(controller *c, kube_client *api, const cJSON *vmi, pod_render_opts *opts, char **secret,
                      kv_error *err)
{
        char copy_name[300];
        *opts = c->opts.pod;
        *secret = NULL;
        snprintf(copy_name, sizeof(copy_name), "virt-launcher-%.230s-registries",
                 kube_str(vmi, "metadata.name"));
        if (!opts->importer_image)
                return 0;
        int r = registry_config_copy(c, api, vmi, "kubevirt.io/v1", "VirtualMachineInstance", copy_name,
                                     secret, err);
        opts->registry_secret = *secret;
        return r;
}

static int copy_registry_config(controller *c, kube_client *api, const cJSON *dv, char **name, kv_error *err)
{
        char copy_name[300];
        snprintf(copy_name, sizeof(copy_name), DV_IMPORTER_PREFIX "%s-registries",
                 kube_str(dv, "metadata.name"));
        return registry_config_copy(c, api, dv, "cdi.kubevirt.io/v1beta1", "DataVolume", copy_name, name,
                                    err);
}

/* ---- what the Pod says ---- */

static const cJSON *container_status(const cJSON *pod)
{
        return cJSON_GetArrayItem(kube_obj(pod, "status.containerStatuses"), 0);
}

/* The last line of text that is a JSON object with key (the importer prints JSON lines), or NULL. */
cJSON *last_json_line(const char *text, const char *key)
{
        _cleanup_free_ char *copy = text ? strdup(text) : NULL;
        if (!copy)
                return NULL;
        for (char *p = copy + strlen(copy); p-- > copy;) {
                if (*p != '{' || (p != copy && p[-1] != '\n'))
                        continue;
                char *nl = strchr(p, '\n');
                if (nl)
                        *nl = '\0';
                cJSON *o = cJSON_Parse(p);
                if (o && cJSON_GetObjectItemCaseSensitive(o, key))
                        return o;
                cJSON_Delete(o);
        }
        return NULL;
}

/* "served by A, B (digest sha256:…); passed over: C (manifest: connection refused)" */
void describe_registry(const cJSON *rep, char *out, size_t size)
{
        size_t n = 0;
        const cJSON *x, *served = kube_obj(rep, "servedBy"), *failed = kube_obj(rep, "failed");
        const char *digest = kube_str(rep, "digest");
#define ADD(...) (n += (size_t)snprintf(out + n, n < size ? size - n : 0, __VA_ARGS__))
        out[0] = '\0';
        cJSON_ArrayForEach(x, served) if (cJSON_IsString(x))
            ADD("%s %s", x == served->child ? "served by" : ",", x->valuestring);
        if (digest && *digest)
                ADD(" (digest %s)", digest);
        cJSON_ArrayForEach(x, failed)
            ADD("%s %s (%s: %s)", x == failed->child ? (n ? "; passed over:" : "passed over:") : ",",
                kube_str(x, "registry") ?: "?", kube_str(x, "what") ?: "?", kube_str(x, "reason") ?: "?");
#undef ADD
}

/* The last progress figure in the importer's log ("45.67%"), or NULL. */
static char *progress_from_log(kube_client *api, const cJSON *pod)
{
        _cleanup_free_ char *path = kube_path(&kube_pod, kube_str(pod, "metadata.namespace"),
                                              kube_str(pod, "metadata.name"), "log"),
                            *text = NULL;
        kv_error err = {0};
        if (!path || kube_get_text(api, path, &text, &err) < 0) {
                log_debug("importer log: %s", err.msg);
                return NULL;
        }
        _cleanup_json_ cJSON *line = last_json_line(text, "progress");
        const char *prog = kube_str(line, "progress");
        return prog ? strdup(prog) : NULL;
}

/* ---- status ---- */

typedef struct dv_status {
        const char *phase;
        const char *progress;
        int restarts;
        bool bound, ready;
        const char *bound_reason, *running_reason;
        bool running;
        char bound_msg[300], running_msg[1500];
        const cJSON *registry; /* the importer's report, or NULL */
} dv_status;

static bool dv_open(const cJSON *dv)
{
        const char *p = kube_str(dv, "status.phase");
        return !p || (strcmp(p, "Succeeded") && strcmp(p, "Failed"));
}

void post_object_event(kube_client *api, const cJSON *dv, const char *api_version, const char *kind,
                       const char *type, const char *reason, const char *message)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        _cleanup_json_ cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "apiVersion", "v1");
        cJSON_AddStringToObject(ev, "kind", "Event");
        cJSON *md = cJSON_AddObjectToObject(ev, "metadata"), *obj = cJSON_CreateObject();
        char name[300];
        snprintf(name, sizeof(name), "%s.%llx", kube_str(dv, "metadata.name"),
                 (unsigned long long)kv_now_ms());
        cJSON_AddStringToObject(md, "name", name);
        add_str(md, "namespace", kube_str(dv, "metadata.namespace"));
        cJSON_AddStringToObject(obj, "apiVersion", api_version);
        cJSON_AddStringToObject(obj, "kind", kind);
        add_str(obj, "name", kube_str(dv, "metadata.name"));
        add_str(obj, "namespace", kube_str(dv, "metadata.namespace"));
        add_str(obj, "uid", kube_str(dv, "metadata.uid"));
        cJSON_AddItemToObject(ev, "involvedObject", obj);
        cJSON_AddStringToObject(ev, "type", type);
        cJSON_AddStringToObject(ev, "reason", reason);
        cJSON_AddStringToObject(ev, "message", message);
        cJSON_AddStringToObject(ev, "firstTimestamp", now);
        cJSON_AddStringToObject(ev, "lastTimestamp", now);
        cJSON_AddNumberToObject(ev, "count", 1);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(ev, "source"), "component", "virt-controller");
        kv_error err = {0};
        if (kube_create(api, &kube_event, kube_str(dv, "metadata.namespace"), ev, NULL, &err) < 0)
                log_warning("event %s: %s", reason, err.msg);
}

static void post_event(kube_client *api, const cJSON *dv, const char *type, const char *reason,
                       const char *message)
{
        post_object_event(api, dv, "cdi.kubevirt.io/v1beta1", "DataVolume", type, reason, message);
}

/* CDI's failure Event (controller-base.go emitFailureConditionEvent): the claim bound, the import neither
 * done nor running, and the Running condition's message new: a Warning with that condition's reason and
 * message ("Error", "Import failed (exit 3): https://…: HTTP 401 Unauthorized"), once per message, so that a
 * retried import says why it fails in kubectl get events and kubectl describe. */
static void failure_event(kube_client *api, const cJSON *dv, const dv_status *s)
{
        if (s->ready || s->running || !s->bound || !s->running_reason || !s->running_msg[0] ||
            !strcmp(s->phase, "Failed")) /* Failed has its ImportFailed Event */
                return;
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(dv, "status.conditions"))
        {
                const char *type = kube_str(c, "type"), *msg = kube_str(c, "message");
                if (type && !strcmp(type, "Running") && msg && !strcmp(msg, s->running_msg))
                        return;
        }
        post_event(api, dv, "Warning", s->running_reason, s->running_msg);
}

static int write_status(kube_client *api, const cJSON *dv, const dv_status *s, kv_error *err)
{
        cJSON *f = cJSON_CreateObject(), *conds = cJSON_CreateArray();
        cJSON_AddStringToObject(f, "phase", s->phase);
        cJSON_AddStringToObject(f, "progress", s->progress ? s->progress : "N/A");
        cJSON_AddNumberToObject(f, "restartCount", s->restarts);
        cJSON_AddStringToObject(f, "claimName", kube_str(dv, "metadata.name"));
        cJSON_AddItemToArray(conds, status_condition("Bound", s->bound, s->bound_reason, s->bound_msg));
        cJSON_AddItemToArray(conds, status_condition("Ready", s->ready, s->ready ? "" : s->phase, ""));
        cJSON_AddItemToArray(
            conds, status_condition("Running", s->running, s->running_reason ?: "", s->running_msg));
        cJSON_AddItemToObject(f, "conditions", conds);
        cJSON_AddItemToObject(f, "registry",
                              s->registry ? cJSON_Duplicate(s->registry, true) : cJSON_CreateNull());
        int r = status_fields_write(api, &kube_datavolume, dv, f, dv_open, err);
        if (r == 0)
                failure_event(api, dv, s);
        return r;
}

/* ---- the steps ---- */

static void cleanup_importer(kube_client *api, const cJSON *dv, const cJSON *pod)
{
        const char *ns = kube_str(dv, "metadata.namespace");
        char name[300];
        kv_error err = {0};
        snprintf(name, sizeof(name), DV_IMPORTER_PREFIX "%s-registries", kube_str(dv, "metadata.name"));
        if (kube_delete(api, &kube_secret, ns, name, NULL, NULL, NULL, &err) < 0)
                log_debug("delete Secret %s: %s", name, err.msg);
        if (pod && !kube_obj(pod, "metadata.deletionTimestamp") &&
            kube_delete(api, &kube_pod, ns, kube_str(pod, "metadata.name"), kube_str(pod, "metadata.uid"),
                        NULL, NULL, &err) < 0)
                log_warning("delete importer Pod %s: %s", kube_str(pod, "metadata.name"), err.msg);
}

/* Marks the claim populated, as CDI's annotations do; a DataVolume made again over it is then done at once.
 */
static void mark_claim(kube_client *api, const cJSON *pvc, const char *phase, int restarts)
{
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "annotations");
        char r[16];
        snprintf(r, sizeof(r), "%d", restarts);
        cJSON_AddStringToObject(ann, ANN_STORAGE "pod.phase", phase);
        cJSON_AddStringToObject(ann, ANN_STORAGE "pod.restarts", r);
        kv_error err = {0};
        if (kube_merge_patch(api, &kube_pvc, kube_str(pvc, "metadata.namespace"),
                             kube_str(pvc, "metadata.name"), patch, false, NULL, &err) < 0)
                log_warning("annotate claim %s: %s", kube_str(pvc, "metadata.name"), err.msg);
}

static int finish(kube_client *api, const cJSON *dv, const cJSON *pvc, const cJSON *pod, dv_status *s,
                  bool ok, kv_error *err)
{
        int r = write_status(api, dv, s, err);
        if (r < 0)
                return r;
        mark_claim(api, pvc, s->phase, s->restarts);
        post_event(api, dv, ok ? "Normal" : "Warning", ok ? "ImportSucceeded" : "ImportFailed",
                   s->running_msg);
        log_info("DataVolume %s/%s: %s: %s", kube_str(dv, "metadata.namespace"),
                 kube_str(dv, "metadata.name"), s->phase, s->running_msg);
        cleanup_importer(api, dv, pod);
        return 0;
}

static int create_importer(controller *c, kube_client *api, const cJSON *dv, dv_status *s, kv_error *err)
{
        _cleanup_free_ char *secret = NULL;
        int r = copy_registry_config(c, api, dv, &secret, err);
        if (r < 0)
                return r;
        kv_error why = {0};
        _cleanup_json_ cJSON *pod = importer_pod(c, dv, secret, s->restarts, &why);
        if (!pod) { /* a source kvlite cannot import: Failed for good */
                s->phase = "Failed";
                s->running_reason = "Error";
                snprintf(s->running_msg, sizeof(s->running_msg), "%s", why.msg);
                post_event(api, dv, "Warning", "ImportFailed", why.msg);
                return write_status(api, dv, s, err);
        }
        r = kube_create(api, &kube_pod, kube_str(dv, "metadata.namespace"), pod, NULL, err);
        if (r < 0 && r != -KUBE_EEXISTS)
                return r;
        log_info("DataVolume %s/%s: importer Pod created", kube_str(dv, "metadata.namespace"),
                 kube_str(dv, "metadata.name"));
        s->phase = "ImportScheduled";
        return write_status(api, dv, s, err);
}

static long pod_age_s(const cJSON *pod)
{
        struct tm tm = {0};
        const char *ts = kube_str(pod, "metadata.creationTimestamp");
        if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
                return 0;
        return (long)(time(NULL) - timegm(&tm));
}

/* The Pod ran (or is running) the importer: its result, its retries and its progress. */
static int follow_importer(kube_client *api, const cJSON *dv, const cJSON *pvc, const cJSON *pod,
                           dv_status *s, kv_error *err)
{
        const cJSON *cs = container_status(pod);
        const char *phase = kube_str(pod, "status.phase") ?: "Pending";
        const char *base = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(pod, "metadata.annotations"), ANN_RESTART_BASE));
        const cJSON *rc = cJSON_GetObjectItemCaseSensitive(cs, "restartCount");
        s->restarts = (base ? atoi(base) : 0) + (cJSON_IsNumber(rc) ? rc->valueint : 0);
        bool done = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
        const cJSON *term = kube_obj(cs, done ? "state.terminated" : "lastState.terminated");
        /* the termination message: the importer's result line, or the kubelet's log tail
         * (FallbackToLogsOnError) */
        _cleanup_json_ cJSON *result = last_json_line(kube_str(term, "message"), "result");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(term, "exitCode");
        char where[1000];
        s->registry = kube_obj(result, "registry");
        describe_registry(s->registry, where, sizeof(where));
        if (!strcmp(phase, "Succeeded")) {
                s->phase = "Succeeded";
                s->progress = "100.0%";
                s->ready = true;
                s->running_reason = "Completed";
                snprintf(s->running_msg, sizeof(s->running_msg), "Import Complete%s%s", *where ? "; " : "",
                         where);
                return finish(api, dv, pvc, pod, s, true, err);
        }
        if (term && cJSON_IsNumber(code) && code->valueint != 0) {
                /* no result line (a usage error): the importer's last log message */
                _cleanup_json_ cJSON *logged =
                    result ? NULL : last_json_line(kube_str(term, "message"), "msg");
                const char *reason =
                    kube_str(result, "reason") ?: kube_str(logged, "msg") ?: kube_str(term, "message") ?: "no message";
                s->running_reason = "Error";
                snprintf(s->running_msg, sizeof(s->running_msg), "Import failed (exit %d): %s%s%s",
                         code->valueint, reason, *where ? "; " : "", where);
                if (permanent_exit(code->valueint)) {
                        s->phase = "Failed";
                        return finish(api, dv, pvc, pod, s, false, err);
                }
        }
        if (!strcmp(phase, "Failed")) { /* the kubelet could not run it: a new Pod after a backoff */
                long wait = POD_RETRY_MIN_S << (s->restarts < 6 ? s->restarts : 6);
                wait = (wait < POD_RETRY_MAX_S ? wait : POD_RETRY_MAX_S) - pod_age_s(pod);
                s->phase = "ImportScheduled";
                if (!s->running_reason) {
                        s->running_reason = "Error";
                        snprintf(s->running_msg, sizeof(s->running_msg), "importer Pod failed: %s",
                                 kube_str(pod, "status.message") ?: kube_str(pod, "status.reason") ?: "?");
                }
                int r = write_status(api, dv, s, err);
                if (r < 0 || wait > 0)
                        return r < 0 ? r : (int)wait * 1000;
                s->restarts++;
                cleanup_importer(api, dv, pod);
                return 0;
        }
        if (!strcmp(phase, "Running")) {
                _cleanup_free_ char *prog = progress_from_log(api, pod);
                s->phase = "ImportInProgress";
                s->progress = prog;
                s->running = kube_obj(cs, "state.running") && !s->running_reason;
                if (s->running)
                        s->running_reason = "Pod is running";
                int r = write_status(api, dv, s, err);
                return r < 0 ? r : 1000; /* progress: look again in a second */
        }
        s->phase = "ImportScheduled";
        return write_status(api, dv, s, err);
}

static int ensure_claim(kube_client *api, const cJSON *dv, cJSON **pvc, kv_error *err)
{
        const char *ns = kube_str(dv, "metadata.namespace"), *name = kube_str(dv, "metadata.name");
        int r = kube_get(api, &kube_pvc, ns, name, pvc, err);
        if (r != -KUBE_ENOTFOUND)
                return r;
        _cleanup_json_ cJSON *claim = claim_for(dv);
        r = kube_create(api, &kube_pvc, ns, claim, pvc, err);
        if (r == 0)
                log_info("DataVolume %s/%s: claim created", ns, name);
        return r == -KUBE_EEXISTS ? kube_get(api, &kube_pvc, ns, name, pvc, err) : r;
}

/* A claim of the DataVolume's name that it does not own: taken over when the DataVolume allows it (KubeVirt
 * sets allowClaimAdoption on the DataVolumes it makes), refused otherwise. */
static int adopt_claim(kube_client *api, const cJSON *dv, const cJSON *pvc, bool *ok, kv_error *err)
{
        const cJSON *allow =
            cJSON_GetObjectItemCaseSensitive(kube_obj(dv, "metadata.annotations"), DV_ANN_ALLOW_ADOPTION);
        *ok = owned_by_controller(pvc, dv);
        if (*ok || !cJSON_IsString(allow) || strcmp(allow->valuestring, "true") || dv_controller_ref(pvc))
                return 0;
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON_AddItemToArray(
            cJSON_AddArrayToObject(cJSON_AddObjectToObject(patch, "metadata"), "ownerReferences"),
            kube_controller_ref_of(dv, "cdi.kubevirt.io/v1beta1", "DataVolume"));
        int r = kube_merge_patch(api, &kube_pvc, kube_str(pvc, "metadata.namespace"),
                                 kube_str(pvc, "metadata.name"), patch, false, NULL, err);
        *ok = r == 0;
        return r;
}

/* CDI's spec.sourceRef: the DataSource's pvc source is cloned, as if spec.source.pvc named it. *resolved: a
 * copy of the DataVolume with that source (NULL without a sourceRef). -ENOENT: the DataSource is not there
 * (yet); -EINVAL: it cannot be imported (why in err); other negative errno: API failures. */
static int resolve_source_ref(kube_client *api, const cJSON *dv, cJSON **resolved, kv_error *err)
{
        const cJSON *ref = kube_obj(dv, "spec.sourceRef");
        const char *ns = kube_str(ref, "namespace") ?: kube_str(dv, "metadata.namespace"),
                   *name = kube_str(ref, "name");
        *resolved = NULL;
        if (!ref || kube_obj(dv, "spec.source"))
                return 0;
        if (strcmp(kube_str(ref, "kind") ?: "", "DataSource") || !name)
                return kv_error_set(err, EINVAL, "spec.sourceRef: kind DataSource and a name are required");
        _cleanup_json_ cJSON *ds = NULL;
        int r = kube_get(api, &kube_datasource, ns, name, &ds, err);
        if (r < 0)
                return r;
        const cJSON *pvc = kube_obj(ds, "spec.source.pvc");
        if (!kube_str(pvc, "name"))
                return kv_error_set(
                    err, EINVAL,
                    "spec.sourceRef: DataSource %s/%s has no spec.source.pvc (kvlite clones claims; "
                    "snapshot sources are not supported)",
                    ns, name);
        cJSON *copy = cJSON_Duplicate(dv, true), *src = cJSON_CreateObject(), *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", kube_str(pvc, "name"));
        cJSON_AddStringToObject(p, "namespace", kube_str(pvc, "namespace") ?: ns);
        cJSON_AddItemToObject(src, "pvc", p);
        cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(copy, "spec"), "source", src);
        *resolved = copy;
        return 0;
}

/* The DataVolume with its sourceRef resolved (*out, the caller's), or an answer for reconcile_dv: a missing
 * DataSource keeps it Pending (looked at again in 5 s: no watch on DataSources), one that cannot be cloned
 * makes it Failed. */
static int with_source(kube_client *api, const cJSON *dv, dv_status *s, cJSON **out, kv_error *err)
{
        kv_error why = {0};
        int r = resolve_source_ref(api, dv, out, &why);
        if (r == 0 || (r != -ENOENT && r != -EINVAL)) {
                *err = why;
                return r;
        }
        s->phase = r == -ENOENT ? "Pending" : "Failed";
        s->running_reason = r == -ENOENT ? "DataSourceNotFound" : "Error";
        snprintf(s->running_msg, sizeof(s->running_msg), "%s", why.msg);
        if (r == -EINVAL)
                post_event(api, dv, "Warning", "ImportFailed", why.msg);
        r = write_status(api, dv, s, err);
        return r < 0 ? r : s->phase[0] == 'P' ? 5000 : 1;
}

int reconcile_dv(controller *c, kube_client *api, const char *key, kv_error *err)
{
        if (optional_state(c, OPT_CDI) != OPT_RUNNING)
                return optional_state(c, OPT_CDI) == OPT_STARTING ? 200 : 0;
        _cleanup_json_ cJSON *dv = kube_store_get(&c->dvs.store, key), *pvc = NULL, *pod = NULL;
        if (!dv || kube_obj(dv, "metadata.deletionTimestamp"))
                return 0;
        char pkey[600];
        snprintf(pkey, sizeof(pkey), "%s/" DV_IMPORTER_PREFIX "%s", kube_str(dv, "metadata.namespace"),
                 kube_str(dv, "metadata.name"));
        pod = kube_store_get(&c->importers.store, pkey);
        if (pod && !owned_by_controller(pod, dv)) {
                cJSON_Delete(pod);
                pod = NULL;
        }
        const cJSON *old_rc = kube_obj(dv, "status.restartCount");
        dv_status s = {.restarts = cJSON_IsNumber(old_rc) ? old_rc->valueint : 0, .bound_reason = "Pending"};
        if (!dv_open(dv)) { /* Succeeded or Failed: nothing left to run */
                if (pod)
                        cleanup_importer(api, dv, pod);
                return 0;
        }
        _cleanup_json_ cJSON *resolved = NULL;
        int r = with_source(api, dv, &s, &resolved, err);
        if (r != 0)
                return r == 1 ? 0 : r;
        if (resolved) {
                cJSON_Delete(dv);
                dv = TAKE_PTR(resolved);
        }
        if ((r = ensure_claim(api, dv, &pvc, err)) < 0)
                return r;
        bool owned;
        if ((r = adopt_claim(api, dv, pvc, &owned, err)) < 0)
                return r;
        snprintf(s.bound_msg, sizeof(s.bound_msg), "PVC %s Pending", kube_str(dv, "metadata.name"));
        if (!owned) {
                s.phase = "Pending";
                snprintf(s.running_msg, sizeof(s.running_msg),
                         "PersistentVolumeClaim %s exists and is not owned by this DataVolume",
                         kube_str(dv, "metadata.name"));
                r = write_status(api, dv, &s, err);
                return r < 0 ? r : 5000;
        }
        const char *populated = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(pvc, "metadata.annotations"), ANN_STORAGE "pod.phase"));
        if (strcmp(kube_str(pvc, "status.phase") ?: "", "Bound")) {
                s.phase = "Pending";
                r = write_status(api, dv, &s, err);
                return r < 0 ? r : 500; /* no watch on claims: look again soon */
        }
        s.bound = true;
        s.bound_reason = "Bound";
        snprintf(s.bound_msg, sizeof(s.bound_msg), "PVC %s Bound", kube_str(dv, "metadata.name"));
        if (populated && !strcmp(populated, "Succeeded")) { /* an earlier import filled this claim */
                s.phase = "Succeeded";
                s.progress = "100.0%";
                s.ready = true;
                s.running_reason = "Completed";
                snprintf(s.running_msg, sizeof(s.running_msg), "the claim was already populated");
                r = write_status(api, dv, &s, err);
                cleanup_importer(api, dv, pod);
                return r;
        }
        if (!pod)
                return create_importer(c, api, dv, &s, err);
        if (kube_obj(pod, "metadata.deletionTimestamp"))
                return 500;
        return follow_importer(api, dv, pvc, pod, &s, err);
}
