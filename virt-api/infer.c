/* infer: see infer.h. Messages follow KubeVirt's (pkg/instancetype/infer), with the field path first. */
#include "infer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "macro.h"

#define LABEL_PREFIX "instancetype.kubevirt.io/default-"

typedef struct infer_ctx {
        const admission_lookup *lookup;
        const cJSON *vm;
        const char *ns;
        const char *what; /* "instancetype" or "preference": the label's middle and the matcher's key */
        char name[254], kind[128];
        bool ignorable; /* the failure is one inferFromVolumeFailurePolicy Ignore passes over */
} infer_ctx;

static const cJSON *at(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsNull(v) ? NULL : v;
}

static const char *str(const cJSON *obj, const char *key)
{
        return cJSON_GetStringValue(at(obj, key));
}

static const char *meta(const cJSON *obj, const char *key)
{
        return str(at(obj, "metadata"), key);
}

__attribute__((format(printf, 3, 4))) static int ignorable(infer_ctx *c, kv_error *err, const char *fmt, ...)
{
        char msg[KV_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        c->ignorable = true;
        return kv_error_set(err, EINVAL, "%s", msg);
}

static int get(infer_ctx *c, const char *resource, const char *ns, const char *name, cJSON **obj,
               kv_error *err)
{
        *obj = NULL;
        if (!name || !*name)
                return kv_error_set(err, EINVAL, "%s: no name to look up", resource);
        if (!c->lookup || !c->lookup->get)
                return kv_error_set(err, ENOENT, "%s \"%s\" not found", resource, name);
        return c->lookup->get(c->lookup->ctx, resource, ns && *ns ? ns : c->ns, name, obj, err);
}

/* The default-<what> label (and -kind) of obj; -EINVAL, ignorable, when obj has no such label. */
static int from_labels(infer_ctx *c, const cJSON *obj, kv_error *err)
{
        char key[96];
        const cJSON *labels = at(at(obj, "metadata"), "labels");
        snprintf(key, sizeof(key), LABEL_PREFIX "%s", c->what);
        const char *name = str(labels, key);
        if (!name || !*name)
                return ignorable(c, err, "unable to find required %s label on the volume", key);
        snprintf(key, sizeof(key), LABEL_PREFIX "%s-kind", c->what);
        const char *kind = str(labels, key);
        snprintf(c->name, sizeof(c->name), "%s", name);
        if (kind && *kind)
                snprintf(c->kind, sizeof(c->kind), "%s", kind);
        else
                snprintf(c->kind, sizeof(c->kind), "virtualmachinecluster%s", c->what);
        return 0;
}

static int from_object(infer_ctx *c, const char *resource, const char *ns, const char *name, cJSON **obj,
                       kv_error *err)
{
        int r = get(c, resource, ns, name, obj, err);
        return r < 0 ? r : from_labels(c, *obj, err);
}

static int from_pvc(infer_ctx *c, const char *ns, const char *name, kv_error *err)
{
        _cleanup_json_ cJSON *pvc = NULL;
        return from_object(c, "persistentvolumeclaims", ns, name, &pvc, err);
}

/* A DataSource: its own labels, else those of the claim it points at. */
static int from_datasource(infer_ctx *c, const char *ns, const char *name, kv_error *err)
{
        _cleanup_json_ cJSON *ds = NULL;
        int r = from_object(c, "datasources", ns, name, &ds, err);
        if (r == 0 || !ds)
                return r;
        const cJSON *pvc = at(at(at(ds, "spec"), "source"), "pvc");
        if (!pvc)
                return ignorable(c, err, "unable to infer defaults from DataSource %s: it has no pvc source",
                                 name);
        *err = (kv_error){0};
        c->ignorable = false;
        return from_pvc(c, str(pvc, "namespace") ?: meta(ds, "namespace"), str(pvc, "name"), err);
}

static int from_dv_spec(infer_ctx *c, const cJSON *spec, kv_error *err)
{
        const cJSON *pvc = at(at(spec, "source"), "pvc"), *ref = at(spec, "sourceRef");
        if (pvc)
                return from_pvc(c, str(pvc, "namespace"), str(pvc, "name"), err);
        if (ref && !strcmp(str(ref, "kind") ?: "", "DataSource"))
                return from_datasource(c, str(ref, "namespace"), str(ref, "name"), err);
        return ignorable(c, err, "%s",
                         "unable to infer defaults from a DataVolume spec with neither a pvc source nor a "
                         "DataSource sourceRef");
}

static int from_datavolume(infer_ctx *c, const char *name, kv_error *err)
{
        const cJSON *t;
        cJSON_ArrayForEach(t, at(at(c->vm, "spec"), "dataVolumeTemplates"))
        {
                if (!strcmp(meta(t, "name") ?: "", name))
                        return from_dv_spec(c, at(t, "spec"), err);
        }
        _cleanup_json_ cJSON *dv = NULL;
        int r = get(c, "datavolumes", NULL, name, &dv, err);
        if (r == -ENOENT) { /* garbage-collected after its import: its claim keeps the name */
                *err = (kv_error){0};
                return from_pvc(c, NULL, name, err);
        }
        if (r < 0 || from_labels(c, dv, err) == 0)
                return r;
        *err = (kv_error){0};
        c->ignorable = false;
        return from_dv_spec(c, at(dv, "spec"), err);
}

static int from_volume(infer_ctx *c, const char *volume, kv_error *err)
{
        const cJSON *v;
        cJSON_ArrayForEach(v, at(at(at(at(c->vm, "spec"), "template"), "spec"), "volumes"))
        {
                if (strcmp(str(v, "name") ?: "", volume))
                        continue;
                const cJSON *pvc = at(v, "persistentVolumeClaim"), *dv = at(v, "dataVolume");
                if (pvc)
                        return from_pvc(c, NULL, str(pvc, "claimName"), err);
                if (dv)
                        return from_datavolume(c, str(dv, "name") ?: "", err);
                return ignorable(
                    c, err, "unable to infer defaults from volume %s as its type is not supported", volume);
        }
        return kv_error_set(err, EINVAL, "unable to find volume %s to infer defaults", volume);
}

static int infer_one(const cJSON *vm, const admission_lookup *lookup, const char *what, cJSON *ops,
                     kv_error *err)
{
        const cJSON *m = at(at(vm, "spec"), what);
        const char *volume = str(m, "inferFromVolume"), *policy = str(m, "inferFromVolumeFailurePolicy");
        if (!volume || !*volume)
                return 0;
        if (policy && strcmp(policy, "Reject") && strcmp(policy, "Ignore"))
                return kv_error_set(err, EINVAL,
                                    "spec.%s.inferFromVolumeFailurePolicy: \"%.64s\" is not Reject or Ignore",
                                    what, policy);
        infer_ctx c = {.lookup = lookup, .vm = vm, .ns = meta(vm, "namespace") ?: "default", .what = what};
        kv_error why = {0};
        char path[32];
        snprintf(path, sizeof(path), "/spec/%s", what);
        if (from_volume(&c, volume, &why) < 0) {
                if (why.code == ENOMEM)
                        return kv_error_set(err, ENOMEM, "out of memory");
                if (!c.ignorable || !policy || strcmp(policy, "Ignore"))
                        return kv_error_set(err, EINVAL, "spec.%s.inferFromVolume: %s", what, why.msg);
                cJSON_AddItemToArray(ops, json_patch_op("remove", path, NULL));
                return 0;
        }
        cJSON *value = cJSON_CreateObject();
        cJSON_AddStringToObject(value, "name", c.name);
        cJSON_AddStringToObject(value, "kind", c.kind);
        cJSON_AddItemToArray(ops, json_patch_op("replace", path, value));
        return 0;
}

int infer_vm_matchers(const cJSON *vm, const admission_lookup *lookup, cJSON *ops, kv_error *err)
{
        int r = infer_one(vm, lookup, "instancetype", ops, err);
        return r < 0 ? r : infer_one(vm, lookup, "preference", ops, err);
}
