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
#include "replicas.h"
#include "statusfields.h"
#include "vmistatus.h"

#define RS_BURST 10         /* VMIs created or deleted in one pass */
#define RS_RECHECK_MS 30000 /* a pass now and then, for what no event reports */

static cJSON *vmi_from_template(const cJSON *rs)
{
        cJSON *vmi = replicas_from_template(kube_obj(rs, "spec.template"), &kube_vmi, rs, &kube_vmirs);
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(vmi, "metadata"), "generateName",
                                kube_str(rs, "metadata.name"));
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
                if (!owned_by_controller(v, rs) || kube_obj(v, "metadata.deletionTimestamp"))
                        continue;
                if (vmi_phase_is_final(vmi_phase(v))) {
                        int r = kube_delete(api, &kube_vmi, kube_str(v, "metadata.namespace"),
                                            kube_str(v, "metadata.name"), NULL, NULL, NULL, err);
                        if (r < 0 && r != -KUBE_ENOTFOUND)
                                return r;
                        continue;
                }
                s->ready += condition_ready(v);
                cJSON_AddItemReferenceToArray(s->live, (cJSON *)v);
        }
        return 0;
}

static int write_rs_status(kube_client *api, const cJSON *rs, const rs_state *s, const char *selector,
                           bool paused, kv_error *err)
{
        replicas_status st = {cJSON_GetArraySize(s->live), s->ready, selector, paused, s->failure};
        return replicas_write_status(api, &kube_vmirs, rs, &st, err);
}

int reconcile_vmirs(controller *c, kube_client *api, const char *key, kv_error *err)
{
        if (optional_state(c, OPT_REPLICASET) != OPT_RUNNING)
                return optional_state(c, OPT_REPLICASET) == OPT_STARTING ? 200 : 0;
        _cleanup_json_ cJSON *rs = kube_store_get(&c->replicasets.store, key), *vmis = NULL;
        if (!rs || kube_obj(rs, "metadata.deletionTimestamp"))
                return 0; /* its VMIs go with it: they are owned (blockOwnerDeletion) */
        const char *ns = kube_str(rs, "metadata.namespace");
        _cleanup_free_ char *selector = label_selector_string(kube_obj(rs, "spec.selector"));
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
