/* reconcile-vmirs: KubeVirt's VirtualMachineInstanceReplicaSet. It keeps spec.replicas (default 1) VMIs of
 * its template: the VMIs it controls (controller owner reference) that match spec.selector and are neither
 * final nor being deleted. Too few: VMIs are created from the template (generateName: the replica set's name,
 * its labels and annotations, the owner reference), at most RS_BURST a pass; too many: the extra ones are
 * deleted, those not running first, then the youngest. Finished VMIs (Succeeded, Failed) are deleted and
 * replaced, as KubeVirt does. spec.paused stops all of it. Status: replicas, readyReplicas (VMIs whose Ready
 * condition is True), labelSelector (for the scale subresource), and the conditions ReplicaPaused and
 * ReplicaFailure (a VMI the API refused to create, with its message). VMI events wake the replica set that
 * controls them. docs/controller.md */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "statusfields.h"
#include "vmistatus.h"

#define RS_BURST 10         /* VMIs created or deleted in one pass */
#define RS_RECHECK_MS 30000 /* a pass now and then, for what no event reports */

/* "k=v,k in (a,b),k notin (a),k,!k": spec.selector as a label selector string; NULL when it is not valid. */
static char *selector_string(const cJSON *sel)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        const cJSON *kv, *e, *v;
        bool ok = f && cJSON_IsObject(sel), first = true;
        cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels"))
        {
                ok = ok && cJSON_IsString(kv);
                if (ok)
                        fprintf(f, "%s%s=%s", first ? "" : ",", kv->string, kv->valuestring), first = false;
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
        {
                const char *key = kube_str(e, "key"), *op = kube_str(e, "operator") ?: "";
                bool set = !strcmp(op, "In") || !strcmp(op, "NotIn");
                ok = ok && key && (set || !strcmp(op, "Exists") || !strcmp(op, "DoesNotExist"));
                if (!ok)
                        break;
                fprintf(f, "%s%s%s", first ? "" : ",", !strcmp(op, "DoesNotExist") ? "!" : "", key);
                first = false;
                if (!set)
                        continue;
                fprintf(f, " %s (", !strcmp(op, "In") ? "in" : "notin");
                bool v1 = true;
                cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "values"))
                {
                        fprintf(f, "%s%s", v1 ? "" : ",", cJSON_GetStringValue(v) ?: "");
                        v1 = false;
                }
                fputc(')', f);
        }
        if (f)
                fclose(f);
        if (!ok || first) { /* an empty selector would select every VMI: KubeVirt refuses it too */
                free(out);
                return NULL;
        }
        return out;
}

static bool controlled_by(const cJSON *obj, const cJSON *owner)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, kube_obj(obj, "metadata.ownerReferences"))
        {
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "controller")))
                        return !strcmp(kube_str(o, "uid") ?: "", kube_str(owner, "metadata.uid") ?: "");
        }
        return false;
}

static bool vmi_ready(const cJSON *vmi)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(vmi, "status.conditions"))
        {
                if (!strcmp(kube_str(c, "type") ?: "", "Ready"))
                        return !strcmp(kube_str(c, "status") ?: "", "True");
        }
        return false;
}

static cJSON *vmi_from_template(const cJSON *rs)
{
        const cJSON *tmpl = kube_obj(rs, "spec.template");
        cJSON *vmi = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(vmi, "metadata");
        cJSON_AddStringToObject(vmi, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vmi, "kind", "VirtualMachineInstance");
        cJSON_AddStringToObject(md, "generateName", kube_str(rs, "metadata.name"));
        const cJSON *labels = kube_obj(tmpl, "metadata.labels"),
                    *ann = kube_obj(tmpl, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, 1));
        if (ann)
                cJSON_AddItemToObject(md, "annotations", cJSON_Duplicate(ann, 1));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(rs, kube_vmirs.api_version, kube_vmirs.kind));
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
        cJSON_AddItemToObject(vmi, "spec", spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateObject());
        return vmi;
}

typedef struct rs_state {
        cJSON *live; /* the VMIs counted (borrowed from the list) */
        int ready;
        char failure[512]; /* why a create failed, "" when none did */
} rs_state;

/* Extra VMIs go in this order: not running, then the youngest (KubeVirt's: the least far along first). */
static int deletion_rank(const void *a, const void *b)
{
        const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
        bool rx = !strcmp(vmi_phase(x), "Running"), ry = !strcmp(vmi_phase(y), "Running");
        if (rx != ry)
                return rx ? 1 : -1;
        return -strcmp(kube_str(x, "metadata.creationTimestamp") ?: "",
                       kube_str(y, "metadata.creationTimestamp") ?: "");
}

static int scale(kube_client *api, const cJSON *rs, rs_state *s, int want, kv_error *err)
{
        const char *ns = kube_str(rs, "metadata.namespace");
        int have = cJSON_GetArraySize(s->live);
        for (int i = have; i < want && i - have < RS_BURST; i++) {
                _cleanup_json_ cJSON *vmi = vmi_from_template(rs), *created = NULL;
                kv_error cerr = {0};
                if (kube_create(api, &kube_vmi, ns, vmi, &created, &cerr) < 0) {
                        snprintf(s->failure, sizeof(s->failure), "%s", cerr.msg);
                        log_warning("VirtualMachineInstanceReplicaSet %s/%s: %s", ns,
                                    kube_str(rs, "metadata.name"), cerr.msg);
                        break;
                }
                log_info("VirtualMachineInstanceReplicaSet %s/%s: created VMI %s", ns,
                         kube_str(rs, "metadata.name"), kube_str(created, "metadata.name"));
        }
        if (have <= want)
                return 0;
        const cJSON *order[256];
        int n = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, s->live) if (n < (int)ARRAY_SIZE(order)) order[n++] = v;
        qsort(order, (size_t)n, sizeof(order[0]), deletion_rank);
        for (int i = 0; i < have - want && i < RS_BURST && i < n; i++) {
                int r = kube_delete(api, &kube_vmi, ns, kube_str(order[i], "metadata.name"), NULL, NULL, NULL,
                                    err);
                if (r < 0 && r != -KUBE_ENOTFOUND)
                        return r;
        }
        return 0;
}

/* The VMIs the replica set counts; finished ones it controls are deleted (to be replaced). */
static int observe(kube_client *api, const cJSON *rs, const cJSON *vmis, rs_state *s, kv_error *err)
{
        const cJSON *v;
        s->live = cJSON_CreateArray();
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(vmis, "items"))
        {
                if (!controlled_by(v, rs) || kube_obj(v, "metadata.deletionTimestamp"))
                        continue;
                if (vmi_phase_is_final(vmi_phase(v))) {
                        int r = kube_delete(api, &kube_vmi, kube_str(v, "metadata.namespace"),
                                            kube_str(v, "metadata.name"), NULL, NULL, NULL, err);
                        if (r < 0 && r != -KUBE_ENOTFOUND)
                                return r;
                        continue;
                }
                s->ready += vmi_ready(v);
                cJSON_AddItemReferenceToArray(s->live, (cJSON *)v);
        }
        return 0;
}

static int write_rs_status(kube_client *api, const cJSON *rs, const rs_state *s, const char *selector,
                           bool paused, kv_error *err)
{
        cJSON *f = cJSON_CreateObject(), *conds = cJSON_AddArrayToObject(f, "conditions");
        cJSON_AddNumberToObject(f, "replicas", cJSON_GetArraySize(s->live));
        cJSON_AddNumberToObject(f, "readyReplicas", s->ready);
        cJSON_AddStringToObject(f, "labelSelector", selector);
        if (paused)
                cJSON_AddItemToArray(
                    conds, status_condition("ReplicaPaused", true, "Paused", "Controller got paused"));
        if (s->failure[0])
                cJSON_AddItemToArray(conds,
                                     status_condition("ReplicaFailure", true, "FailedCreate", s->failure));
        return status_fields_write(api, &kube_vmirs, rs, f, NULL, err);
}

int reconcile_vmirs(controller *c, kube_client *api, const char *key, kv_error *err)
{
        if (optional_state(c, OPT_REPLICASET) != OPT_RUNNING)
                return optional_state(c, OPT_REPLICASET) == OPT_STARTING ? 200 : 0;
        _cleanup_json_ cJSON *rs = kube_store_get(&c->replicasets.store, key), *vmis = NULL;
        if (!rs || kube_obj(rs, "metadata.deletionTimestamp"))
                return 0; /* its VMIs go with it: they are owned (blockOwnerDeletion) */
        const char *ns = kube_str(rs, "metadata.namespace");
        _cleanup_free_ char *selector = selector_string(kube_obj(rs, "spec.selector"));
        rs_state s = {0};
        if (!selector) {
                snprintf(s.failure, sizeof(s.failure),
                         "spec.selector: a matchLabels or matchExpressions selector "
                         "is required");
                s.live = cJSON_CreateArray();
                int r = write_rs_status(api, rs, &s, "", false, err);
                cJSON_Delete(s.live);
                return r;
        }
        const cJSON *replicas = kube_obj(rs, "spec.replicas");
        int want = cJSON_IsNumber(replicas) && replicas->valueint >= 0 ? replicas->valueint : 1;
        bool paused = cJSON_IsTrue(kube_obj(rs, "spec.paused"));
        int r = kube_list(api, &kube_vmi, ns, selector, &vmis, err);
        if (r >= 0)
                r = observe(api, rs, vmis, &s, err);
        if (r >= 0 && !paused)
                r = scale(api, rs, &s, want, err);
        if (r >= 0)
                r = write_rs_status(api, rs, &s, selector, paused, err);
        cJSON_Delete(s.live);
        return r < 0 ? r : RS_RECHECK_MS;
}
